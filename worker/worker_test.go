package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/bouncer-mail/bouncer/store"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// A server without MOVE or UIDPLUS (COPY, STORE \Deleted, EXPUNGE), and a
// worker that polls instead of IDLEing.
func TestNoMoveAndPolling(t *testing.T) {
	m := wt.StartMemIMAP(t, imap.CapSet{imap.CapIMAP4rev1: {}})
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	cfg := testConfig(t, dbURL, n.URL(), m.URL("INBOX"))
	cfg.noIdle = true
	cfg.PollInterval = 300 * time.Millisecond
	w := startWorker(t, cfg)
	waitFor(t, 10*time.Second, "worker waiting", func() (bool, string) { _, ok := w.w.status.snapshot(); return ok, "" })
	c := wt.IMAPClient(t, m.Addr(), m.User, m.Password)
	msgs := memCorpus(t)[:80]
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)
	e := expect(msgs, 1)
	waitFolders(t, c, "INBOX", e, 30*time.Second)
	checkStored(t, dbURL, n.URL(), e)
}

// With notbounce=Humans, mail that is not a bounce is moved there;
// over-size mail is quarantined unread, with the reason recorded. Then the
// HTTP endpoints report what happened.
func TestNotBounceFolderOversizeAndRoutes(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	cfg := testConfig(t, dbURL, n.URL(), m.URL("INBOX")+"&notbounce=Humans")
	cfg.MaxMessageSize = 8192
	w := startWorker(t, cfg)

	var msgs []corpusMsg
	for _, cm := range memCorpus(t) {
		if len(cm.Raw) <= cfg.MaxMessageSize && len(msgs) < 60 {
			msgs = append(msgs, cm)
		}
	}
	big := wt.ToCRLF(freshBounce("big"))
	big = append(big[:len(big)-len("--b1--\r\n")], []byte("--b1\r\nContent-Type: text/plain\r\n\r\n"+strings.Repeat("x", 76)+"\r\n")...)
	for len(big) < 3*cfg.MaxMessageSize {
		big = append(big, []byte(strings.Repeat("y", 76)+"\r\n")...)
	}
	big = append(big, []byte("--b1--\r\n")...)
	bigSum := MessageSHA256(big)

	c := wt.IMAPClient(t, m.Addr(), m.User, m.Password)
	wt.AppendRaw(t, c, "INBOX", append(raws(msgs), big)...)
	e := expect(msgs, 1)
	e.folders["Humans"] = e.folders[""]
	e.folders[""] = map[[32]byte]int{}
	e.folders["Quarantine"][bigSum]++
	e.unique[bigSum] = true
	waitFolders(t, c, "INBOX", e, 30*time.Second)
	checkStored(t, dbURL, n.URL(), e)

	ctx := context.Background()
	pc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	var perr string
	if err := pc.QueryRow(ctx, "SELECT parse_error FROM source_messages WHERE sha256 = $1", bigSum[:]).Scan(&perr); err != nil || !strings.Contains(perr, "too large") {
		t.Errorf("over-size message: parse_error %q, %v; want \"too large\"", perr, err)
	}
	for _, b := range wt.ListFolder(t, c, "Quarantine") {
		if b.Seen {
			t.Error("quarantined message marked \\Seen")
		}
	}

	mux := http.NewServeMux()
	w.w.Routes(mux)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d %s", code, body)
	}
	code, body := get("/readyz")
	var ready struct {
		Ready     bool
		Mailboxes []struct{ Mailbox, State string }
	}
	json.Unmarshal([]byte(body), &ready)
	if code != 200 || !ready.Ready || len(ready.Mailboxes) != 1 || ready.Mailboxes[0].State != stateIdle {
		t.Errorf("GET /readyz = %d %s", code, body)
	}
	code, body = get("/metrics")
	quarantined := 1 // the over-size message, and the fixtures that cannot be read
	for _, m := range msgs {
		if m.Dest == "Quarantine" {
			quarantined++
		}
	}
	for _, want := range []string{fmt.Sprintf("bouncer_messages_total{kind=\"quarantined\"} %d", quarantined), "bouncer_arrival_to_commit_seconds_count",
		"bouncer_outbox_pending 0", "bouncer_outbox_lag_seconds", "bouncer_imap_reconnects_total", "bouncer_suppressions_total",
		"bouncer_events_published_total", "process_resident_memory_bytes",
		fmt.Sprintf("bouncer_mailbox_ready{mailbox=%q} 1", ready.Mailboxes[0].Mailbox)} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics: no %q", want)
		}
	}
	if code != 200 {
		t.Errorf("GET /metrics = %d", code)
	}
	// Shutting down makes the mailbox not ready.
	w.stop()
	if code, body := get("/readyz"); code != 503 {
		t.Errorf("GET /readyz after stop = %d %s, want 503", code, body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, fmt.Sprintf("bouncer_mailbox_ready{mailbox=%q} 0", ready.Mailboxes[0].Mailbox)) {
		t.Errorf("GET /metrics after stop: bouncer_mailbox_ready is not 0")
	}
}

// bouncer.suppression.check answers from the store.
func TestSuppressionCheck(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	startWorker(t, testConfig(t, dbURL, n.URL(), m.URL("INBOX")))
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, err := db.Suppress(ctx, store.SuppressRequest{Address: "Gone@Example.com", By: "test", Note: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Suppress(ctx, store.SuppressRequest{Address: "listonly@example.com", ListID: "news.example.org", By: "test"}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tests := []struct {
		req        string
		suppressed bool
		scope      string
	}{
		{`{"address":"gone@example.com"}`, true, "global"},
		{`gone@example.com`, true, "global"},
		{`{"address":"gone@example.com","list_id":"other"}`, true, "global"},
		{`{"address":"listonly@example.com"}`, false, ""},
		{`{"address":"listonly@example.com","list_id":"news.example.org"}`, true, "list"},
		{`{"address":"fine@example.com"}`, false, ""},
	}
	for _, tt := range tests {
		var msg *nats.Msg
		waitFor(t, 10*time.Second, "service answers", func() (bool, string) {
			msg, err = nc.Request(SuppressionSubject, []byte(tt.req), 2*time.Second)
			return err == nil, ""
		})
		var resp CheckResponse
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			t.Fatalf("check %s: %q: %v", tt.req, msg.Data, err)
		}
		if resp.Suppressed != tt.suppressed || resp.Scope != tt.scope {
			t.Errorf("check %s = %+v, want suppressed %v scope %q", tt.req, resp, tt.suppressed, tt.scope)
		}
	}
	for _, req := range []string{`{"address":""}`, `{"address":"a@"}`, `@example.com`} {
		msg, err := nc.Request(SuppressionSubject, []byte(req), 2*time.Second)
		if err != nil || msg.Header.Get("Nats-Service-Error-Code") != "400" {
			t.Errorf("check of %s: %v, headers %v; want error 400", req, err, msg.Header)
		}
	}
}
