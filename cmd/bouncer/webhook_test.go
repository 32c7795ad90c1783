package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/store/storetest"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

const testMailgunKey = "cmd-test-mailgun-key"

// signedMailgun is a Mailgun "failed" event for rcpt, signed with
// testMailgunKey now.
func signedMailgun(id, rcpt string) []byte {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(testMailgunKey))
	mac.Write([]byte(ts + "token-" + id))
	b, _ := json.Marshal(map[string]any{
		"signature": map[string]string{"timestamp": ts, "token": "token-" + id, "signature": hex.EncodeToString(mac.Sum(nil))},
		"event-data": map[string]any{"id": id, "event": "failed", "severity": "permanent", "recipient": rcpt,
			"delivery-status": map[string]any{"code": 550, "message": "5.1.1 user unknown"}},
	})
	return b
}

func countRows(t *testing.T, dbURL, query string) int {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(t.Context(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// `bouncer serve` mounts the configured webhook endpoints beside the
// explain page, and only those.
func TestServeWebhooks(t *testing.T) {
	t.Parallel()
	url := storetest.Migrated(t)
	s := startServe(t, map[string]string{"DATABASE_URL": url, "BOUNCER_HTTP_ADDR": "127.0.0.1:0", "BOUNCER_WEBHOOK_MAILGUN_KEY": testMailgunKey})
	if code, body := fetch(t, "POST", s.url+"/webhooks/mailgun", "", signedMailgun("ev-serve", "dead@example.org")); code != 200 {
		t.Errorf("POST /webhooks/mailgun = %d %s, want 200", code, body)
	}
	if got := countRows(t, url, `SELECT count(*) FROM webhook_events WHERE event_id = 'ev-serve'`); got != 1 {
		t.Errorf("webhook_events = %d, want 1", got)
	}
	if code, _ := fetch(t, "POST", s.url+"/webhooks/sendgrid", "", []byte(`[]`)); code != 404 {
		t.Errorf("POST /webhooks/sendgrid (not configured) = %d, want 404", code)
	}
	if code, body := fetch(t, "GET", s.url+"/", "", nil); code != 200 || !strings.Contains(body, "<form") {
		t.Errorf("GET / beside the webhooks = %d, want the explain page", code)
	}
}

// `bouncer run` serves the webhooks on its HTTP server, counts them on
// /metrics and publishes what they stored.
func TestRunWebhooks(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", wt.FreePort(t))
	vars := map[string]string{"DATABASE_URL": dbURL, "NATS_URL": n.URL(), "BOUNCER_IMAP_URL": m.URL("INBOX"),
		"BOUNCER_HTTP_ADDR": httpAddr, "BOUNCER_LOG_LEVEL": "warn", "BOUNCER_WEBHOOK_MAILGUN_KEY": testMailgunKey}
	_, stop := runInBackground(t, vars, "run", "--owner", "test-webhooks")
	defer stop()
	get := func(path string) string {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitUntil(t, 30*time.Second, "metrics served", func() bool { return strings.Contains(get("/metrics"), "bouncer_events_published_total") })
	for range 3 {
		code, body := fetch(t, "POST", "http://"+httpAddr+"/webhooks/mailgun", "", signedMailgun("ev-run", "dead@example.org"))
		if code != 200 {
			t.Fatalf("POST /webhooks/mailgun = %d %s, want 200", code, body)
		}
	}
	// One bounce event and one suppression.added, published once each.
	waitUntil(t, 30*time.Second, "events published", func() bool {
		return strings.Contains(get("/metrics"), "bouncer_events_published_total 2")
	})
	body := get("/metrics")
	for _, want := range []string{`bouncer_webhook_events_total{outcome="stored",provider="mailgun"} 1`,
		`bouncer_webhook_events_total{outcome="duplicate",provider="mailgun"} 2`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, _ := fetch(t, "POST", "http://"+httpAddr+"/webhooks/postmark", "", []byte(`{}`)); code != 404 {
		t.Errorf("POST /webhooks/postmark (not configured) = %d, want 404", code)
	}
}
