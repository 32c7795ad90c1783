package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

func TestViews(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	relay := rcpt("c@other.org", classify.RelayDenied) // 553 5.7.1
	unknown553 := rcpt("d@other.org", classify.MailboxUnknown)
	unknown553.SMTPCode = 553
	m1 := bounce("v1", 1, day(0), "news", rcpt("a@example.com", classify.MailboxUnknown), rcpt("b@example.com", classify.MailboxUnknown))
	m2 := bounce("v2", 2, day(0).Add(13*time.Hour), "news", relay, unknown553) // 23:00 UTC: still day 0
	m3 := bounce("v3", 3, day(1), "news", rcpt("e@example.com", classify.MailboxFull))
	m3.Report.Original.CampaignID = "camp-2"
	f.save(m1, m2, m3)
	f.exec(`INSERT INTO campaign_sends (campaign_id, list_id, sent) VALUES ('camp-1', 'news', 100), ('camp-1', 'promo', 100), ('camp-2', 'news', 50), ('camp-3', 'news', 10)`)
	f.now = day(2)
	if _, err := f.db.Unsuppress(ctx, "a@example.com", "", "alice", "test"); err != nil {
		t.Fatal(err)
	}

	rows, err := f.raw.Query(ctx, `SELECT day::text, domain, category, severity, smtp_code, count FROM bounce_daily ORDER BY 1, 2, 3, 5`)
	if err != nil {
		t.Fatal(err)
	}
	type daily struct {
		day, domain, category, severity string
		code, count                     int
	}
	var got []daily
	for rows.Next() {
		var d daily
		if err := rows.Scan(&d.day, &d.domain, &d.category, &d.severity, &d.code, &d.count); err != nil {
			t.Fatal(err)
		}
		got = append(got, d)
	}
	want := []daily{
		{"2025-05-01", "example.com", "mailbox_unknown", "hard", 550, 2},
		{"2025-05-01", "other.org", "mailbox_unknown", "hard", 553, 1},
		{"2025-05-01", "other.org", "relay_denied", "hard", 553, 1},
		{"2025-05-02", "example.com", "mailbox_full", "soft", 452, 1},
	}
	if len(got) != len(want) {
		t.Fatalf("bounce_daily = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bounce_daily row %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	if n := f.n(`SELECT count FROM bounce_553_daily WHERE category = 'relay_denied' AND status = '5.7.1' AND NOT suppress`); n != 1 {
		t.Errorf("bounce_553_daily relay_denied = %d, want 1", n)
	}
	if n := f.n(`SELECT sum(count)::int FROM bounce_553_daily`); n != 2 {
		t.Errorf("bounce_553_daily total = %d, want 2", n)
	}

	// Three hard suppressions on day 0 (a, b, d), one removed on day 2.
	if n := f.n(`SELECT added::int FROM suppressions_daily WHERE day = '2025-05-01' AND reason = 'hard' AND scope = 'global'`); n != 3 {
		t.Errorf("suppressions_daily added on day 0 = %d, want 3", n)
	}
	if n := f.n(`SELECT removed::int FROM suppressions_daily WHERE day = '2025-05-03' AND reason = 'hard'`); n != 1 {
		t.Errorf("suppressions_daily removed on day 2 = %d, want 1", n)
	}
	if n := f.n(`SELECT count(*) FROM suppressions_active`); n != 2 {
		t.Errorf("suppressions_active = %d, want 2", n)
	}

	var sent, bounced, hard, soft int
	var rate, hardRate float64
	err = f.raw.QueryRow(ctx, `SELECT sent, bounced, hard, soft, bounce_rate, hard_rate FROM campaign_bounce_rate WHERE campaign_id = 'camp-1'`).Scan(&sent, &bounced, &hard, &soft, &rate, &hardRate)
	if err != nil || sent != 200 || bounced != 4 || hard != 4 || soft != 0 || rate != 0.02 || hardRate != 0.02 {
		t.Errorf("campaign_bounce_rate camp-1 = sent %d bounced %d hard %d soft %d rate %v hard rate %v (%v); want 200 4 4 0 0.02 0.02", sent, bounced, hard, soft, rate, hardRate, err)
	}
	err = f.raw.QueryRow(ctx, `SELECT sent, bounced, soft, bounce_rate FROM campaign_bounce_rate WHERE campaign_id = 'camp-2'`).Scan(&sent, &bounced, &soft, &rate)
	if err != nil || sent != 50 || bounced != 1 || soft != 1 || rate != 0.02 {
		t.Errorf("campaign_bounce_rate camp-2 = %d %d %d %v (%v); want 50 1 1 0.02", sent, bounced, soft, rate, err)
	}
	if n := f.n(`SELECT bounced FROM campaign_bounce_rate WHERE campaign_id = 'camp-3'`); n != 0 {
		t.Errorf("campaign_bounce_rate camp-3 bounced = %d, want 0", n)
	}

	// Stats agree with the rows.
	st, err := f.db.Stats(ctx, day(-1), store.ByCategory)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 3 || st[0].Key != "mailbox_unknown" || st[0].Bounces != 3 || st[0].Hard != 3 || st[0].Suppress != 3 || st[0].Share != 0.6 {
		t.Errorf("Stats by category = %+v", st)
	}
	st, _ = f.db.Stats(ctx, day(1), store.ByDay)
	if len(st) != 1 || st[0].Key != "2025-05-02" || st[0].Soft != 1 {
		t.Errorf("Stats by day since day 1 = %+v", st)
	}
	st, _ = f.db.Stats(ctx, day(-1), store.ByCampaign)
	if len(st) != 2 || st[0].Key != "camp-1" || st[0].Sent != 200 || st[0].Rate != 0.02 {
		t.Errorf("Stats by campaign = %+v", st)
	}
	if _, err := f.db.Stats(ctx, day(-1), "color"); err == nil {
		t.Errorf("Stats by color = nil error")
	}

	b, s, err := f.db.AddressHistory(ctx, "A@Example.com", 10)
	if err != nil || len(b) != 1 || len(s) != 1 || b[0].Mailbox != "bounces@test/INBOX" || b[0].UID != 1 || b[0].Rule == "" || b[0].ListID != "news" || s[0].RemovedBy != "alice" {
		t.Errorf("AddressHistory = %+v, %+v, %v", b, s, err)
	}
}

func TestReadOnlyRoleCannotWrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := context.Background()
	tx, err := f.raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL ROLE bouncer_readonly`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM bounce_daily`).Scan(&n); err != nil {
		t.Errorf("bouncer_readonly: SELECT bounce_daily = %v", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO campaign_sends (campaign_id, sent) VALUES ('x', 1)`); err == nil {
		t.Errorf("bouncer_readonly: INSERT succeeded, want permission denied")
	}
}
