package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

// fixture is a migrated database of the test's own, a DB on it with a
// settable clock, and a raw pool to look at the rows.
type fixture struct {
	t   testing.TB
	db  *store.DB
	url string
	raw *pgxpool.Pool
	now time.Time
}

var t0 = time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)

func newFixture(t testing.TB, pol store.Policy) *fixture {
	t.Helper()
	f := &fixture{t: t, now: t0}
	f.db, f.url = storetest.Open(t, store.Options{Policy: pol, Now: func() time.Time { return f.now }})
	raw, err := pgxpool.New(context.Background(), f.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	f.raw = raw
	return f
}

// n returns the single integer a query returns.
func (f *fixture) n(query string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.raw.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// counts returns the row count of every table SaveBatch writes.
func (f *fixture) counts() map[string]int {
	f.t.Helper()
	out := map[string]int{}
	for _, tb := range []string{"source_messages", "bounces", "suppressions", "outbox", "list_members"} {
		out[tb] = f.n("SELECT count(*) FROM " + tb)
	}
	out["list_members_changed"] = f.n("SELECT count(*) FROM list_members WHERE status <> 'subscribed'")
	return out
}

// events returns the payloads of every pending event, decoded, in outbox
// order: the outbox keeps them compressed.
func (f *fixture) events() []store.Payload {
	f.t.Helper()
	evs, err := f.db.PendingEvents(context.Background(), 1<<20)
	if err != nil {
		f.t.Fatalf("PendingEvents: %v", err)
	}
	out := make([]store.Payload, len(evs))
	for i, e := range evs {
		if err := json.Unmarshal(e.Payload, &out[i]); err != nil {
			f.t.Fatalf("event %s: %v", e.MsgID, err)
		}
		if out[i].EventID != e.MsgID {
			f.t.Fatalf("event %s has event_id %s", e.MsgID, out[i].EventID)
		}
	}
	return out
}

func (f *fixture) exec(query string, args ...any) {
	f.t.Helper()
	if _, err := f.raw.Exec(context.Background(), query, args...); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
}

func (f *fixture) save(msgs ...store.Message) store.SaveResult {
	f.t.Helper()
	res, err := f.db.SaveBatch(context.Background(), msgs)
	if err != nil {
		f.t.Fatalf("SaveBatch: %v", err)
	}
	return res
}

func (f *fixture) member(list, addr string) string {
	f.t.Helper()
	var s string
	if err := f.raw.QueryRow(context.Background(), `SELECT status FROM list_members WHERE list_id = $1 AND address = $2`, list, addr).Scan(&s); err != nil {
		f.t.Fatalf("member %s %s: %v", list, addr, err)
	}
	return s
}

// hard, soft, ... build one failed recipient of a category.
func rcpt(addr string, cat classify.Category) classify.Recipient {
	r := classify.Recipient{Address: addr, Action: "failed", Category: cat, Rule: "test-" + string(cat)}
	switch cat {
	case classify.MailboxUnknown, classify.DomainUnknown, classify.AddressInvalid, classify.MailboxDisabled:
		r.Severity, r.Suppress, r.Status, r.SMTPCode = classify.Hard, true, "5.1.1", 550
		r.Diagnostic = "550 5.1.1 user unknown"
	case classify.MailboxFull, classify.Expired:
		r.Severity, r.Status, r.SMTPCode = classify.Soft, "4.2.2", 452
		r.Diagnostic = "452 4.2.2 mailbox full"
	case classify.Complaint: // as the classifier reports one: Suppress false, the category decides
		r.Severity, r.Action = classify.None, "failed"
	case classify.Delayed:
		r.Severity, r.Action = classify.None, "delayed"
	default: // sender side
		r.Severity, r.Status, r.SMTPCode = classify.Hard, "5.7.1", 553
		r.Diagnostic = "553 5.7.1 relaying denied"
	}
	return r
}

// bounce builds a message in mailbox "mb" with the given uid whose content
// (and so hash) is derived from key.
func bounce(key string, uid uint32, at time.Time, list string, rcpts ...classify.Recipient) store.Message {
	kind, feedback := classify.KindDSN, ""
	for _, r := range rcpts {
		if r.Category == classify.Complaint {
			kind, feedback = classify.KindComplaint, "abuse"
		}
	}
	return store.Message{
		Mailbox: "bounces@test/INBOX", UIDValidity: 7, UID: uid,
		SHA256: sha256.Sum256([]byte(key)), Size: 1000 + len(key),
		MessageID: fmt.Sprintf("<%s@mta.test>", key), InternalDate: at,
		Report: &classify.Report{
			Kind: kind, MessageID: fmt.Sprintf("<%s@mta.test>", key), From: "MAILER-DAEMON@mta.test",
			Subject: "Undelivered Mail", ReportingMTA: "dns; mta.test", FeedbackType: feedback,
			Original: classify.Original{
				Source: "message/rfc822", MessageID: "<orig-" + key + "@news.test>",
				ListID: list, CampaignID: "camp-1", Campaign: map[string]string{"X-Campaign-Id": "camp-1"},
				SubscriberID: "sub-" + key,
			},
			Recipients: rcpts,
		},
	}
}

func day(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }

// waitBlockedBy waits until a session waits for a lock that session pid
// holds: PostgreSQL tells no one, so it asks every few milliseconds. It
// fails the test when stop is closed first (what should have waited did
// not) or after a minute.
func (f *fixture) waitBlockedBy(pid uint32, stop <-chan struct{}) {
	f.t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for {
		var blocked bool
		err := f.raw.QueryRow(context.Background(),
			`SELECT EXISTS (SELECT FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))`, pid).Scan(&blocked)
		if err != nil {
			f.t.Fatalf("waiting for a session blocked by %d: %v", pid, err)
		}
		if blocked {
			return
		}
		select {
		case <-stop:
			f.t.Fatalf("no session waited for session %d", pid)
		case <-deadline:
			f.t.Fatalf("no session waited for session %d within a minute", pid)
		case <-tick.C:
		}
	}
}
