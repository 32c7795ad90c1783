package classify

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Fault says whose problem a failure is.
type Fault string

// The parties a failure can be down to.
const (
	FaultRecipient Fault = "recipient"     // the address is dead or full
	FaultSender    Fault = "sender"        // our sending setup: relay, auth, sender address, reputation, content
	FaultRemote    Fault = "remote policy" // the receiving side's rules or filters
	FaultTemporary Fault = "temporary"     // passing trouble; retrying may work
	FaultNone      Fault = "none"          // not a failure
)

// Explanation is what a support person needs to know about one failed
// recipient.
type Explanation struct {
	What  string // what happened, in plain words
	Fault Fault  // whose problem it is
	Todo  string // what to do about it
}

// explanations holds the advice per category; the wording is ours, the
// fixes are the usual ones for each kind of rejection.
var explanations = map[Category]Explanation{
	MailboxUnknown: {"The receiving server says this mailbox does not exist.", FaultRecipient,
		"Check the address for typos; if it is right, the person has left or closed it. Remove it from your lists and ask the person for a new address."},
	DomainUnknown: {"The recipient's domain does not exist or accepts no mail (no MX or A record, or a null MX).", FaultRecipient,
		"Check the domain for typos (gmial.com, hotmial.com). A domain that no longer exists will not come back: remove the address."},
	AddressInvalid: {"The address is not a valid email address (bad syntax).", FaultRecipient,
		"Fix the address where it was entered (spaces, missing @ or domain, double dots) or remove it; add validation to your sign-up form."},
	MailboxDisabled: {"The mailbox exists but is disabled, suspended, or its owner has moved.", FaultRecipient,
		"Stop mailing it; the owner no longer reads it. Ask them for their current address through another channel."},
	MailboxFull: {"The recipient's mailbox is full (over quota).", FaultRecipient,
		"Nothing to do now: it usually clears. bouncer suppresses only after repeated full-mailbox bounces on different days, and that suppression expires."},
	RelayDenied: {"The server refused to relay: it is not the recipient's server and will not pass mail on for us.", FaultSender,
		"Our sending setup is wrong, not the address: send through your own authenticated SMTP server, or check that the recipient domain's MX points at the server that answered. Do not remove the subscriber."},
	AuthRequired: {"The server wants the sender to log in (SMTP authentication) before it accepts mail.", FaultSender,
		"Turn on SMTP authentication in the sending application with a valid account (usually the same login as for incoming mail), on the submission port (587). The subscriber is fine."},
	SenderRejected: {"The server refused our sender address or its domain, not the recipient.", FaultSender,
		"Check the envelope sender: the domain must exist and have DNS (MX or A) records, the address must be allowed to send, and not be on the receiver's blocked-sender list. The subscriber is fine."},
	Blocked: {"The receiving side blocked our sending server or domain (blocklist, reputation, missing reverse DNS).", FaultSender,
		"Look the sending IP and domain up on the blocklists the message names and follow their delisting process; make sure the IP has a matching PTR record. The subscriber is fine."},
	ContentRejected: {"The message was refused for its content (spam or virus filter, a filtered message).", FaultRemote,
		"Review the content and links the filter may dislike, check SPF, DKIM and DMARC pass, and ask the recipient's administrator to allow our domain if needed. The subscriber is fine."},
	Policy: {"The receiving side's policy refused the message (authentication checks such as SPF, DKIM or DMARC, TLS, or a local rule).", FaultRemote,
		"Check SPF, DKIM and DMARC alignment for the sending domain and any policy the message names; the recipient's administrator can tell which rule applied. The subscriber is fine."},
	MessageTooLarge: {"The message is larger than the receiving server accepts.", FaultSender,
		"Send smaller messages: link to large files instead of attaching them."},
	RateLimited: {"The receiving server is limiting how fast or how much we send (rate limit, greylisting, too many connections).", FaultTemporary,
		"Slow down and retry later; the server will take the message. No action on the subscriber."},
	Network: {"Delivery failed on the way: the server could not be reached or DNS failed for now.", FaultTemporary,
		"Usually passes; the sending server retries. If it persists, check the recipient domain's DNS and our network."},
	Expired: {"Our server gave up after retrying for too long.", FaultTemporary,
		"Find out why earlier attempts failed (often a server that was down). bouncer suppresses only after repeated expiries on different days."},
	System: {"The receiving server had an internal error.", FaultTemporary,
		"Nothing to fix on our side; it usually passes. Retry later."},
	Delayed: {"A warning: the message has not been delivered yet and the server keeps trying.", FaultTemporary,
		"Nothing to do yet; a failure notice follows if it finally fails."},
	AutoReply: {"An automatic reply (vacation or out-of-office), not a failure.", FaultNone,
		"Nothing to do; the message was delivered."},
	Complaint: {"The recipient reported the message as spam or asked to unsubscribe (a feedback report).", FaultRecipient,
		"Stop mailing this address: bouncer marks it complained. Check that people on the list asked to be there."},
	Unknown: {"The failure could not be attributed: the server's words match no known reason.", FaultRemote,
		"Read the diagnostic yourself. bouncer records it and does not suppress on an unknown reason."},
}

