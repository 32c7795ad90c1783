package store_test

import (
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

func webhookEvent(id string, rcpts ...classify.Recipient) store.WebhookEvent {
	m := bounce("unused-"+id, 0, t0, "news", rcpts...)
	return store.WebhookEvent{Provider: "mailgun", EventID: id, Type: "failed", VerifiedBy: "webhook:mailgun:hmac",
		Payload: []byte(`{"id":"` + id + `"}`), Message: store.Message{Report: m.Report, InternalDate: t0}}
}

// An event delivered again (in the same call or a later one) is stored
// once, with its payload, trusted by its signature, and suppresses once.
func TestSaveWebhooksOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ev := webhookEvent("ev-1", rcpt("dead@example.com", classify.MailboxUnknown))
	res, stored, err := f.db.SaveWebhooks(t.Context(), []store.WebhookEvent{ev, ev})
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 1 || res.Duplicates != 1 || res.Bounces != 1 || res.Suppressions != 1 || stored[0] != true || stored[1] != false {
		t.Errorf("SaveWebhooks(ev, ev) = %+v, %v, want 1 message, 1 duplicate, 1 bounce, 1 suppression, stored [true false]", res, stored)
	}
	for range 2 {
		res, stored, err = f.db.SaveWebhooks(t.Context(), []store.WebhookEvent{ev})
		if err != nil || res.Messages != 0 || res.Duplicates != 1 || stored[0] {
			t.Errorf("SaveWebhooks(ev) again = %+v, %v, %v, want a duplicate", res, stored, err)
		}
	}
	if got := f.n(`SELECT count(*) FROM webhook_events WHERE provider = 'mailgun' AND event_id = 'ev-1' AND payload = '{"id":"ev-1"}'::bytea AND verified_by = 'webhook:mailgun:hmac'`); got != 1 {
		t.Errorf("webhook_events rows of ev-1 = %d, want 1", got)
	}
	if got := f.n(`SELECT count(*) FROM bounces b JOIN source_messages s ON s.id = b.source_id WHERE s.mailbox = 'webhook:mailgun' AND b.verified AND b.verified_by = 'webhook:mailgun:hmac'`); got != 1 {
		t.Errorf("verified bounce rows of the webhook = %d, want 1", got)
	}
	if got := len(f.events()); got != 2 {
		t.Errorf("outbox events = %d, want 2 (bounce, suppression)", got)
	}
}

// Events of distinct ids are distinct messages, however many there are
// (no UID shared), and a bad event id is refused before anything is
// written.
func TestSaveWebhooksDistinctAndInvalid(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	var evs []store.WebhookEvent
	for _, id := range []string{"a", "b", "c"} {
		evs = append(evs, webhookEvent(id, rcpt(id+"@example.com", classify.MailboxFull)))
	}
	if res, _, err := f.db.SaveWebhooks(t.Context(), evs); err != nil || res.Messages != 3 {
		t.Errorf("SaveWebhooks(a, b, c) = %+v, %v, want 3 messages", res, err)
	}
	for _, id := range []string{"", strings.Repeat("x", 999), "bad\x00id", "\xff"} {
		ev := webhookEvent(id, rcpt("q@example.com", classify.MailboxFull))
		if _, _, err := f.db.SaveWebhooks(t.Context(), []store.WebhookEvent{ev}); err == nil {
			t.Errorf("SaveWebhooks(event id %q) = nil error, want refused", id)
		}
	}
	if got := f.n(`SELECT count(*) FROM source_messages`); got != 3 {
		t.Errorf("source messages = %d, want 3", got)
	}
}
