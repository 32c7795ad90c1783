package worker

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// The maintenance round closes a soft suppression once it expired and
// prunes the outbox rows published longer ago than the retention, on the
// store's clock; a second round finds nothing to do.
func TestMaintenance(t *testing.T) {
	dbURL := wt.NewDatabase(t)
	n := wt.StartNATS(t)
	var mu sync.Mutex
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	setClock := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	db, err := store.Open(t.Context(), dbURL, store.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// Three full-mailbox bounces on three days: a soft suppression that
	// expires 30 days later. And a dead address: a hard one, for good.
	var msgs []store.Message
	for i := range 3 {
		msgs = append(msgs, testBounce(fmt.Sprintf("full-%d", i), uint32(i+1), now.Add(time.Duration(i-2)*24*time.Hour),
			classify.Recipient{Address: "full@example.com", Action: "failed", Status: "4.2.2", SMTPCode: 452,
				Category: classify.MailboxFull, Severity: classify.Soft, Rule: "test"}))
	}
	msgs = append(msgs, testBounce("dead", 4, now, classify.Recipient{Address: "dead@example.com", Action: "failed",
		Status: "5.1.1", SMTPCode: 550, Category: classify.MailboxUnknown, Severity: classify.Hard, Suppress: true, Rule: "test"}))
	res, err := db.SaveBatch(t.Context(), msgs)
	if err != nil || res.Suppressions != 2 {
		t.Fatalf("SaveBatch = %+v, %v; want 2 suppressions", res, err)
	}
	publishAll(t, db)

	cfg := testConfig(t, dbURL, n.URL(), "imap://u:p@127.0.0.1:1/INBOX?tls=none")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var logs syncLog
	w, err := New(cfg.Config, db, nc, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}

	if exp, pr := w.maintenance(t.Context()); exp != 0 || pr != 0 {
		t.Errorf("maintenance at once = %d expired, %d pruned; want nothing to do", exp, pr)
	}
	// 8 days on: the events are past the 7-day retention, the soft
	// suppression not yet expired.
	setClock(now.Add(8 * 24 * time.Hour))
	if exp, pr := w.maintenance(t.Context()); exp != 0 || pr != 6 {
		t.Errorf("maintenance 8 days on = %d expired, %d pruned; want 0 and the 6 events (outbox rows)", exp, pr)
	}
	// 31 days on: the soft suppression is over; its removal is an event
	// waiting in the outbox, which is not pruned (unpublished).
	setClock(now.Add(31 * 24 * time.Hour))
	if exp, pr := w.maintenance(t.Context()); exp != 1 || pr != 0 {
		t.Errorf("maintenance 31 days on = %d expired, %d pruned; want 1 and 0", exp, pr)
	}
	if s, err := db.CheckSuppression(t.Context(), "full@example.com", ""); err != nil || s != nil {
		t.Errorf("CheckSuppression(full) after expiry = %+v, %v; want none", s, err)
	}
	if s, err := db.CheckSuppression(t.Context(), "dead@example.com", ""); err != nil || s == nil {
		t.Errorf("CheckSuppression(dead) = %+v, %v; want the hard suppression kept", s, err)
	}
	evs, err := db.PendingEvents(t.Context(), 10)
	if err != nil || len(evs) != 1 || evs[0].Subject != store.SubjectSuppressionRemoved {
		t.Errorf("pending events after expiry = %+v, %v; want one suppression.removed", evs, err)
	}
	if exp, pr := w.maintenance(t.Context()); exp != 0 || pr != 0 {
		t.Errorf("maintenance again = %d expired, %d pruned; want nothing to do", exp, pr)
	}
	if got := logs.String(); !contains(got, "maintenance done", "suppressions_expired=1", "outbox_rows_pruned=6") {
		t.Errorf("maintenance logs lack the counts:\n%s", got)
	}

	// Retention 0 keeps every row.
	publishAll(t, db)
	setClock(now.Add(100 * 24 * time.Hour))
	w.cfg.OutboxRetention = 0
	if _, pr := w.maintenance(t.Context()); pr != 0 {
		t.Errorf("maintenance with retention 0 pruned %d rows, want none", pr)
	}
}

// The worker runs a maintenance round at start, and then on its timer.
func TestMaintenanceTimer(t *testing.T) {
	dbURL := wt.NewDatabase(t)
	n := wt.StartNATS(t)
	db, err := store.Open(t.Context(), dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := testConfig(t, dbURL, n.URL(), "imap://u:p@127.0.0.1:1/INBOX?tls=none")
	cfg.maintenanceEvery = 50 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs syncLog
	w, err := New(cfg.Config, db, nc, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.maintain(ctx) }()
	waitFor(t, 10*time.Second, "three maintenance rounds", func() (bool, string) {
		return countOf(logs.String(), "maintenance done") >= 3, logs.String()
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("maintain = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("maintain did not return after cancel")
	}
}

func testBounce(key string, uid uint32, at time.Time, r classify.Recipient) store.Message {
	return store.Message{
		Mailbox: "bounces@test/INBOX", UIDValidity: 1, UID: uid,
		SHA256: sha256.Sum256([]byte(key)), Size: 100, InternalDate: at,
		Report: &classify.Report{Kind: classify.KindDSN, Recipients: []classify.Recipient{r}},
	}
}

// publishAll marks every pending event published, as the relay would.
func publishAll(t *testing.T, db *store.DB) {
	t.Helper()
	evs, err := db.PendingEvents(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(evs))
	for i := range evs {
		ids[i] = evs[i].ID
	}
	if err := db.MarkPublished(t.Context(), ids); err != nil {
		t.Fatal(err)
	}
}

// syncLog is a log sink safe for concurrent writers.
type syncLog struct {
	mu  sync.Mutex
	buf []byte
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// contains reports whether s holds every one of subs.
func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func countOf(s, sub string) int { return strings.Count(s, sub) }
