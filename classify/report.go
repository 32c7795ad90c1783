package classify

import (
	"strings"
	"time"
)

// Kind says what a message is, as a whole.
type Kind string

// The kinds of message. Only KindNotBounce is mail meant for a person.
const (
	KindDSN       Kind = "dsn"        // an RFC 3464 delivery status notification, or Amazon SES's JSON one
	KindMTAText   Kind = "mta_text"   // a free-text bounce of a non-standard MTA
	KindDelayed   Kind = "delayed"    // a warning: delivery is delayed, not failed
	KindAutoReply Kind = "auto_reply" // an RFC 3834 automatic reply (vacation, ...)
	KindComplaint Kind = "complaint"  // an RFC 5965 ARF feedback report
	KindNotBounce Kind = "not_bounce" // ordinary mail, e.g. a person's reply
)

// Category is the stable name of what went wrong for one recipient. The set is
// closed; the strings are part of the outside contract (DESIGN.md, README).
type Category string

// The categories of DESIGN.md.
const (
	MailboxUnknown  Category = "mailbox_unknown"
	DomainUnknown   Category = "domain_unknown"
	AddressInvalid  Category = "address_invalid"
	MailboxDisabled Category = "mailbox_disabled"
	MailboxFull     Category = "mailbox_full"
	RelayDenied     Category = "relay_denied"
	AuthRequired    Category = "auth_required"
	SenderRejected  Category = "sender_rejected"
	Blocked         Category = "blocked"
	ContentRejected Category = "content_rejected"
	Policy          Category = "policy"
	MessageTooLarge Category = "message_too_large"
	RateLimited     Category = "rate_limited"
	Network         Category = "network"
	Expired         Category = "expired"
	System          Category = "system"
	Delayed         Category = "delayed"
	AutoReply       Category = "auto_reply"
	Complaint       Category = "complaint"
	Unknown         Category = "unknown"
)

// Categories lists every category in the order of DESIGN.md's table.
var Categories = []Category{
	MailboxUnknown, DomainUnknown, AddressInvalid, MailboxDisabled, MailboxFull,
	RelayDenied, AuthRequired, SenderRejected, Blocked, ContentRejected, Policy,
	MessageTooLarge, RateLimited, Network, Expired, System, Delayed, AutoReply,
	Complaint, Unknown,
}

// Severity is the conventional hard/soft split of a failure.
type Severity string

// The severities. Hard: permanent, retrying will not help. Soft: temporary or
// likely to recover, even when the reply code is 5xx. None: not a failure.
const (
	Hard Severity = "hard"
	Soft Severity = "soft"
	None Severity = "none"
)

// Report is what Classify learns from one message.
type Report struct {
	Kind Kind

	// MessageID, From and Subject are the bounce's own header fields.
	MessageID string
	From      string
	Subject   string

	// ReportingMTA and ArrivalDate come from the per-message block of a DSN
	// (RFC 3464 §2.2).
	ReportingMTA string
	ArrivalDate  time.Time

	// FeedbackType is the ARF Feedback-Type (RFC 5965 §3.1) of a complaint.
	FeedbackType string

	// Original describes the returned original message, when one came back.
	Original Original

	// ReturnPaths are the envelope addresses the bounce was delivered to,
	// where a signed return path (VERP) carries its token, in order of
	// trust: the bounce's own Delivered-To (added by the final delivery
	// agent, the topmost first), X-Original-To (Postfix), Envelope-To
	// (Exim), To, then the returned original's Return-Path (RFC 5321
	// §4.4: the path the bounce was sent back to). Repeats are dropped
	// (compared without case). classify only reads them; whether a token
	// among them is ours is the worker's to check, with its keys.
	ReturnPaths []string

	// Recipients holds one entry per recipient the message reports on: every
	// per-recipient block of a DSN, including the delivered, relayed and
	// expanded ones, which are not failures (see Recipient.Failed).
	Recipients []Recipient
}

