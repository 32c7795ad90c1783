package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

func TestSoftWindowAndExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{}) // 3 distinct days within 15, expiring after 30 days
	ctx := t.Context()
	f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', 'full@example.com'), ('promo', 'full@example.com')`)
	soft := func(key string, uid uint32, d int) store.SaveResult {
		f.now = day(d).Add(time.Hour)
		return f.save(bounce(key, uid, day(d), "news", rcpt("full@example.com", classify.MailboxFull)))
	}
	suppressed := func() *store.Suppression {
		t.Helper()
		s, err := f.db.CheckSuppression(ctx, "full@example.com", "news")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	soft("s0", 1, 0)
	soft("s0b", 2, 0) // the same day again: still one day
	soft("s10", 3, 10)
	if s := suppressed(); s != nil {
		t.Fatalf("after soft bounces on 2 days: suppressed = %+v, want not", s)
	}
	soft("s16", 4, 16) // day 0 is out of the window now: days 10 and 16
	if s := suppressed(); s != nil {
		t.Fatalf("after soft bounces on days 0, 10, 16: suppressed = %+v, want not (window 15 days)", s)
	}
	if r := soft("s20", 5, 20); r.Suppressions != 1 { // days 10, 16, 20
		t.Fatalf("soft bounce on day 20 = %+v, want one suppression (days 10, 16, 20)", r)
	}
	s := suppressed()
	if s == nil || s.Reason != store.ReasonSoft || s.Category != classify.MailboxFull || !s.ExpiresAt.Equal(day(20).Add(time.Hour).Add(store.DefaultSoftExpiry)) {
		t.Fatalf("soft suppression = %+v, want reason soft expiring 30 days after day 20", s)
	}
	for _, l := range []string{"news", "promo"} {
		if got := f.member(l, "full@example.com"); got != "bounced" {
			t.Errorf("member %s = %s, want bounced", l, got)
		}
	}
	if r := soft("s21", 6, 21); r.Suppressions != 0 {
		t.Errorf("another soft bounce while suppressed = %+v, want no new suppression", r)
	}

	// Expiry: a day before, nothing; after, the next batch (or
	// ExpireSuppressions) closes it, puts members back, writes the event.
	f.now = s.ExpiresAt.Add(-24 * time.Hour)
	if n, err := f.db.ExpireSuppressions(ctx); n != 0 || err != nil {
		t.Errorf("ExpireSuppressions before expiry = %d, %v", n, err)
	}
	f.now = s.ExpiresAt.Add(time.Minute)
	if s := suppressed(); s != nil {
		t.Errorf("CheckSuppression after expiry = %+v, want none", s)
	}
	r := f.save(bounce("unrelated", 99, f.now, "", rcpt("x@example.org", classify.Delayed)))
	if r.Removed != 1 {
		t.Errorf("SaveBatch after expiry = %+v, want Removed 1", r)
	}
	_, sups, err := f.db.AddressHistory(ctx, "full@example.com", 10)
	if err != nil || len(sups) != 1 {
		t.Fatalf("AddressHistory = %v, %v", sups, err)
	}
	if g := sups[0]; g.RemovedAt.IsZero() || g.RemovedBy != "bouncer" || g.RemovedWhy != "expired" {
		t.Errorf("expired suppression = %+v, want removed by bouncer, expired", g)
	}
	for _, l := range []string{"news", "promo"} {
		if got := f.member(l, "full@example.com"); got != "subscribed" {
			t.Errorf("member %s after expiry = %s, want subscribed", l, got)
		}
	}
	removed := 0
	for _, p := range f.events() {
		if p.Type == store.SubjectSuppressionRemoved && p.Recipient == "full@example.com" && p.Suppression.RemovedWhy == "expired" {
			removed++
		}
	}
	if removed != 1 {
		t.Errorf("suppression.removed events = %d, want 1", removed)
	}
	if n, err := f.db.ExpireSuppressions(ctx); n != 0 || err != nil {
		t.Errorf("ExpireSuppressions after the sweep = %d, %v; want 0", n, err)
	}
}

func TestExpireSuppressionsAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{SoftThreshold: 1, SoftExpiry: 48 * time.Hour})
	f.save(bounce("a", 1, t0, "", rcpt("a@example.com", classify.Expired)))
	f.now = t0.Add(49 * time.Hour)
	if n, err := f.db.ExpireSuppressions(t.Context()); n != 1 || err != nil {
		t.Errorf("ExpireSuppressions = %d, %v; want 1", n, err)
	}
}

func TestSoftThenHardIsOneSuppression(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{SoftThreshold: 2})
	ctx := t.Context()
	f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', 'x@example.com')`)
	f.save(bounce("s1", 1, day(0), "", rcpt("x@example.com", classify.MailboxFull)))
	f.save(bounce("s2", 2, day(1), "", rcpt("x@example.com", classify.MailboxFull)))
	f.now = day(2)
	if r := f.save(bounce("h", 3, day(2), "", rcpt("x@example.com", classify.MailboxUnknown))); r.Suppressions != 1 {
		t.Errorf("hard after soft = %+v, want the suppression upgraded (1)", r)
	}
	if r := f.save(bounce("h2", 4, day(3), "", rcpt("x@example.com", classify.MailboxDisabled))); r.Suppressions != 0 {
		t.Errorf("hard after hard = %+v, want nothing new", r)
	}
	if r := f.save(bounce("s3", 5, day(4), "", rcpt("x@example.com", classify.MailboxFull))); r.Suppressions != 0 {
		t.Errorf("soft after hard = %+v, want nothing new", r)
	}
	if got := f.n(`SELECT count(*) FROM suppressions`); got != 1 {
		t.Fatalf("suppressions = %d, want 1", got)
	}
	s, _ := f.db.CheckSuppression(ctx, "x@example.com", "")
	if s.Reason != store.ReasonHard || s.UpgradedFrom != store.ReasonSoft || !s.ExpiresAt.IsZero() || s.Category != classify.MailboxUnknown {
		t.Errorf("suppression = %+v, want hard (upgraded from soft), never expiring", s)
	}
	if got := f.n(`SELECT count(*) FROM outbox WHERE subject = 'suppression.added'`); got != 2 {
		t.Errorf("suppression.added events = %d, want 2 (soft, then hard)", got)
	}
	if got := f.member("news", "x@example.com"); got != "bounced" {
		t.Errorf("member = %s, want bounced", got)
	}
	// A complaint is stronger still: same record, members complained.
	f.save(bounce("c", 6, day(5), "", rcpt("x@example.com", classify.Complaint)))
	s, _ = f.db.CheckSuppression(ctx, "x@example.com", "")
	if s.Reason != store.ReasonComplaint || s.UpgradedFrom != store.ReasonHard {
		t.Errorf("after a complaint: %+v, want reason complaint upgraded from hard", s)
	}
	if got := f.member("news", "x@example.com"); got != "complained" {
		t.Errorf("member after complaint = %s, want complained", got)
	}
}

func TestNeverSuppress(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{SoftThreshold: 1})
	f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', 'a@example.com'), ('news', 'b@example.com'), ('news', 'c@example.com')`)
	notFlagged := rcpt("a@example.com", classify.MailboxUnknown)
	notFlagged.Suppress = false // the classifier knows better (e.g. our own auto-reply bounced)
	autoReply := bounce("ar", 2, t0, "news", rcpt("b@example.com", classify.MailboxUnknown))
	autoReply.Report.Original.AutoReply = true
	var msgs []store.Message
	msgs = append(msgs, bounce("nf", 1, t0, "news", notFlagged), autoReply)
	for i, c := range []classify.Category{classify.RelayDenied, classify.AuthRequired, classify.SenderRejected,
		classify.Blocked, classify.ContentRejected, classify.Policy, classify.MessageTooLarge,
		classify.RateLimited, classify.Network, classify.System, classify.Unknown, classify.Delayed} {
		r := rcpt("c@example.com", c)
		r.Suppress = true // even if the classifier said so
		msgs = append(msgs, bounce("never-"+string(c), uint32(10+i), t0, "news", r))
	}
	if r := f.save(msgs...); r.Suppressions != 0 || r.Bounces != len(msgs) {
		t.Errorf("SaveBatch = %+v, want %d bounces and no suppression", r, len(msgs))
	}
	if got := f.counts()["list_members_changed"]; got != 0 {
		t.Errorf("list members changed = %d, want 0", got)
	}
}

