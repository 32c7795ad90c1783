package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

// reviewFixture saves hard bounces (global suppressions): five of rule
// "misfire" on day 1 (members of list news), two of rule "good" on day 2,
// and one manual suppression on list promo.
func reviewFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, store.Policy{})
	f.now = day(1)
	f.exec(`INSERT INTO list_members (list_id, address, status)
		SELECT 'news', 'm' || g || '@misfire.example', 'subscribed' FROM generate_series(0, 4) g`)
	for i := range 5 {
		r := rcpt(fmt.Sprintf("m%d@misfire.example", i), classify.MailboxUnknown)
		r.Rule = "misfire"
		f.save(bounce(fmt.Sprintf("m%d", i), uint32(1+i), day(1), "news", r))
	}
	f.now = day(2)
	for i := range 2 {
		r := rcpt(fmt.Sprintf("g%d@good.example", i), classify.DomainUnknown)
		r.Rule = "good"
		f.save(bounce(fmt.Sprintf("g%d", i), uint32(10+i), day(2), "", r))
	}
	if _, _, err := f.db.Suppress(t.Context(), store.SuppressRequest{Address: "hand@good.example", ListID: "promo", By: "alice", Note: "asked"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func addresses(rows []store.ReviewRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Address)
	}
	return out
}

func TestSearchSuppressions(t *testing.T) {
	t.Parallel()
	f := reviewFixture(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		f    store.ReviewFilter
		want []string
	}{
		{"all in force", store.ReviewFilter{}, []string{"hand@good.example", "g1@good.example", "g0@good.example",
			"m4@misfire.example", "m3@misfire.example", "m2@misfire.example", "m1@misfire.example", "m0@misfire.example"}},
		{"address, as typed", store.ReviewFilter{Query: " <M3@Misfire.Example> "}, []string{"m3@misfire.example"}},
		{"domain", store.ReviewFilter{Query: "GOOD.example"}, []string{"hand@good.example", "g1@good.example", "g0@good.example"}},
		{"global", store.ReviewFilter{Global: true, Query: "good.example"}, []string{"g1@good.example", "g0@good.example"}},
		{"list", store.ReviewFilter{ListID: "promo"}, []string{"hand@good.example"}},
		{"reason", store.ReviewFilter{Reason: store.ReasonManual}, []string{"hand@good.example"}},
		{"rule", store.ReviewFilter{Rule: "good"}, []string{"g1@good.example", "g0@good.example"}},
		{"category", store.ReviewFilter{Category: classify.DomainUnknown}, []string{"g1@good.example", "g0@good.example"}},
		{"dates", store.ReviewFilter{From: day(1), To: day(2), Query: "misfire.example", Limit: 2},
			[]string{"m4@misfire.example", "m3@misfire.example"}},
		{"lifted", store.ReviewFilter{State: store.StateLifted}, nil},
	} {
		rows, _, err := f.db.SearchSuppressions(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: SearchSuppressions = %v", tc.name, err)
		}
		if got := addresses(rows); !slices.Equal(got, tc.want) {
			t.Errorf("%s: SearchSuppressions = %q, want %q", tc.name, got, tc.want)
		}
	}

	// Paging by the cursor covers everything once, in order.
	var all []string
	var before int64
	for pages := 0; ; pages++ {
		rows, next, err := f.db.SearchSuppressions(ctx, store.ReviewFilter{Limit: 3, Before: before})
		if err != nil || pages > 5 {
			t.Fatalf("page %d: %v", pages, err)
		}
		all = append(all, addresses(rows)...)
		if next == 0 {
			break
		}
		before = next
	}
	if n, err := f.db.CountSuppressions(ctx, store.ReviewFilter{Limit: 3, Before: 99}); err != nil || n != 8 || len(all) != 8 {
		t.Errorf("CountSuppressions = %d, %v; paged %d rows %q; want 8 each", n, err, len(all), all)
	}
	rows, _, _ := f.db.SearchSuppressions(ctx, store.ReviewFilter{Rule: "misfire", Limit: 1})
	if r := rows[0]; r.Rule != "misfire" || r.Category != classify.MailboxUnknown || r.ListID != "" || r.Reason != store.ReasonHard {
		t.Errorf("row = %+v, want rule misfire, mailbox_unknown, global, hard", r)
	}
	for _, bad := range []store.ReviewFilter{{State: "gone"}, {Reason: "bored"}, {Limit: -1}} {
		if _, _, err := f.db.SearchSuppressions(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("SearchSuppressions(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestSuppressionByIDAndUndo(t *testing.T) {
	t.Parallel()
	f := reviewFixture(t)
	ctx := t.Context()
	rows, _, _ := f.db.SearchSuppressions(ctx, store.ReviewFilter{Query: "m2@misfire.example"})
	id := rows[0].ID
	d, err := f.db.SuppressionByID(ctx, id)
	if err != nil || d == nil || d.Bounce == nil {
		t.Fatalf("SuppressionByID(%d) = %+v, %v; want it with its bounce", id, d, err)
	}
	if b := d.Bounce; b.Rule != "misfire" || b.Diagnostic != "550 5.1.1 user unknown" || b.Mailbox != "bounces@test/INBOX" || b.SMTPCode != 550 {
		t.Errorf("evidence = %+v, want rule misfire, the server's words, the mailbox", b)
	}
	if want := []store.Membership{{ListID: "news", Status: "bounced", PreviousStatus: "subscribed"}}; !slices.Equal(d.Members, want) {
		t.Errorf("members = %+v, want %+v", d.Members, want)
	}
	if d, err := f.db.SuppressionByID(ctx, id+1000); d != nil || err != nil {
		t.Errorf("SuppressionByID(missing) = %+v, %v; want nil, nil", d, err)
	}
	hand, _, _ := f.db.SearchSuppressions(ctx, store.ReviewFilter{Reason: store.ReasonManual})
	if d, err := f.db.SuppressionByID(ctx, hand[0].ID); err != nil || d.Bounce != nil || d.CreatedBy != "alice" {
		t.Errorf("SuppressionByID(manual) = %+v, %v; want no bounce, by alice", d, err)
	}

	if _, err := f.db.UnsuppressID(ctx, id, "bob", " "); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("UnsuppressID without why = %v, want ErrInvalid", err)
	}
	before := len(f.events())
	s, err := f.db.UnsuppressID(ctx, id, "bob", "mailbox exists, checked")
	if err != nil || s.ID != id || s.RemovedBy != "bob" || s.RemovedWhy != "mailbox exists, checked" {
		t.Fatalf("UnsuppressID = %+v, %v", s, err)
	}
	if got := f.member("news", "m2@misfire.example"); got != "subscribed" {
		t.Errorf("member after undo = %s, want subscribed", got)
	}
	evs := f.events()
	if len(evs) != before+1 || evs[len(evs)-1].Type != store.SubjectSuppressionRemoved || evs[len(evs)-1].Suppression.ID != id {
		t.Errorf("events after undo = %d (was %d), want one more suppression.removed of %d", len(evs), before, id)
	}
	if _, err := f.db.UnsuppressID(ctx, id, "bob", "again"); !errors.Is(err, store.ErrNotSuppressed) {
		t.Errorf("UnsuppressID twice = %v, want ErrNotSuppressed", err)
	}
	if _, err := f.db.UnsuppressID(ctx, id+1000, "bob", "none"); !errors.Is(err, store.ErrNotSuppressed) {
		t.Errorf("UnsuppressID(missing) = %v, want ErrNotSuppressed", err)
	}
}

func TestBulkUndo(t *testing.T) {
	t.Parallel()
	f := reviewFixture(t)
	ctx := t.Context()
	if _, err := f.db.PreviewBulkUndo(ctx, store.BulkSelect{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("PreviewBulkUndo(nothing named) = %v, want ErrInvalid", err)
	}
	if p, err := f.db.PreviewBulkUndo(ctx, store.BulkSelect{Day: day(2).Add(5 * time.Hour)}); err != nil || p.Count != 3 {
		t.Errorf("PreviewBulkUndo(day 2) = %+v, %v; want 3 (two bounces, one by hand)", p, err)
	}
	sel := store.BulkSelect{Rule: "misfire", Day: day(1)}
	p, err := f.db.PreviewBulkUndo(ctx, sel)
	if err != nil || p.Count != 5 {
		t.Fatalf("PreviewBulkUndo(misfire) = %+v, %v; want 5", p, err)
	}
	// One more of the rule after the preview: not lifted, not counted.
	f.exec(`INSERT INTO list_members (list_id, address, status) VALUES ('news', 'late@misfire.example', 'subscribed')`)
	late := rcpt("late@misfire.example", classify.MailboxUnknown)
	late.Rule = "misfire"
	f.save(bounce("late", 30, day(1), "news", late))
	f.now = day(3)
	evs := len(f.events())
	n, err := f.db.BulkUndo(ctx, store.BulkSelect{Rule: "misfire"}, p, "carol", "rule misfired on day 1")
	if err != nil || n != 5 {
		t.Fatalf("BulkUndo = %d, %v; want 5", n, err)
	}
	for i := range 5 {
		if got := f.member("news", fmt.Sprintf("m%d@misfire.example", i)); got != "subscribed" {
			t.Errorf("member m%d after bulk undo = %s, want subscribed", i, got)
		}
	}
	if got := f.member("news", "late@misfire.example"); got != "bounced" {
		t.Errorf("member late = %s, want bounced: it came after the preview", got)
	}
	removed := 0
	for _, e := range f.events()[evs:] {
		if e.Type == store.SubjectSuppressionRemoved && e.Suppression.RemovedBy == "carol" && e.Suppression.RemovedWhy == "rule misfired on day 1" {
			removed++
		}
	}
	if removed != 5 {
		t.Errorf("suppression.removed events by carol = %d, want 5", removed)
	}

	// A stale preview lifts nothing.
	p, _ = f.db.PreviewBulkUndo(ctx, store.BulkSelect{Rule: "good"})
	if _, err := f.db.Unsuppress(ctx, "g0@good.example", "", "dave", "one by hand"); err != nil {
		t.Fatal(err)
	}
	if n, err := f.db.BulkUndo(ctx, store.BulkSelect{Rule: "good"}, p, "carol", "stale"); !errors.Is(err, store.ErrPreviewStale) || n != 0 {
		t.Errorf("BulkUndo(stale preview) = %d, %v; want ErrPreviewStale", n, err)
	}
	if c, _ := f.db.CheckSuppression(ctx, "g1@good.example", ""); c == nil {
		t.Errorf("g1 lifted by a stale bulk undo")
	}
	if _, err := f.db.BulkUndo(ctx, store.BulkSelect{Rule: "good"}, p, "", "why"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("BulkUndo without who = %v, want ErrInvalid", err)
	}
}
