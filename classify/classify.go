// Package classify turns the raw bytes of a bounce into a Report: what kind
// of message it is, and for every recipient it reports on, what happened
// (action, enhanced status, reply code, diagnostic), the category, severity
// and suppression decision, and the rule that decided them.
//
// It reads RFC 3464 delivery status notifications (multipart/report, RFC
// 6522; message/global-delivery-status, RFC 6533), RFC 5965 ARF feedback
// reports, RFC 3834 automatic replies, and the free-text notices of MTAs
// that send neither. Status codes follow RFC 3463, reply codes RFC 5321
// §4.2. The package is pure: bytes in, report out; no I/O, clock or logging.
package classify

import (
	"errors"
	"fmt"
	"strings"
)

// Errors for input that cannot be classified. They wrap into a *ParseError.
var (
	ErrTooLarge     = errors.New("message too large")
	ErrTooManyParts = errors.New("too many MIME parts")
	ErrTooDeep      = errors.New("MIME parts nested too deep")
	ErrMalformed    = errors.New("malformed message")
)

// ParseError reports why a message could not be classified.
type ParseError struct {
	Err    error  // one of the sentinel errors above
	Detail string // what exactly was wrong
}

func (e *ParseError) Error() string {
	if e.Detail == "" {
		return "classify: " + e.Err.Error()
	}
	return "classify: " + e.Err.Error() + ": " + e.Detail
}

func (e *ParseError) Unwrap() error { return e.Err }

func parseErr(err error, format string, args ...any) *ParseError {
	d := strings.ToValidUTF8(fmt.Sprintf(format, args...), "\uFFFD")
	if len(d) > 200 {
		d = strings.ToValidUTF8(d[:200], "") + "…"
	}
	return &ParseError{Err: err, Detail: d}
}

// Options bound the work done on one message and name the campaign headers.
// The zero value is usable: zero fields take the defaults below.
type Options struct {
	// MaxSize is the largest message accepted, in bytes (default 32 MiB).
	MaxSize int
	// MaxParts is the most MIME parts accepted (default 500).
	MaxParts int
	// MaxDepth is the deepest multipart nesting accepted (default 20).
	MaxDepth int
	// CampaignHeaders are the header fields of the original message that
	// carry a campaign id, in order of preference (default
	// X-Campaign-ID, X-Campaign, X-Mailchimp-Campaign, X-MC-Campaign... see
	// DefaultCampaignHeaders).
	CampaignHeaders []string
}

// DefaultCampaignHeaders are the campaign header fields looked for when
// Options.CampaignHeaders is empty.
var DefaultCampaignHeaders = []string{
	"X-Campaign-Id", "X-Campaign", "X-Campaignid", "X-Mailgun-Campaign-Id",
	"X-Mc-Campaign", "X-Sg-Campaign-Id", "X-Newsletter-Id", "X-Job",
	"X-Listmonk-Campaign", // listmonk
}

const (
	defaultMaxSize  = 32 << 20
	defaultMaxParts = 500
	defaultMaxDepth = 20
)

// Classifier classifies messages. It is safe for concurrent use.
type Classifier struct {
	opts Options
}

// New returns a Classifier with the given options.
func New(opts Options) *Classifier {
	if opts.MaxSize <= 0 {
		opts.MaxSize = defaultMaxSize
	}
	if opts.MaxParts <= 0 {
		opts.MaxParts = defaultMaxParts
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = defaultMaxDepth
	}
	if len(opts.CampaignHeaders) == 0 {
		opts.CampaignHeaders = DefaultCampaignHeaders
	}
	return &Classifier{opts: opts}
}

var defaultClassifier = New(Options{})

// Classify classifies raw with the default options.
func Classify(raw []byte) (*Report, error) {
	return defaultClassifier.Classify(raw)
}
