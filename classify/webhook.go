package classify

import (
	"encoding/json"
	"net/textproto"
	"strings"
)

// Email service providers (SendGrid, Mailgun, Postmark, Amazon SES through
// SNS) report what became of a message as JSON events posted to a webhook
// instead of as mail. An event is read like a DSN's recipient block: the
// provider's label says what happened (the Action of RFC 3464 §2.3.3), and
// the status, reply code and diagnostic text it quotes go through the same
// decision table as a mailbox bounce's. The label is evidence, never the
// verdict: a "hard bounce" whose text names a relay or blocklist problem
// does not suppress.

// EventAction is what a provider says became of a recipient, in the words
// the decision reads.
type EventAction string

// The actions of an Event.
const (
	// EventFailed: the provider gave up (a bounce, a permanent failure).
	EventFailed EventAction = "failed"
	// EventDelayed: the provider is still retrying (deferred, temporary).
	EventDelayed EventAction = "delayed"
	// EventSuppressed: the provider did not send at all because the
	// address is on its own suppression list (SendGrid's "dropped",
	// Mailgun's "suppress-*" reasons): second-hand, never suppresses.
	EventSuppressed EventAction = "suppressed"
	// EventComplaint: the recipient reported the message as spam.
	EventComplaint EventAction = "complaint"
	// EventUnsubscribe: the recipient unsubscribed through the provider.
	EventUnsubscribe EventAction = "unsubscribe"
	// EventAutoReply: an automatic reply (out of office) the provider
	// passed on as an event: not a failure.
	EventAutoReply EventAction = "auto_reply"
)

// Event is one recipient's event as a provider's webhook reports it, read
// from its JSON by the provider's parser.
type Event struct {
	Provider   string // "sendgrid", "mailgun", "postmark"
	Label      string // the provider's own name of the event ("bounce", "HardBounce", "failed/permanent")
	Action     EventAction
	Recipient  string
	Status     string // enhanced status (RFC 3463), when the provider gives one
	SMTPCode   int    // the remote's reply code, when given
	Diagnostic string // the remote's reply or the provider's reason text
	RemoteMTA  string
	// Temporary says the provider calls the failure temporary (a soft
	// bounce): without a code of its own the status is then 4.0.0, the
	// class's (RFC 3464 §2.3.4 wants one), as for SES's Transient.
	Temporary bool
	// MessageID is the original's Message-ID, when the provider gives it.
	MessageID string
	// Header holds the original's header fields the provider lists (List-Id,
	// campaign and subscriber fields, From, To, Subject); may be nil.
	Header textproto.MIMEHeader
}

// Event classifies one provider event: the same Report, with one
// recipient decided by the same rules, as a mailbox bounce saying the
// same thing.
func (c *Classifier) Event(ev *Event) *Report {
	m := &message{c: c}
	rep := &Report{Kind: KindDSN, From: ev.Provider}
	h := textproto.MIMEHeader{}
	for k, vs := range ev.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if ev.MessageID != "" && h.Get("Message-Id") == "" {
		h.Set("Message-Id", ev.MessageID)
	}
	rep.Original = m.originalFrom(h, ev.Provider)
	addr := fieldAddress(ev.Recipient)
	label := ev.Provider + ":" + ev.Label
	r := Recipient{Address: addr, Action: "failed", Status: findStatus(ev.Status), SMTPCode: ev.SMTPCode,
		Diagnostic: strings.TrimSpace(stripType(ev.Diagnostic)), RemoteMTA: ev.RemoteMTA}
	switch ev.Action {
	case EventComplaint:
		rep.Kind, rep.FeedbackType = KindComplaint, "abuse"
		r = complaintRecipient(addr, "complaint reported by "+ev.Provider+" ("+ev.Label+")", label)
	case EventUnsubscribe:
		rep.Kind, rep.FeedbackType = KindComplaint, "opt-out"
		r = complaintRecipient(addr, "unsubscribe reported by "+ev.Provider+" ("+ev.Label+")", "unsubscribe:opt-out")
	case EventAutoReply:
		rep.Kind = KindAutoReply
		rep.Recipients = nil
		return rep
	case EventDelayed:
		r.Action = "delayed"
	case EventSuppressed:
		// The words of the decision table's suppression_list row, ahead of
		// whatever reason the provider quotes.
		r.Diagnostic = strings.TrimSuffix(ev.Provider+" did not send: the address is on its suppression list ("+
			ev.Label+"); "+r.Diagnostic, "; ")
		r.Status, r.SMTPCode = "", 0
	}
	if ev.Temporary && r.Status == "" && r.SMTPCode == 0 && findReplyCode(r.Diagnostic) == 0 && quotedStatus(r.Diagnostic) == "" {
		r.Status = "4.0.0"
	}
	if r.Diagnostic == "" && r.Status == "" && r.SMTPCode == 0 && r.Category == "" {
		// Nothing but the label: say it in words the rules read like any
		// diagnostic; a label alone names no cause, so it never suppresses
		// unless its words are a dead-mailbox phrase.
		r.Diagnostic = ev.Provider + ": " + ev.Label
	}
	rep.Recipients = []Recipient{r}
	m.decideAll(rep)
	return rep
}

// SES classifies one Amazon SES notification (the JSON object SNS
// delivers as its "Message"), as Classify would the same notification
// received by mail. It reports false when body is no SES notification of a
// type read here (Bounce, Complaint, Delivery, DeliveryDelay).
func (c *Classifier) SES(body []byte) (*Report, bool) {
	var n sesNotification
	if err := json.Unmarshal(body, &n); err != nil || n.NotificationType == "" && n.EventType == "" {
		return nil, false
	}
	m := &message{c: c}
	rep := &Report{From: "ses"}
	if !m.fillSES(rep, &n) {
		return nil, false
	}
	m.decideAll(rep)
	return rep, true
}
