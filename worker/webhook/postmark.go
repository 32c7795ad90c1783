package webhook

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/textproto"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

// Postmark posts one bounce or spam complaint per request as JSON. It
// signs nothing: the webhook URL carries basic auth credentials
// (https://user:password@host/webhooks/postmark) and/or a custom header
// the operator sets, which are checked here.
// https://postmarkapp.com/developer/webhooks/bounce-webhook

// postmarkTokenHeader is the header (set in Postmark's webhook settings)
// that carries BOUNCER_WEBHOOK_POSTMARK_TOKEN; ?token= works too.
const postmarkTokenHeader = "X-Bouncer-Token"

type postmarkEvent struct {
	RecordType string            `json:"RecordType"`
	ID         json.Number       `json:"ID"`
	Type       string            `json:"Type"`
	MessageID  string            `json:"MessageID"`
	Email      string            `json:"Email"`
	From       string            `json:"From"`
	Subject    string            `json:"Subject"`
	Details    string            `json:"Details"`
	BouncedAt  string            `json:"BouncedAt"`
	Metadata   map[string]string `json:"Metadata"`
}

// equal compares a secret in constant time.
func equal(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (h *Handler) postmarkAuth(r *http.Request) bool {
	ok := true
	if h.cfg.PostmarkPassword != "" {
		u, p, has := r.BasicAuth()
		ok = has && equal(u, h.cfg.PostmarkUser) && equal(p, h.cfg.PostmarkPassword)
	}
	if t := h.cfg.PostmarkToken; t != "" {
		got := r.Header.Get(postmarkTokenHeader)
		if got == "" {
			got = r.URL.Query().Get("token")
		}
		ok = equal(got, t) && ok
	}
	return ok
}

func (h *Handler) parsePostmark(_ context.Context, r *http.Request, body []byte) ([]store.WebhookEvent, string, *refusal) {
	if !h.postmarkAuth(r) {
		return nil, "", refuse(http.StatusUnauthorized, "bad_signature", "Postmark credentials do not match")
	}
	var ev postmarkEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, "", refuse(http.StatusBadRequest, "bad_request", "not a Postmark webhook: %v", err)
	}
	ce, ok := postmarkClassifyEvent(&ev)
	if !ok {
		return nil, "", nil
	}
	if ev.ID == "" {
		return nil, "", refuse(http.StatusBadRequest, "bad_request", "Postmark %s without ID", ev.RecordType)
	}
	id := ev.RecordType + ":" + ev.ID.String()
	at, _ := time.Parse(time.RFC3339Nano, ev.BouncedAt) // zero (now) when missing or odd
	return []store.WebhookEvent{event("postmark", id, ce.Label, "webhook:postmark:secret", body, h.cls.Event(ce), at)}, "", nil
}

// postmarkClassifyEvent reads a Postmark record for the classifier; false
// for records that are no failure (Subscribe, AddressChange, ...).
// https://postmarkapp.com/developer/api/bounce-api#bounce-types
func postmarkClassifyEvent(ev *postmarkEvent) (*classify.Event, bool) {
	h := textproto.MIMEHeader{}
	for k, v := range ev.Metadata {
		h.Set(k, v)
	}
	if ev.From != "" {
		h.Set("From", ev.From)
	}
	if ev.Subject != "" {
		h.Set("Subject", ev.Subject)
	}
	ce := &classify.Event{Provider: "postmark", Label: ev.Type, Recipient: ev.Email, MessageID: ev.MessageID,
		Diagnostic: ev.Details, Header: h}
	if ev.RecordType == "SpamComplaint" {
		ce.Action = classify.EventComplaint
		return ce, true
	}
	if ev.RecordType != "Bounce" {
		return nil, false
	}
	switch ev.Type {
	case "Subscribe", "AddressChange", "ChallengeVerification", "OpenRelayTest", "InboundError":
		return nil, false
	case "AutoResponder":
		ce.Action = classify.EventAutoReply
	case "SpamComplaint":
		ce.Action = classify.EventComplaint
	case "Unsubscribe":
		ce.Action = classify.EventUnsubscribe
	case "ManuallyDeactivated":
		ce.Action = classify.EventSuppressed
	case "SoftBounce", "Transient", "DnsError":
		ce.Action, ce.Temporary = classify.EventFailed, true
	default: // HardBounce, BadEmailAddress, Blocked, SpamNotification, DMARCPolicy, Unknown, ...
		ce.Action = classify.EventFailed
	}
	return ce, true
}
