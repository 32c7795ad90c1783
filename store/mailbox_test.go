package store_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

func TestCheckpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	if _, ok, err := f.db.Checkpoint(ctx, "mb"); ok || err != nil {
		t.Errorf("Checkpoint(new mailbox) = _, %v, %v; want false, nil", ok, err)
	}
	steps := []struct{ save, want store.Checkpoint }{
		{store.Checkpoint{UIDValidity: 5, LastUID: 10}, store.Checkpoint{UIDValidity: 5, LastUID: 10}},
		{store.Checkpoint{UIDValidity: 5, LastUID: 20}, store.Checkpoint{UIDValidity: 5, LastUID: 20}},
		{store.Checkpoint{UIDValidity: 5, LastUID: 15}, store.Checkpoint{UIDValidity: 5, LastUID: 20}}, // never backwards
		{store.Checkpoint{UIDValidity: 6, LastUID: 3}, store.Checkpoint{UIDValidity: 6, LastUID: 3}},   // new UIDVALIDITY: start over
		{store.Checkpoint{UIDValidity: 4294967295, LastUID: 4294967295}, store.Checkpoint{UIDValidity: 4294967295, LastUID: 4294967295}},
	}
	for _, s := range steps {
		if err := f.db.SaveCheckpoint(ctx, "mb", s.save); err != nil {
			t.Fatal(err)
		}
		got, ok, err := f.db.Checkpoint(ctx, "mb")
		if err != nil || !ok || got != s.want {
			t.Errorf("after SaveCheckpoint(%+v): Checkpoint = %+v, %v, %v; want %+v", s.save, got, ok, err, s.want)
		}
	}
}