// Original describes the message that bounced, as returned inside the bounce
// (message/rfc822, text/rfc822-headers, or only quoted in the text).
type Original struct {
	// Source says where it was found: "message/rfc822", "text/rfc822-headers",
	// "quoted", "ses" (the headers listed in an Amazon SES notification), or
	// "" when nothing of it came back.
	Source string

	MessageID string
	ListID    string
	From      string
	To        string
	Subject   string

	// CampaignID is the value of the first configured campaign header found
	// (Options.CampaignHeaders); Campaign holds every one that was present.
	CampaignID string
	Campaign   map[string]string
	// SubscriberID is the value of the first configured subscriber header
	// found (Options.SubscriberHeaders): the sending platform's id of the
	// recipient, e.g. listmonk's subscriber UUID.
	SubscriberID string

	// AutoReply is set when the original was itself an automatic message
	// (Auto-Submitted other than "no", X-Autorespond, Precedence: auto_reply,
	// RFC 3834): its bounce must never suppress a list member.
	AutoReply bool
}

// Recipient is the outcome for one recipient.
type Recipient struct {
	// Address is the recipient the report is about (Final-Recipient, RFC 3464
	// §2.3.2); OriginalAddress the Original-Recipient (§2.3.1), when given.
	Address         string
	OriginalAddress string

	// Action is the DSN action (§2.3.3): failed, delayed, delivered, relayed
	// or expanded. Free-text bounces report failed (or delayed).
	Action string

	// Status is the enhanced status code (RFC 3463), e.g. "5.1.1", or "".
	Status string
	// SMTPCode is the SMTP reply code (RFC 5321 §4.2), e.g. 553, or 0.
	SMTPCode int
	// Diagnostic is the remote server's text (Diagnostic-Code, §2.3.6), or the
	// free text that explained the failure.
	Diagnostic string
	// RemoteMTA is the server that reported the failure (§2.3.5).
	RemoteMTA string
	// Command is the SMTP command the failure answered, when the bounce
	// says: CONN (the greeting), HELO, MAIL, RCPT or DATA; or "".
	Command string
	// LastAttempt is the Last-Attempt-Date (§2.3.7), or zero.
	LastAttempt time.Time

	Category Category
	Severity Severity
	// Suppress says whether the address should stop receiving mail now. Soft
	// categories (mailbox_full, expired) report false here; the store's
	// time-aware policy decides for them.
	Suppress bool
	// Rule names the rule that decided Category, Severity and Suppress.
	Rule string
	// Why is the reason of the decision table's row that decided, in words
	// (see `bouncer rules`).
	Why string
}

// Failed reports whether r is a failure or a warning worth recording: failed
// and delayed recipients and complaints. Delivered, relayed and expanded
// recipients are not (RFC 3464 §2.3.3), nor "deliverable" ones (Postfix's
// answer to an address verification or a requested delivery report), nor
// one with a success status (2.X.X, RFC 3463) and no action.
func (r *Recipient) Failed() bool {
	switch r.Action {
	case "delivered", "relayed", "expanded", "deliverable":
		return false
	case "":
		if strings.HasPrefix(r.Status, "2.") {
			return false
		}
	}
	return r.Category != AutoReply
}

// Hard reports whether the failure is permanent (Severity hard).
func (r *Recipient) Hard() bool { return r.Severity == Hard }

// Bounce reports whether the message reports at least one failure, delay or
// complaint.
func (rep *Report) Bounce() bool {
	for i := range rep.Recipients {
		if rep.Recipients[i].Failed() {
			return true
		}
	}
	return false
}

// NeverSuppress reports whether c is a category that must never suppress a
// recipient: the fault is the sender's, the remote's policy, something
// passing, or it is not a failure (DESIGN.md). The store checks it again
// before it writes a suppression.
func NeverSuppress(c Category) bool {
	switch c {
	case RelayDenied, AuthRequired, SenderRejected, Blocked, ContentRejected, Policy,
		MessageTooLarge, RateLimited, Network, System, Unknown, Delayed, AutoReply:
		return true
	}
	return false
}
