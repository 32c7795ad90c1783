package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

// Mailgun posts one event per request as JSON: "signature" (timestamp,
// token, signature: hex HMAC-SHA256 of timestamp+token under the account's
// webhook signing key) and "event-data".
// https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/#securing-webhooks

type mailgunBody struct {
	Signature struct {
		Timestamp string `json:"timestamp"`
		Token     string `json:"token"`
		Signature string `json:"signature"`
	} `json:"signature"`
	EventData *mailgunEvent `json:"event-data"`
}

type mailgunEvent struct {
	ID             string  `json:"id"`
	Event          string  `json:"event"`
	Severity       string  `json:"severity"`
	Reason         string  `json:"reason"`
	Recipient      string  `json:"recipient"`
	Timestamp      float64 `json:"timestamp"`
	DeliveryStatus struct {
		Code         int    `json:"code"`
		Message      string `json:"message"`
		Description  string `json:"description"`
		EnhancedCode string `json:"enhanced-code"`
		MXHost       string `json:"mx-host"`
	} `json:"delivery-status"`
	Message struct {
		Headers map[string]string `json:"headers"`
	} `json:"message"`
}

// tokenUse is a Mailgun token seen: the event it signed, and until when it
// is remembered (its timestamp is refused as stale after that).
type tokenUse struct {
	eventID string
	until   time.Time
}

// mailgunVerifier checks Mailgun's signatures and remembers the tokens of
// the replay window: a token presented again is accepted only for the
// same event (a retry), since the signature does not cover the event.
type mailgunVerifier struct {
	key  []byte
	mu   sync.Mutex
	seen map[string]tokenUse
}

// use records token for eventID; false if it signed another event.
func (v *mailgunVerifier) use(token, eventID string, now time.Time, ttl time.Duration) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if u, ok := v.seen[token]; ok && u.until.After(now) {
		return u.eventID == eventID
	}
	if len(v.seen) >= 1024 && len(v.seen)%256 == 0 {
		for t, u := range v.seen {
			if !u.until.After(now) {
				delete(v.seen, t)
			}
		}
	}
	v.seen[token] = tokenUse{eventID, now.Add(ttl)}
	return true
}

func (h *Handler) parseMailgun(_ context.Context, _ *http.Request, body []byte) ([]store.WebhookEvent, string, *refusal) {
	var b mailgunBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, "", refuse(http.StatusBadRequest, "bad_request", "not a Mailgun webhook: %v", err)
	}
	s := &b.Signature
	mac := hmac.New(sha256.New, h.mailgun.key)
	mac.Write([]byte(s.Timestamp + s.Token))
	sig, err := hex.DecodeString(s.Signature)
	if err != nil || s.Token == "" || !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, "", refuse(http.StatusUnauthorized, "bad_signature", "Mailgun signature does not verify")
	}
	now := h.opts.Now()
	if ref := h.checkAge("Mailgun", s.Timestamp, now); ref != nil {
		return nil, "", ref
	}
	ev := b.EventData
	if ev == nil || ev.ID == "" {
		return nil, "", refuse(http.StatusBadRequest, "bad_request", "Mailgun webhook without event-data.id")
	}
	if !h.mailgun.use(s.Token, ev.ID, now, 2*h.cfg.MaxAge) {
		return nil, "", refuse(http.StatusForbidden, "replayed", "Mailgun token already used for another event")
	}
	ce, ok := mailgunClassifyEvent(ev)
	if !ok {
		return nil, "", nil
	}
	raw := body
	var at time.Time
	if ev.Timestamp > 0 && ev.Timestamp < math.MaxInt32 {
		sec, frac := math.Modf(ev.Timestamp)
		at = time.Unix(int64(sec), int64(frac*1e9))
	}
	return []store.WebhookEvent{event("mailgun", ev.ID, ce.Label, "webhook:mailgun:hmac-sha256", raw, h.cls.Event(ce), at)}, "", nil
}

// mailgunClassifyEvent reads a Mailgun event for the classifier; false
// for events that are no failure (delivered, opened, ...).
func mailgunClassifyEvent(ev *mailgunEvent) (*classify.Event, bool) {
	ds := &ev.DeliveryStatus
	ce := &classify.Event{Provider: "mailgun", Label: ev.Event, Recipient: ev.Recipient, Status: ds.EnhancedCode,
		SMTPCode: ds.Code, RemoteMTA: ds.MXHost, Header: textproto.MIMEHeader{}}
	for k, v := range ev.Message.Headers {
		ce.Header.Set(k, v)
	}
	ce.MessageID = ce.Header.Get("Message-Id")
	ce.Diagnostic = strings.TrimSpace(ds.Message + " " + ds.Description)
	switch ev.Event {
	case "failed":
		ce.Label += "/" + ev.Severity
		switch {
		case strings.HasPrefix(ev.Reason, "suppress-"):
			ce.Action, ce.Label = classify.EventSuppressed, ce.Label+"/"+ev.Reason
		case ev.Severity == "temporary":
			ce.Action = classify.EventDelayed
		default:
			ce.Action = classify.EventFailed
		}
	case "complained":
		ce.Action = classify.EventComplaint
	case "unsubscribed":
		ce.Action = classify.EventUnsubscribe
	default:
		return nil, false
	}
	if ce.SMTPCode != 0 && !strings.Contains(ce.Diagnostic, strconv.Itoa(ce.SMTPCode)) {
		ce.Diagnostic = strings.TrimSpace(strconv.Itoa(ce.SMTPCode) + " " + ce.Diagnostic)
	}
	return ce, true
}

// checkAge refuses a signed timestamp (Unix seconds) outside MaxAge of now.
func (h *Handler) checkAge(provider, ts string, now time.Time) *refusal {
	sec, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil {
		return refuse(http.StatusBadRequest, "bad_request", "%s timestamp %q is not a number of seconds", provider, ts)
	}
	return h.checkTime(provider, time.Unix(sec, 0), now)
}

func (h *Handler) checkTime(provider string, t, now time.Time) *refusal {
	if d := now.Sub(t); d > h.cfg.MaxAge || d < -h.cfg.MaxAge {
		return refuse(http.StatusForbidden, "stale", "%s timestamp %s is outside %s of now", provider, t.UTC().Format(time.RFC3339), h.cfg.MaxAge)
	}
	return nil
}
