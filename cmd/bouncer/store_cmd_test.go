package main

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

// seed stores a few bounces through the store, as the worker would.
func seed(t *testing.T, url string) {
	t.Helper()
	db, err := store.Open(t.Context(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	mk := func(key string, uid uint32, at time.Time, rs ...classify.Recipient) store.Message {
		return store.Message{
			Mailbox: "bounces@test/INBOX", UIDValidity: 1, UID: uid, SHA256: sha256.Sum256([]byte(key)),
			InternalDate: at,
			Report: &classify.Report{Kind: classify.KindDSN, Original: classify.Original{ListID: "news", CampaignID: "spring"},
				Recipients: rs},
		}
	}
	hard := func(a string) classify.Recipient {
		return classify.Recipient{Address: a, Action: "failed", Status: "5.1.1", SMTPCode: 550,
			Category: classify.MailboxUnknown, Severity: classify.Hard, Suppress: true, Rule: "t"}
	}
	relay := classify.Recipient{Address: "c@other.org", Action: "failed", Status: "5.7.1", SMTPCode: 553,
		Category: classify.RelayDenied, Severity: classify.Hard, Rule: "t"}
	if _, err := db.SaveBatch(t.Context(), []store.Message{
		mk("1", 1, now.Add(-time.Hour), hard("a@example.com")),
		mk("2", 2, now.Add(-time.Hour), hard("b@example.com"), relay),
		mk("3", 3, now.Add(-40*24*time.Hour), hard("old@example.com")),
	}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `INSERT INTO campaign_sends (campaign_id, list_id, sent) VALUES ('spring', 'news', 200)`); err != nil {
		t.Fatal(err)
	}
}

func TestSuppressionsCommand(t *testing.T) {
	t.Parallel()
	url := storetest.Migrated(t)
	seed(t, url)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `INSERT INTO list_members (list_id, address, status) VALUES ('news', 'a@example.com', 'bounced')`); err != nil {
		t.Fatal(err)
	}

	out, _, err := runWith(t, url, "suppressions", "list")
	if err != nil || !strings.Contains(out, "a@example.com") || !strings.Contains(out, "b@example.com") || strings.Contains(out, "c@other.org") {
		t.Errorf("suppressions list = %q, %v; want a and b, not c (relay denied)", out, err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") {
		t.Errorf("suppressions list: %d lines, want a header and 3 rows:\n%s", len(lines), out)
	}

	out, _, err = runWith(t, url, "suppressions", "check", "A@Example.com")
	if !errors.Is(err, errSuppressed) || !strings.Contains(out, "suppressed (global scope), reason hard (mailbox_unknown)") {
		t.Errorf("suppressions check a = %q, %v; want suppressed and errSuppressed", out, err)
	}
	out, _, err = runWith(t, url, "suppressions", "check", "new@example.com", "--list", "news")
	if err != nil || !strings.Contains(out, "not suppressed") {
		t.Errorf("suppressions check new = %q, %v", out, err)
	}
	if _, _, err := runWith(t, url, "suppressions", "list", "--limit", "-3"); !errors.Is(err, errUsage) {
		t.Errorf("suppressions list --limit -3 = %v; want a usage error", err)
	}
	// No database: it cannot tell, and must not exit as "suppressed".
	if _, _, err := runWith(t, "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=2", "suppressions", "check", "a@example.com"); !errors.Is(err, errCheckFailed) {
		t.Errorf("suppressions check without a database = %v; want errCheckFailed", err)
	}
	// Not an address: it cannot tell either.
	for _, bad := range []string{"not an address", "a@", "@example.com"} {
		out, _, err = runWith(t, url, "suppressions", "check", bad)
		if exitStatus(err) != 2 || errors.Is(err, errSuppressed) || out != "" || !strings.Contains(err.Error(), "not an email address") {
			t.Errorf("suppressions check %q = %q, %v (exit %d); want exit status 2 naming the bad address", bad, out, err, exitStatus(err))
		}
	}

	out, _, err = runWith(t, url, "suppressions", "add", "new@example.com", "--list", "news", "--reason", "asked us by phone", "--by", "carol")
	if err != nil || !strings.Contains(out, "new@example.com: suppressed (list scope news), reason manual") {
		t.Errorf("suppressions add = %q, %v", out, err)
	}
	out, _, err = runWith(t, url, "suppressions", "add", "new@example.com", "--list", "news", "--reason", "manual", "--by", "carol")
	if err != nil || !strings.Contains(out, "already suppressed") {
		t.Errorf("suppressions add again = %q, %v", out, err)
	}
	if _, _, err := runWith(t, url, "suppressions", "check", "new@example.com", "--list", "news"); !errors.Is(err, errSuppressed) {
		t.Errorf("check after add = %v, want suppressed", err)
	}
	if _, _, err := runWith(t, url, "suppressions", "add", "x@example.com"); !errors.Is(err, errUsage) {
		t.Errorf("add without --reason = %v, want usage error", err)
	}

	if _, _, err := runWith(t, url, "suppressions", "remove", "a@example.com", "--by", "dave"); !errors.Is(err, errUsage) {
		t.Errorf("remove without --why = %v, want usage error", err)
	}
	out, _, err = runWith(t, url, "suppressions", "remove", "a@example.com", "--by", "dave", "--why", "false positive, checked")
	if err != nil || !strings.Contains(out, "removed by dave: false positive, checked") {
		t.Errorf("suppressions remove = %q, %v", out, err)
	}
	var status string
	if err := conn.QueryRow(t.Context(), `SELECT status FROM list_members WHERE list_id = 'news' AND address = 'a@example.com'`).Scan(&status); err != nil || status != "bounced" {
		// The member was bounced before bouncer suppressed: not ours to undo.
		t.Errorf("member status after remove = %q, %v; want bounced (set by the platform, not by the suppression)", status, err)
	}
	if _, _, err := runWith(t, url, "suppressions", "remove", "a@example.com", "--by", "dave", "--why", "again"); !errors.Is(err, store.ErrNotSuppressed) {
		t.Errorf("remove twice = %v, want ErrNotSuppressed", err)
	}

	out, _, err = runWith(t, url, "suppressions", "export", "--format", "csv", "--all")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 5 || recs[0][1] != "address" {
		t.Fatalf("export csv = %d records, %v:\n%s", len(recs), err, out)
	}
	var removed []string
	for _, r := range recs[1:] {
		if r[13] != "" {
			removed = append(removed, r[1]+" by "+r[14]+": "+r[15])
		}
	}
	if len(removed) != 1 || removed[0] != "a@example.com by dave: false positive, checked" {
		t.Errorf("export csv --all: removed rows = %q", removed)
	}
	out, _, err = runWith(t, url, "suppressions", "export", "--format", "json", "--list", "news")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Address   string `json:"address"`
		ListID    string `json:"list_id"`
		Reason    string `json:"reason"`
		Note      string `json:"note"`
		CreatedBy string `json:"created_by"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); err != nil {
		t.Fatalf("export json --list news = %q: %v", out, err)
	}
	if got.Address != "new@example.com" || got.ListID != "news" || got.Reason != "manual" || got.Note != "asked us by phone" || got.CreatedBy != "carol" {
		t.Errorf("export json = %+v", got)
	}
	if _, _, err := runWith(t, url, "suppressions", "export", "--format", "xml"); !errors.Is(err, errUsage) {
		t.Errorf("export --format xml = %v, want usage error", err)
	}
	if _, _, err := runWith(t, url, "suppressions", "frobnicate"); !errors.Is(err, errUsage) {
		t.Errorf("suppressions frobnicate = %v, want usage error", err)
	}
}

func TestStatsCommand(t *testing.T) {
	t.Parallel()
	url := storetest.Migrated(t)
	seed(t, url)

	out, _, err := runWith(t, url, "stats", "--by", "category")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("stats --by category: %d lines, want header, 2 rows, total:\n%s", len(lines), out)
	}
	fields := strings.Fields(lines[1])
	if fields[0] != "mailbox_unknown" || fields[1] != "2" || fields[3] != "2" {
		t.Errorf("stats --by category first row = %q, want mailbox_unknown 2 bounces 2 hard (the 40-day-old one is out of the period)", lines[1])
	}
	// Aligned: every column ends at the same offset.
	if len(lines[0]) != len(lines[1]) || len(lines[1]) != len(lines[2]) {
		t.Errorf("stats table not aligned:\n%s", out)
	}

	out, _, err = runWith(t, url, "stats", "--since", "60d", "--by", "campaign", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var row struct {
		Campaign string  `json:"campaign"`
		Bounces  int     `json:"bounces"`
		Sent     int     `json:"sent"`
		Rate     float64 `json:"rate"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &row); err != nil || row.Campaign != "spring" || row.Bounces != 4 || row.Sent != 200 || row.Rate != 0.02 {
		t.Errorf("stats --by campaign --json = %q (%v); want spring, 4 bounces, 200 sent, rate 0.02", out, err)
	}
	out, _, err = runWith(t, url, "stats", "--by", "domain", "--since", "36h")
	if err != nil || !strings.Contains(out, "example.com") || !strings.Contains(out, "other.org") || !strings.Contains(out, "TOTAL") {
		t.Errorf("stats --by domain = %q, %v", out, err)
	}
	if _, _, err := runWith(t, url, "stats", "--by", "color"); !errors.Is(err, errUsage) {
		t.Errorf("stats --by color = %v, want usage error", err)
	}
	if _, _, err := runWith(t, url, "stats", "--since", "soon"); !errors.Is(err, errUsage) {
		t.Errorf("stats --since soon = %v, want usage error", err)
	}
}