// suppressionListExplanation is for the notice of a sending service (Amazon
// SES, an ESP) that did not send because the address is on its own
// suppression list.
var suppressionListExplanation = Explanation{
	"Our sending service did not try: the address is on its own suppression list (an earlier bounce or complaint there). No receiving server was asked.",
	FaultSender,
	"Look the address up in the sending service's suppression list to see why it is there. If it was a dead mailbox, remove the subscriber; if the address is good, take it off the service's list. bouncer does not suppress on this second-hand notice.",
}

// Explain returns the explanation of a record's category.
func Explain(rec *Record) Explanation {
	if rec.Error != "" {
		return Explanation{"The message could not be read: " + rec.Error, FaultNone,
			"bouncer keeps it in the quarantine folder for a person to look at."}
	}
	if !rec.Bounce {
		if rec.Kind == KindAutoReply {
			return explanations[AutoReply]
		}
		return Explanation{"Not a bounce: this looks like ordinary mail.", FaultNone,
			"bouncer leaves it in the mailbox, unread, for a person."}
	}
	e, ok := explanations[rec.Category]
	if !ok {
		e = explanations[Unknown]
	}
	if strings.HasPrefix(rec.Rule, "suppression_list:") {
		e = suppressionListExplanation
	}
	if rec.Severity == Soft && e.Fault != FaultTemporary && e.Fault != FaultNone && rec.Category != MailboxFull {
		e.What += " The server called it temporary."
	}
	return e
}

// WriteExplanation writes the human explanation of one record: what
// happened, whose fault it is, what to do, and whether bouncer suppresses.
func WriteExplanation(w io.Writer, rec *Record) {
	e := Explain(rec)
	if rec.Error != "" || !rec.Bounce {
		fmt.Fprintf(w, "  %s\n  what to do: %s\n", e.What, e.Todo)
		if rec.Recipient != "" {
			fmt.Fprintf(w, "  from: %s\n", rec.Recipient)
		}
		return
	}
	fmt.Fprintf(w, "  recipient:   %s\n", rec.Recipient)
	code := ""
	if rec.SMTPCode != 0 {
		code = fmt.Sprintf("%d ", rec.SMTPCode)
	}
	fmt.Fprintf(w, "  result:      %s (%s) %s%s\n", rec.Category, rec.Severity, code, rec.Status)
	if rec.Diagnostic != "" {
		fmt.Fprintf(w, "  server said: %s\n", clip(rec.Diagnostic, 300))
	}
	fmt.Fprintf(w, "  what:        %s\n", e.What)
	fmt.Fprintf(w, "  whose fault: %s\n", e.Fault)
	fmt.Fprintf(w, "  what to do:  %s\n", e.Todo)
	fmt.Fprintf(w, "  suppress:    %s\n", SuppressWords(rec))
	fmt.Fprintf(w, "  rule:        %s\n", rec.Rule)
	if rec.Why != "" {
		fmt.Fprintf(w, "  why:         %s\n", rec.Why)
	}
	if rec.Verified != nil {
		fmt.Fprintf(w, "  verified:    %s\n", VerifiedWords(rec))
	}
	if rec.OriginalAutoReply {
		fmt.Fprintf(w, "  note:        %s\n", AutoReplyNote)
	}
}

// AutoReplyNote explains why the bounce of an automatic reply is special.
const AutoReplyNote = "the returned message was itself an automatic reply (vacation or similar); its bounce never removes a list member"

// SuppressWords says in words what bouncer does with the address of a
// failed recipient.
func SuppressWords(rec *Record) string {
	switch {
	case rec.Suppress:
		return "yes: the address is dead; bouncer suppresses it at once"
	case rec.Category == Complaint:
		return "as a complaint: the member is marked complained and not mailed again"
	case rec.Category == MailboxFull || rec.Category == Expired:
		return "not now: only after repeated soft bounces on different days (time-limited)"
	case deadCategory(rec.Category) && rec.OriginalAutoReply:
		return "no: this is the bounce of an automatic reply"
	case deadCategory(rec.Category):
		return "no: the evidence is not conclusive (see the rule); recorded for review"
	default:
		return "no: the address is not at fault"
	}
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// VerifiedWords says whether a bounce was proven to answer mail we sent,
// for a person: only a proven bounce may suppress (the worker's trust
// policy sets Record.Verified; classify has no keys).
func VerifiedWords(rec *Record) string {
	switch {
	case rec.Verified == nil:
		return "not checked"
	case *rec.Verified:
		return "yes (" + rec.VerifiedBy + ")"
	}
	return "no (" + rec.VerifiedBy + "): not proven to answer mail we sent, so it suppresses nothing"
}