func TestComplaints(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', 'abuse@example.com'), ('news', 'ns@example.com'), ('news', 'out@example.com')`)
	notSpam := bounce("ns", 2, t0, "news", rcpt("ns@example.com", classify.Complaint))
	notSpam.Report.FeedbackType = "not-spam"
	optOut := bounce("oo", 3, t0, "news", rcpt("out@example.com", classify.Complaint))
	optOut.Report.FeedbackType = "opt-out"
	optOut.Report.Original.AutoReply = true                                // an unsubscribe mail is automatic; it still counts
	noAddress := bounce("na", 4, t0, "news", rcpt("", classify.Complaint)) // the report named nobody
	if r := f.save(bounce("ab", 1, t0, "news", rcpt("abuse@example.com", classify.Complaint)), notSpam, optOut, noAddress); r.Suppressions != 2 || r.Bounces != 4 {
		t.Errorf("SaveBatch = %+v, want 4 bounce rows and 2 suppressions (abuse, opt-out)", r)
	}
	for addr, want := range map[string]store.Reason{"abuse@example.com": store.ReasonComplaint, "out@example.com": store.ReasonUnsubscribe} {
		s, _ := f.db.CheckSuppression(ctx, addr, "news")
		if s == nil || s.Reason != want || s.Scope() != store.ScopeGlobal {
			t.Errorf("CheckSuppression(%s) = %+v, want global %s", addr, s, want)
		}
	}
	if s, _ := f.db.CheckSuppression(ctx, "ns@example.com", "news"); s != nil {
		t.Errorf("not-spam feedback suppressed: %+v", s)
	}
	for addr, want := range map[string]string{"abuse@example.com": "complained", "out@example.com": "unsubscribed", "ns@example.com": "subscribed"} {
		if got := f.member("news", addr); got != want {
			t.Errorf("member %s = %s, want %s", addr, got, want)
		}
	}
	if _, err := f.db.Unsuppress(ctx, "out@example.com", "", "erin", "resubscribed on the web"); err != nil {
		t.Fatal(err)
	}
	if got := f.member("news", "out@example.com"); got != "subscribed" {
		t.Errorf("member out@ after undo = %s, want subscribed", got)
	}
}

func TestListScope(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{Scope: store.ScopeList})
	ctx := t.Context()
	f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', 'a@example.com'), ('promo', 'a@example.com'), ('news', 'b@example.com'), ('promo', 'b@example.com')`)
	f.save(bounce("l1", 1, t0, "news", rcpt("a@example.com", classify.MailboxUnknown)),
		bounce("l2", 2, t0, "", rcpt("b@example.com", classify.MailboxUnknown))) // no list id: global
	if s, _ := f.db.CheckSuppression(ctx, "a@example.com", "news"); s == nil || s.ListID != "news" || s.Scope() != store.ScopeList {
		t.Errorf("CheckSuppression(a, news) = %+v, want the news list suppression", s)
	}
	if s, _ := f.db.CheckSuppression(ctx, "a@example.com", "promo"); s != nil {
		t.Errorf("CheckSuppression(a, promo) = %+v, want none", s)
	}
	if s, _ := f.db.CheckSuppression(ctx, "a@example.com", ""); s != nil {
		t.Errorf("CheckSuppression(a, global) = %+v, want none", s)
	}
	if s, _ := f.db.CheckSuppression(ctx, "b@example.com", "promo"); s == nil || s.Scope() != store.ScopeGlobal {
		t.Errorf("CheckSuppression(b, promo) = %+v, want the global one", s)
	}
	want := map[[2]string]string{{"news", "a@example.com"}: "bounced", {"promo", "a@example.com"}: "subscribed",
		{"news", "b@example.com"}: "bounced", {"promo", "b@example.com"}: "bounced"}
	for k, w := range want {
		if got := f.member(k[0], k[1]); got != w {
			t.Errorf("member %s/%s = %s, want %s", k[0], k[1], got, w)
		}
	}
	// A global suppression later does not duplicate; a list one under a
	// global one is not added.
	f.save(bounce("l3", 3, t0, "promo", rcpt("b@example.com", classify.MailboxUnknown)))
	if got := f.n(`SELECT count(*) FROM suppressions WHERE address = 'b@example.com'`); got != 1 {
		t.Errorf("suppressions of b = %d, want 1 (the global one covers promo)", got)
	}
}

