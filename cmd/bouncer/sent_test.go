package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/store/storetest"
)

// TestSentImport imports a CSV file twice (the second adds nothing), NDJSON
// from stdin, and checks that --dry-run writes nothing.
func TestSentImport(t *testing.T) {
	url := storetest.Migrated(t)
	dir := t.TempDir()
	csvFile := filepath.Join(dir, "sent.csv")
	os.WriteFile(csvFile, []byte("message_id,recipient,list_id,campaign_id,sent_at\n"+
		"<m1@lists.example.com>,Ana@Example.com,news,c1,2026-12-04T09:00:00Z\n"+
		"m2@lists.example.com,bob@example.com,,,2026-12-04T09:00:01.5+01:00\n"), 0o600)
	ndjson := `{"message_id":"<m3@lists.example.com>","recipient":"cy@example.com","list_id":"news","campaign_id":"c1","sent_at":"2026-12-04T09:00:02Z"}` + "\n" +
		`{"message_id":"m1@lists.example.com","recipient":"ana@example.com","sent_at":"2026-12-04T09:00:00Z"}` + "\n"
	count := func() int {
		c, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(t.Context())
		var n int
		if err := c.QueryRow(t.Context(), `SELECT count(*) FROM sent_messages`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		args  []string
		stdin string
		out   string
		rows  int
	}{
		{[]string{"--dry-run", csvFile}, "", "2 sent messages read and valid; dry run: nothing written", 0},
		{[]string{csvFile}, "", "2 sent messages read: 2 new, 0 already there", 2},
		{[]string{csvFile}, "", "2 sent messages read: 0 new, 2 already there", 2},
		{[]string{"--format", "ndjson", "-"}, ndjson, "2 sent messages read: 1 new, 1 already there", 3},
	} {
		var stdout, stderr bytes.Buffer
		e := &env{stdin: strings.NewReader(tc.stdin), stdout: &stdout, stderr: &stderr, getenv: func(k string) string {
			if k == "DATABASE_URL" {
				return url
			}
			return ""
		}}
		err := run(context.Background(), e, append([]string{"sent", "import"}, tc.args...))
		if err != nil || strings.TrimSpace(stdout.String()) != tc.out {
			t.Errorf("bouncer sent import %v = %v, printed %q; want %q", tc.args, err, stdout.String(), tc.out)
		}
		if got := count(); got != tc.rows {
			t.Errorf("after bouncer sent import %v: %d rows, want %d", tc.args, got, tc.rows)
		}
	}
}
