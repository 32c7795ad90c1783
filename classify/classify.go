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
	// ErrHeaderTooLarge: the message's header block is over
	// Options.MaxHeaderSize.
	ErrHeaderTooLarge = errors.New("header block too large")
	// ErrTooManyRecipients: the message lists more recipients than
	// Options.MaxRecipients.
	ErrTooManyRecipients = errors.New("too many recipients")
	ErrMalformed         = errors.New("malformed message")
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
	// MaxHeaderSize is the largest header block (the message's fields up
	// to the blank line that ends them) accepted, in bytes (default 256
	// KiB).
	MaxHeaderSize int
	// MaxRecipients is the most recipients (DSN recipient blocks, or
	// addresses a notice names) read from one message (default 100,000).
	MaxRecipients int
	// ListHeaders, CampaignHeaders and SubscriberHeaders are the header
	// fields of the returned original that carry its list id, campaign id
	// and subscriber id, each in order of preference: the first one present
	// gives Original.ListID, CampaignID or SubscriberID. Empty: the
	// defaults below (DefaultListHeaders, DefaultCampaignHeaders,
	// DefaultSubscriberHeaders), which cover RFC 2919 lists, listmonk,
	// Mautic and the common ESPs.
	ListHeaders       []string
	CampaignHeaders   []string
	SubscriberHeaders []string
}

// DefaultListHeaders are the list header fields looked for when
// Options.ListHeaders is empty: List-Id (RFC 2919; its id is the part in
// angle brackets), then fields that hold the id whole.
var DefaultListHeaders = []string{"List-Id", "X-List-Id", "X-Mailing-List-Id"}

// DefaultCampaignHeaders are the campaign header fields looked for when
// Options.CampaignHeaders is empty. Feedback-ID (Gmail's feedback loop,
// "campaign:customer:type:sender") comes last: it names more than a
// campaign.
var DefaultCampaignHeaders = []string{
	"X-Campaign-Id", "X-Campaign", "X-Campaignid", "X-Mailgun-Campaign-Id",
	"X-Mc-Campaign", "X-Sg-Campaign-Id", "X-Newsletter-Id", "X-Job",
	"X-Listmonk-Campaign", // listmonk: the campaign's UUID
	"Feedback-Id",
}

// DefaultSubscriberHeaders are the subscriber header fields looked for
// when Options.SubscriberHeaders is empty: listmonk's subscriber UUID,
// Mautic's per-send id hash (X-EMAIL-ID, which Mautic maps to the
// contact), and generic ones.
var DefaultSubscriberHeaders = []string{
	"X-Listmonk-Subscriber", "X-Email-Id", "X-Subscriber-Id", "X-Recipient-Id",
}

// The defaults of Options' limits.
const (
	DefaultMaxSize       = 32 << 20
	DefaultMaxParts      = 500
	DefaultMaxDepth      = 20
	DefaultMaxHeaderSize = 256 << 10
	DefaultMaxRecipients = 100_000
)

// Classifier classifies messages. It is safe for concurrent use.
type Classifier struct {
	opts Options
}

// New returns a Classifier with the given options.
func New(opts Options) *Classifier {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxParts <= 0 {
		opts.MaxParts = DefaultMaxParts
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.MaxHeaderSize <= 0 {
		opts.MaxHeaderSize = DefaultMaxHeaderSize
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = DefaultMaxRecipients
	}
	if len(opts.ListHeaders) == 0 {
		opts.ListHeaders = DefaultListHeaders
	}
	if len(opts.CampaignHeaders) == 0 {
		opts.CampaignHeaders = DefaultCampaignHeaders
	}
	if len(opts.SubscriberHeaders) == 0 {
		opts.SubscriberHeaders = DefaultSubscriberHeaders
	}
	return &Classifier{opts: opts}
}

var defaultClassifier = New(Options{})

// Classify classifies raw with the default options.
func Classify(raw []byte) (*Report, error) {
	return defaultClassifier.Classify(raw)
}
