package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

// SendGrid's Signed Event Webhook posts a JSON array of events, signed
// with ECDSA P-256 over SHA-256 of the timestamp header followed by the
// body; the signature (base64 ASN.1 DER) and timestamp come in headers.
// https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
const (
	sendgridSignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	sendgridTimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

type sendgridVerifier struct {
	key *ecdsa.PublicKey
}

// parseECDSAKey reads a P-256 public key: base64 DER (PKIX), as SendGrid
// shows it, or PEM.
func parseECDSAKey(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if b, _ := pem.Decode([]byte(s)); b != nil {
		der = b.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, errors.New("not base64 or PEM")
		}
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("not a public key (want the base64 key SendGrid shows)")
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 public key")
	}
	return ek, nil
}

type sendgridEvent struct {
	Email     string `json:"email"`
	Event     string `json:"event"`
	EventID   string `json:"sg_event_id"`
	SMTPID    string `json:"smtp-id"`
	Reason    string `json:"reason"`
	Response  string `json:"response"`
	Status    string `json:"status"`
	Type      string `json:"type"`
	Timestamp int64  `json:"timestamp"`
}

func (h *Handler) parseSendGrid(_ context.Context, r *http.Request, body []byte) ([]store.WebhookEvent, string, *refusal) {
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(sendgridSignatureHeader))
	ts := r.Header.Get(sendgridTimestampHeader)
	sum := sha256.Sum256(append([]byte(ts), body...))
	if err != nil || len(sig) == 0 || !ecdsa.VerifyASN1(h.sendgrd.key, sum[:], sig) {
		return nil, "", refuse(http.StatusUnauthorized, "bad_signature", "SendGrid signature does not verify")
	}
	if ref := h.checkAge("SendGrid", ts, h.opts.Now()); ref != nil {
		return nil, "", ref
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, "", refuse(http.StatusBadRequest, "bad_request", "not a SendGrid event array: %v", err)
	}
	var out []store.WebhookEvent
	for i, raw := range raws {
		var ev sendgridEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, "", refuse(http.StatusBadRequest, "bad_request", "SendGrid event %d: %v", i, err)
		}
		ce, ok := sendgridClassifyEvent(&ev)
		if !ok {
			continue
		}
		if ev.EventID == "" {
			return nil, "", refuse(http.StatusBadRequest, "bad_request", "SendGrid event %d has no sg_event_id", i)
		}
		var at time.Time
		if ev.Timestamp > 0 {
			at = time.Unix(ev.Timestamp, 0)
		}
		out = append(out, event("sendgrid", ev.EventID, ce.Label, "webhook:sendgrid:ecdsa", raw, h.cls.Event(ce), at))
	}
	return out, "", nil
}

// sendgridClassifyEvent reads a SendGrid event for the classifier; false
// for events that are no failure (processed, delivered, open, click).
func sendgridClassifyEvent(ev *sendgridEvent) (*classify.Event, bool) {
	ce := &classify.Event{Provider: "sendgrid", Label: ev.Event, Recipient: ev.Email, Status: ev.Status,
		MessageID: ev.SMTPID, Diagnostic: ev.Reason}
	switch ev.Event {
	case "bounce":
		ce.Action = classify.EventFailed
		if ev.Type != "" {
			ce.Label += "/" + ev.Type
		}
	case "dropped":
		ce.Action = classify.EventSuppressed
	case "deferred":
		ce.Action, ce.Diagnostic = classify.EventDelayed, strings.TrimSpace(ev.Response+" "+ev.Reason)
	case "spamreport":
		ce.Action = classify.EventComplaint
	case "unsubscribe", "group_unsubscribe":
		ce.Action = classify.EventUnsubscribe
	default:
		return nil, false
	}
	return ce, true
}