func TestUndo(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	f.exec(`INSERT INTO list_members (list_id, address, status) VALUES ('news', 'a@example.com', 'subscribed'), ('promo', 'a@example.com', 'subscribed'), ('old', 'a@example.com', 'unsubscribed')`)
	f.save(bounce("u1", 1, t0, "news", rcpt("A@example.com", classify.MailboxUnknown)))
	if got := f.member("promo", "a@example.com"); got != "bounced" {
		t.Fatalf("member promo = %s, want bounced", got)
	}
	f.now = t0.Add(time.Hour)
	s, err := f.db.Unsuppress(ctx, "a@EXAMPLE.com", "", "alice", "mailbox restored, confirmed by phone")
	if err != nil {
		t.Fatalf("Unsuppress = %v", err)
	}
	if s.RemovedBy != "alice" || s.RemovedWhy != "mailbox restored, confirmed by phone" || !s.RemovedAt.Equal(f.now) {
		t.Errorf("removed suppression = %+v, want who, why and when", s)
	}
	for l, want := range map[string]string{"news": "subscribed", "promo": "subscribed", "old": "unsubscribed"} {
		if got := f.member(l, "a@example.com"); got != want {
			t.Errorf("member %s after undo = %s, want %s", l, got, want)
		}
	}
	if c, _ := f.db.CheckSuppression(ctx, "a@example.com", "news"); c != nil {
		t.Errorf("CheckSuppression after undo = %+v, want none", c)
	}
	if got := f.n(`SELECT count(*) FROM suppressions`); got != 1 {
		t.Errorf("suppression records = %d, want 1 (undo is a record, not a delete)", got)
	}
	evs, _ := f.db.PendingEvents(ctx, 10)
	last := evs[len(evs)-1]
	var p store.Payload
	_ = json.Unmarshal(last.Payload, &p)
	if last.Subject != store.SubjectSuppressionRemoved || p.Suppression == nil || p.Suppression.RemovedBy != "alice" || p.Status != "5.1.1" {
		t.Errorf("last event = %s %s, want suppression.removed by alice with the evidence", last.Subject, last.Payload)
	}
	if _, err := f.db.Unsuppress(ctx, "a@example.com", "", "alice", "again"); !errors.Is(err, store.ErrNotSuppressed) {
		t.Errorf("Unsuppress twice = %v, want ErrNotSuppressed", err)
	}
	if _, err := f.db.Unsuppress(ctx, "a@example.com", "", "", ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Unsuppress without who/why = %v, want ErrInvalid", err)
	}

	// Manual: add on a list, then on global; removing the global one leaves
	// the list one in force on its list.
	m, created, err := f.db.Suppress(ctx, store.SuppressRequest{Address: "a@example.com", ListID: "news", Note: "asked by phone", By: "bob"})
	if err != nil || !created || m.Reason != store.ReasonManual || m.CreatedBy != "bob" || m.Note != "asked by phone" {
		t.Fatalf("Suppress(list) = %+v, %v, %v", m, created, err)
	}
	if _, created, _ := f.db.Suppress(ctx, store.SuppressRequest{Address: "a@example.com", ListID: "news", By: "bob"}); created {
		t.Errorf("Suppress twice created a second one")
	}
	if _, _, err := f.db.Suppress(ctx, store.SuppressRequest{Address: "a@example.com", Reason: store.ReasonHard, By: "bob"}); err != nil {
		t.Fatal(err)
	}
	if got := f.member("promo", "a@example.com"); got != "bounced" {
		t.Errorf("member promo after global hard = %s, want bounced", got)
	}
	if _, err := f.db.Unsuppress(ctx, "a@example.com", "", "bob", "wrong address"); err != nil {
		t.Fatal(err)
	}
	if got, want := f.member("promo", "a@example.com"), "subscribed"; got != want {
		t.Errorf("member promo = %s, want %s", got, want)
	}
	if got, want := f.member("news", "a@example.com"), "unsubscribed"; got != want {
		t.Errorf("member news = %s, want %s (the list suppression is still in force)", got, want)
	}
	for _, bad := range []string{"not an address", "@example.com", "a@"} {
		if _, _, err := f.db.Suppress(ctx, store.SuppressRequest{Address: bad, By: "bob"}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Suppress(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// The soft days of a batch's own rows count, alone or with rows saved
// before, and a message saved again counts once.
func TestSoftDaysWithinOneBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{}) // 3 distinct days within 15
	full := func(key string, uid uint32, d int, addr string) store.Message {
		return bounce(key, uid, day(d), "news", rcpt(addr, classify.MailboxFull))
	}
	f.now = day(10)
	if r := f.save(full("a0", 1, 0, "a@example.com"), full("a5", 2, 5, "a@example.com"), full("a9", 3, 9, "a@example.com")); r.Suppressions != 1 {
		t.Errorf("three soft days in one batch = %+v, want one suppression", r)
	}
	if r := f.save(full("b0", 4, 0, "b@example.com"), full("b0b", 5, 0, "b@example.com"), full("c0", 6, 0, "c@example.com")); r.Suppressions != 0 {
		t.Errorf("one soft day twice = %+v, want no suppression", r)
	}
	// Saved again with a new day: day 0 (saved before, and again now) and
	// day 3 make two days.
	if r := f.save(full("b0", 4, 0, "b@example.com"), full("b3", 7, 3, "b@example.com")); r.Suppressions != 0 || r.Duplicates != 1 {
		t.Errorf("a repeated day = %+v, want no suppression, one duplicate", r)
	}
	if r := f.save(full("b7", 8, 7, "b@example.com"), full("c7", 9, 7, "c@example.com")); r.Suppressions != 1 {
		t.Errorf("third day = %+v, want one suppression (b)", r)
	}
	if s, err := f.db.CheckSuppression(t.Context(), "b@example.com", "news"); err != nil || s == nil || s.Reason != store.ReasonSoft {
		t.Errorf("CheckSuppression(b) = %+v, %v; want soft", s, err)
	}
}

// TestCheckSuppressionNotAnAddress: a check of something that is not an
// address is an error, not "may be mailed"; so is a negative list limit.
func TestCheckSuppressionNotAnAddress(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	for _, bad := range []string{"", "  ", "not an address", "a@", "@example.com"} {
		if s, err := f.db.CheckSuppression(t.Context(), bad, ""); !errors.Is(err, store.ErrInvalid) || s != nil {
			t.Errorf("CheckSuppression(%q) = %+v, %v; want ErrInvalid", bad, s, err)
		}
	}
	if l, err := f.db.ListSuppressions(t.Context(), store.SuppressionFilter{Limit: -1}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ListSuppressions(limit -1) = %v, %v; want ErrInvalid", l, err)
	}
	if s, err := f.db.CheckSuppression(t.Context(), "A@Example.COM", ""); err != nil || s != nil {
		t.Errorf("CheckSuppression(A@Example.COM) = %+v, %v; want none", s, err)
	}
}

// Suppression ids follow one another, whichever connection takes them:
// each CLI call is a new connection, and ids taken in blocks per
// connection made them jump by hundreds.
func TestSuppressionIDsConsecutive(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	var last int64
	for i := range 4 {
		// A new pool each time: a new connection, as a CLI call has.
		db, err := store.Open(ctx, f.url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, added, err := db.Suppress(ctx, store.SuppressRequest{Address: fmt.Sprintf("id%d@example.com", i), By: "test"})
		db.Close()
		if err != nil || !added {
			t.Fatalf("Suppress #%d = %+v, %v, %v", i, s, added, err)
		}
		if i > 0 && s.ID != last+1 {
			t.Errorf("suppression #%d has id %d, want %d (the one after the last)", i, s.ID, last+1)
		}
		last = s.ID
	}
	// The policy's suppressions too, with a hand-made one after them.
	res := f.save(bounce("ids", 1, t0, "", rcpt("p1@example.com", classify.MailboxUnknown), rcpt("p2@example.com", classify.MailboxUnknown)))
	s, _, err := f.db.Suppress(ctx, store.SuppressRequest{Address: "after@example.com", By: "test"})
	if err != nil || res.Suppressions != 2 || s.ID != last+3 {
		t.Errorf("after a batch with %d suppressions, Suppress = id %d, %v; want id %d", res.Suppressions, s.ID, err, last+3)
	}
}
