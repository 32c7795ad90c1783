package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// `bouncer run` works a Dovecot mailbox that `bouncer inject` fills with
// the project's own bounces (the classifier's golden corpus and the
// demo's samples); it serves health and metrics, and stops cleanly.
func TestRunAndInject(t *testing.T) {
	d := wt.StartDovecot(t)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", wt.FreePort(t))
	vars := map[string]string{
		"DATABASE_URL":          dbURL,
		"NATS_URL":              n.URL(),
		"BOUNCER_IMAP_URL":      fmt.Sprintf("imap://%s@%s/INBOX?tls=none", d.User, d.Addr()),
		"BOUNCER_IMAP_PASSWORD": d.Password,
		"BOUNCER_HTTP_ADDR":     httpAddr,
		"BOUNCER_LOG_LEVEL":     "warn",
	}
	getenv := func(k string) string { return vars[k] }
	var runErr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, &env{stdout: io.Discard, stderr: &runErr, getenv: getenv}, []string{"run", "--owner", "test-run"})
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitUntil(t, 20*time.Second, "ready", func() bool { code, _ := get("/readyz"); return code == 200 })

	dirs := []string{filepath.Join("..", "..", "classify", "testdata"), filepath.Join("internal", "demo", "samples")}
	files, err := injectFiles(dirs)
	if err != nil || len(files) < 50 {
		t.Fatalf("fixtures in %v: %d files, %v", dirs, len(files), err)
	}
	var out, errOut bytes.Buffer
	err = run(ctx, &env{stdout: &out, stderr: &errOut, getenv: getenv}, append([]string{"inject", "--imap", vars["BOUNCER_IMAP_URL"]}, dirs...))
	if err != nil {
		t.Fatalf("bouncer inject = %v; %s", err, errOut.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("appended %d message(s)", len(files))) {
		t.Errorf("bouncer inject said %q, want %d appended", out.String(), len(files))
	}
	// Every injected message is committed once (duplicates included).
	msgCount := regexp.MustCompile(`(?m)^bouncer_messages_total\{kind="[a-z_]+"\} (\d+)$`)
	waitUntil(t, 60*time.Second, "every message committed", func() bool {
		_, body := get("/metrics")
		sum := 0
		for _, m := range msgCount.FindAllStringSubmatch(body, -1) {
			k, _ := strconv.Atoi(m[1])
			sum += k
		}
		return sum == len(files)
	})
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d", code)
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, "<form") {
		t.Errorf("GET / (the explain page beside /metrics) = %d", code)
	}
	if code, body := get("/api/v1/suppressions/check?address=nobody@example.org"); code != 200 || !strings.Contains(body, `"suppressed":false`) {
		t.Errorf("GET /api/v1/suppressions/check (the API beside /metrics) = %d %s", code, body)
	}
	cancel()
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("bouncer run after SIGTERM = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("bouncer run did not stop within 20s")
	}
	if strings.Contains(runErr.String(), `"level":"ERROR"`) {
		t.Errorf("bouncer run logged errors:\n%s", runErr.String())
	}
}

func TestRunUsage(t *testing.T) {
	e := &env{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	for _, args := range [][]string{
		{"run"}, // no mailbox
		{"run", "--imap", "imap://u:p@mail.example.com/INBOX?tls=none"},
		{"inject", "--imap", "imap://u:p@127.0.0.1:1/INBOX?tls=none"}, // no files
	} {
		if err := run(context.Background(), e, args); !errors.Is(err, errUsage) {
			t.Errorf("bouncer %v = %v, want a usage error", args, err)
		}
	}
	// A bad policy setting is refused at start, before any I/O (no
	// database or server answers on port 1).
	for k, v := range map[string]string{
		"BOUNCER_SUPPRESS_SCOPE":  "everyone",
		"BOUNCER_SOFT_WINDOW":     "a fortnight",
		"BOUNCER_SOFT_CATEGORIES": "mailbox_full,relay_denied", // never suppresses
		"BOUNCER_SOFT_THRESHOLD":  "three",
	} {
		e := &env{stdout: io.Discard, stderr: io.Discard, getenv: func(name string) string {
			switch name {
			case k:
				return v
			case "DATABASE_URL":
				return "postgres://postgres@127.0.0.1:1/x"
			}
			return ""
		}}
		err := run(context.Background(), e, []string{"run", "--imap", "imap://u:p@127.0.0.1:1/INBOX?tls=none"})
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "policy") {
			t.Errorf("bouncer run with %s=%q = %v, want a usage error about the policy", k, v, err)
		}
	}
}

// `bouncer run` applies the suppression policy of its environment: with
// BOUNCER_SUPPRESS_SCOPE=list a dead address is suppressed on the bounce's
// list only.
func TestRunPolicyFromEnv(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", wt.FreePort(t))
	vars := map[string]string{
		"DATABASE_URL":           dbURL,
		"NATS_URL":               n.URL(),
		"BOUNCER_IMAP_URL":       m.URL("INBOX"),
		"BOUNCER_HTTP_ADDR":      httpAddr,
		"BOUNCER_LOG_LEVEL":      "warn",
		"BOUNCER_SUPPRESS_SCOPE": "list",
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "classify", "testdata", "mailbox_unknown-postfix.eml"))
	if err != nil {
		t.Fatal(err)
	}
	wt.AppendRaw(t, wt.IMAPClient(t, m.Addr(), m.User, m.Password), "INBOX", raw)
	_, stop := runInBackground(t, vars, "run")
	defer stop()
	waitUntil(t, 30*time.Second, "the bounce committed", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), `bouncer_messages_total{kind="dsn"} 1`)
	})
	db, err := store.Open(t.Context(), dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sups, err := db.ListSuppressions(t.Context(), store.SuppressionFilter{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(sups) != 1 || sups[0].Address != "ana@mail.example.net" || sups[0].ListID != "news.lists.example.com" {
		t.Errorf("suppressions = %+v, want ana@mail.example.net on list news.lists.example.com only", sups)
	}
}

func TestToCRLF(t *testing.T) {
	for in, want := range map[string]string{
		"a\nb\n":       "a\r\nb\r\n",
		"a\r\nb\r\n":   "a\r\nb\r\n",
		"a\r\nb\nc":    "a\r\nb\r\nc",
		"no line end":  "no line end",
		"\n\n":         "\r\n\r\n",
		"mixed\r\n\n.": "mixed\r\n\r\n.",
	} {
		if got := string(worker.ToCRLF([]byte(in))); got != want {
			t.Errorf("worker.ToCRLF(%q) = %q, want %q", in, got, want)
		}
	}
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
// runInBackground runs the command args (bouncer run) in process with
// vars for its environment until the returned stop is called; stop
// reports an error the command returned, with what it logged. logs holds
// what it writes on stderr so far.
func runInBackground(t *testing.T, vars map[string]string, args ...string) (logs *syncBuffer, stop func()) {
	t.Helper()
	logs = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, &env{stdout: io.Discard, stderr: logs, getenv: func(k string) string { return vars[k] }}, args)
	}()
	return logs, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bouncer %s = %v\n%s", strings.Join(args, " "), err, logs.String())
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