func TestLease(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	acquire := func(owner string, ttl time.Duration) bool {
		t.Helper()
		ok, err := f.db.AcquireLease(ctx, "mb", owner, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !acquire("w1", time.Minute) {
		t.Fatal("AcquireLease(free) = false")
	}
	if acquire("w2", time.Minute) {
		t.Error("AcquireLease(held by w1) for w2 = true")
	}
	// w1 renews for a microsecond and dies: the lease has lapsed by the
	// next statement (the database's clock_timestamp() has moved on).
	if !acquire("w1", time.Microsecond) {
		t.Error("AcquireLease(renew by w1) = false")
	}
	if !acquire("w2", time.Minute) {
		t.Error("AcquireLease(lapsed) for w2 = false")
	}
	if acquire("w1", time.Minute) {
		t.Error("AcquireLease(taken over by w2) for w1 = true")
	}
	if err := f.db.ReleaseLease(ctx, "mb", "w1"); err != nil { // not the owner: nothing
		t.Fatal(err)
	}
	if acquire("w1", time.Minute) {
		t.Error("w1 got the lease after releasing one it did not hold")
	}
	if err := f.db.ReleaseLease(ctx, "mb", "w2"); err != nil {
		t.Fatal(err)
	}
	if !acquire("w1", time.Minute) {
		t.Error("AcquireLease after release = false")
	}
}

func TestOutbox(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	if n, oldest, err := f.db.OutboxLag(ctx); n != 0 || !oldest.IsZero() || err != nil {
		t.Errorf("OutboxLag(empty) = %d, %v, %v", n, oldest, err)
	}
	f.save(bounce("o1", 1, t0, "", rcpt("a@example.com", classify.MailboxFull)))
	f.now = t0.Add(time.Minute)
	f.save(bounce("o2", 2, t0, "", rcpt("b@example.com", classify.MailboxUnknown)))

	n, oldest, err := f.db.OutboxLag(ctx)
	if n != 3 || !oldest.Equal(t0) || err != nil {
		t.Errorf("OutboxLag = %d, %v, %v; want 3, %v", n, oldest, err, t0)
	}
	evs, err := f.db.PendingEvents(ctx, 2)
	if err != nil || len(evs) != 2 {
		t.Fatalf("PendingEvents(2) = %d events, %v", len(evs), err)
	}
	if evs[0].Subject != "bounce.soft.mailbox_full" || evs[0].ID >= evs[1].ID || evs[0].MsgID == "" {
		t.Errorf("PendingEvents: first = %+v, want the oldest (soft bounce) first", evs[0])
	}
	if err := f.db.MarkPublished(ctx, []int64{evs[0].ID, evs[1].ID}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.MarkPublished(ctx, []int64{evs[0].ID}); err != nil { // twice: harmless
		t.Fatal(err)
	}
	rest, _ := f.db.PendingEvents(ctx, 10)
	if len(rest) != 1 || rest[0].Subject != "suppression.added" {
		t.Errorf("PendingEvents after MarkPublished = %+v, want the suppression event only", rest)
	}
	if n, oldest, _ := f.db.OutboxLag(ctx); n != 1 || !oldest.Equal(t0.Add(time.Minute)) {
		t.Errorf("OutboxLag = %d, %v; want 1, %v", n, oldest, t0.Add(time.Minute))
	}

	// The Nats-Msg-Id of a recipient's bounce does not depend on where or
	// when the message was read.
	m := bounce("o1", 1, t0, "", rcpt("a@example.com", classify.MailboxFull))
	m.Mailbox = "elsewhere"
	g := newFixture(t, store.Policy{})
	g.save(m)
	other, _ := g.db.PendingEvents(ctx, 1)
	if other[0].MsgID != evs[0].MsgID {
		t.Errorf("MsgID of the same bounce in another database = %s, want %s", other[0].MsgID, evs[0].MsgID)
	}
}

func TestOutboxPartialAndConcurrentMarks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	var msgs []store.Message
	for i := range 40 {
		msgs = append(msgs, bounce(fmt.Sprintf("p%d", i), uint32(i+1), t0, "", rcpt(fmt.Sprintf("u%d@example.com", i), classify.MailboxUnknown)))
	}
	f.save(msgs[:20]...)
	f.save(msgs[20:]...)
	evs, err := f.db.PendingEvents(ctx, 1000)
	if err != nil || len(evs) != 80 {
		t.Fatalf("PendingEvents = %d events, %v; want 80", len(evs), err)
	}
	seen := map[string]bool{}
	for i, e := range evs {
		if seen[e.MsgID] {
			t.Errorf("MsgID %s twice", e.MsgID)
		}
		seen[e.MsgID] = true
		if i > 0 && e.ID <= evs[i-1].ID {
			t.Errorf("event ids not increasing at %d", i)
		}
	}
	if n := f.n(`SELECT count(*) FROM outbox WHERE published_at IS NULL`); n != 80 {
		t.Errorf("outbox view: unpublished = %d, want 80", n)
	}
	// Four publishers mark interleaved events of both rows at once: no flag
	// may be lost, and none may deadlock.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			var ids []int64
			for i := w; i < len(evs); i += 4 {
				if i%10 != 0 { // leave every tenth unpublished
					ids = append(ids, evs[i].ID)
				}
			}
			if err := f.db.MarkPublished(context.Background(), ids); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.n(`SELECT count(*) FROM outbox WHERE published_at IS NOT NULL`); n != 72 {
		t.Errorf("outbox view: published = %d, want 72", n)
	}
	if n := f.n(`SELECT count(*) FROM (SELECT id, lag(id) OVER (ORDER BY id) AS prev, msg_id FROM outbox) s WHERE prev IS NOT NULL AND prev >= id`); n != 0 {
		t.Errorf("outbox view ids not increasing")
	}
	if got := f.n(`SELECT count(*) FROM outbox o WHERE o.id = $1 AND o.msg_id = $2`, evs[41].ID, evs[41].MsgID); got != 1 {
		t.Errorf("outbox view: id %d is not event %s", evs[41].ID, evs[41].MsgID)
	}
	rest, _ := f.db.PendingEvents(ctx, 1000)
	if len(rest) != 8 {
		t.Fatalf("PendingEvents after marking 72 = %d, want 8", len(rest))
	}
	for i := 0; i < 80; i += 10 {
		found := false
		for _, e := range rest {
			found = found || e.MsgID == evs[i].MsgID
		}
		if !found {
			t.Errorf("event %d (left unpublished) is not pending", i)
		}
	}
	if n, _, _ := f.db.OutboxLag(ctx); n != 8 {
		t.Errorf("OutboxLag = %d, want 8", n)
	}
	// Published events go, those pending stay.
	if n, err := f.db.PruneOutbox(ctx, t0.Add(time.Hour)); n != 72 || err != nil {
		t.Errorf("PruneOutbox with events pending = %d, %v; want the 72 published", n, err)
	}
	if n, err := f.db.PruneOutbox(ctx, t0.Add(time.Hour)); n != 0 || err != nil {
		t.Errorf("PruneOutbox again = %d, %v; want 0", n, err)
	}
	var ids []int64
	for _, e := range rest {
		ids = append(ids, e.ID)
	}
	if err := f.db.MarkPublished(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if n, oldest, _ := f.db.OutboxLag(ctx); n != 0 || !oldest.IsZero() {
		t.Errorf("OutboxLag after all = %d, %v", n, oldest)
	}
	if n, err := f.db.PruneOutbox(ctx, t0); n != 0 || err != nil {
		t.Errorf("PruneOutbox(before they were published) = %d, %v; want 0", n, err)
	}
	if n, err := f.db.PruneOutbox(ctx, t0.Add(time.Hour)); n != 8 || err != nil {
		t.Errorf("PruneOutbox = %d, %v; want the other 8", n, err)
	}
}

// TestPendingEventsPages reads events of many transactions, some
// published, with limits that end inside a transaction's events and on
// their end.
func TestPendingEventsPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	for i := range 30 { // 30 transactions of 2 events
		f.save(bounce(fmt.Sprintf("g%d", i), uint32(i+1), t0, "", rcpt(fmt.Sprintf("g%d@example.com", i), classify.MailboxUnknown)))
	}
	all, err := f.db.PendingEvents(ctx, 1000)
	if err != nil || len(all) != 60 {
		t.Fatalf("PendingEvents = %d events, %v; want 60", len(all), err)
	}
	// Publish both events of every third transaction and the first of
	// every fourth.
	var ids []int64
	var want []store.Event
	for i, e := range all {
		row := i / 2
		if row%3 == 0 || (row%4 == 0 && i%2 == 0) {
			ids = append(ids, e.ID)
			continue
		}
		want = append(want, e)
	}
	if err := f.db.MarkPublished(ctx, ids); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 7, 8, 9, 17, len(want), 1000} {
		got, err := f.db.PendingEvents(ctx, limit)
		n := min(limit, len(want))
		if err != nil || !reflect.DeepEqual(got, want[:n]) {
			t.Errorf("PendingEvents(%d) = %d events, %v; want the first %d unpublished", limit, len(got), err, n)
		}
	}
}

// A mailbox known by several names is leased all or nothing: an owner
// whose names overlap another's gets none of them, and leaves none taken.
func TestLeasesAllOrNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	acquire := func(owner string, names ...string) bool {
		t.Helper()
		ok, err := f.db.AcquireLeases(ctx, names, owner, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !acquire("w1", "b@localhost:143/INBOX", "b@127.0.0.1:143/INBOX") {
		t.Fatal("AcquireLeases(free) = false")
	}
	if acquire("w2", "b@other:143/INBOX", "b@127.0.0.1:143/INBOX") {
		t.Error("AcquireLeases(overlapping w1's) for w2 = true")
	}
	if n := f.n(`SELECT count(*) FROM mailbox_leases WHERE owner = 'w2'`); n != 0 {
		t.Errorf("w2 holds %d leases after failing to get all, want 0", n)
	}
	if !acquire("w1", "b@localhost:143/INBOX", "b@127.0.0.1:143/INBOX") {
		t.Error("AcquireLeases(renew) = false")
	}
	if err := f.db.ReleaseLeases(ctx, []string{"b@localhost:143/INBOX", "b@127.0.0.1:143/INBOX"}, "w1"); err != nil {
		t.Fatal(err)
	}
	if !acquire("w2", "b@other:143/INBOX", "b@127.0.0.1:143/INBOX") {
		t.Error("AcquireLeases after release = false")
	}
}
