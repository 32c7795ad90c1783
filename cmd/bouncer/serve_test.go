package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/explain"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

// served is a `bouncer serve` running in the test.
type served struct {
	url  string // http://127.0.0.1:PORT
	stop func() error
	mu   sync.Mutex
	logs []map[string]any
}

// startServe runs `bouncer serve args...` with the environment vars, and
// waits for its "listening" log line.
func startServe(t *testing.T, vars map[string]string, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: pw,
		getenv: func(k string) string { return vars[k] }}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, e, append([]string{"serve"}, args...))
		pw.Close()
		done <- err
	}()
	s := &served{}
	listening := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			s.mu.Lock()
			s.logs = append(s.logs, m)
			s.mu.Unlock()
			if m["msg"] == "explain page listening" {
				listening <- m["url"].(string)
			}
		}
		close(listening)
	}()
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
				<-scanned // every log line read
			case <-time.After(15 * time.Second):
				stopErr = errors.New("bouncer serve did not stop within 15s of its context ending")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = s.stop() })
	select {
	case u, ok := <-listening:
		if !ok {
			t.Fatalf("bouncer serve %v exited before listening: %v", args, <-done)
		}
		_, port, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/"))
		s.url = "http://127.0.0.1:" + port
	case <-time.After(30 * time.Second):
		t.Fatalf("bouncer serve %v: no listening line within 30s", args)
	}
	return s
}

func (s *served) logged(msg string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.logs {
		if m["msg"] == msg {
			return m
		}
	}
	return nil
}

func fetch(t *testing.T, method, url, auth string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The API answers exactly what `bouncer parse --json -` prints for the same
// message, less its "file" field; the database is optional.
func TestServeAnswersWhatParsePrints(t *testing.T) {
	t.Parallel()
	s := startServe(t, map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"},
		"--addr", "127.0.0.1:0")
	if s.logged("database not reachable: address lookup is off") == nil {
		t.Errorf("bouncer serve with an unreachable database: no log line saying lookup is off; logs %v", s.logs)
	}
	for _, name := range []string{"relay_denied-seed-autoreply.eml", "multi-mixed-dsn.eml", "not_bounce-human-reply.eml", "hostile-no-header.eml"} {
		raw, err := os.ReadFile(filepath.Join("../../classify/testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		var parseOut bytes.Buffer
		pe := &env{stdin: bytes.NewReader(raw), stdout: &parseOut, stderr: io.Discard, getenv: func(string) string { return "" }}
		if err := run(t.Context(), pe, []string{"parse", "--json", "-"}); err != nil {
			t.Fatalf("bouncer parse --json - < %s: %v", name, err)
		}
		want := strings.ReplaceAll(parseOut.String(), `{"file":"-",`, `{`)
		code, got := fetch(t, "POST", s.url+"/api/v1/parse", "", raw)
		if code != 200 || got != want {
			t.Errorf("POST /api/v1/parse %s = %d\n%s\nwant what bouncer parse --json - prints, less file:\n%s", name, code, got, want)
		}
	}
	if code, page := fetch(t, "GET", s.url+"/", "", nil); code != 200 || !strings.Contains(page, "Explain a bounce") {
		t.Errorf("GET / = %d, want the page", code)
	}
	if err := s.stop(); err != nil {
		t.Errorf("bouncer serve after its context ended = %v, want nil", err)
	}
	if s.logged("explain page stopped") == nil {
		t.Errorf("no log line saying the page stopped")
	}
}

func TestServeTokenRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"all interfaces, no token", nil, []string{"--addr", "0.0.0.0:0"}, "token is required"},
		{"BOUNCER_HTTP_ADDR beyond loopback, no token", map[string]string{"BOUNCER_HTTP_ADDR": ":0"}, nil, "token is required"},
		{"short token", map[string]string{"BOUNCER_HTTP_TOKEN": "short"}, []string{"--addr", "0.0.0.0:0"}, "at least 16"},
		{"missing token file", nil, []string{"--addr", "0.0.0.0:0", "--token-file", "/nonexistent/token"}, "read token file"},
		{"an argument", nil, []string{"extra"}, "no arguments"},
	} {
		e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
			getenv: func(k string) string { return tc.vars[k] }}
		err := run(t.Context(), e, append([]string{"serve"}, tc.args...))
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: bouncer serve = %v, want a usage error saying %q", tc.name, err, tc.want)
		}
	}

	// Beyond loopback with a token file: up, and the token is required.
	tokenFile := filepath.Join(t.TempDir(), "token")
	const token = "serve-test-token-0123456789abcdef"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, map[string]string{"BOUNCER_HTTP_TOKEN": "ignored-because-the-flag-wins"},
		"--addr", "0.0.0.0:0", "--token-file", tokenFile)
	if m := s.logged("explain page listening"); m["token"] != true || m["lookup"] != false {
		t.Errorf("listening line %v, want token true and lookup false", m)
	}
	if s.logged("no DATABASE_URL: address lookup is off") == nil {
		t.Errorf("no log line saying lookup is off without DATABASE_URL")
	}
	bounce := []byte("From: MAILER-DAEMON@example.org\r\nSubject: test\r\n\r\nhello\r\n")
	if code, _ := fetch(t, "POST", s.url+"/api/v1/parse", "", bounce); code != 401 {
		t.Errorf("POST /api/v1/parse without the token = %d, want 401", code)
	}
	if code, _ := fetch(t, "POST", s.url+"/api/v1/parse", "Bearer ignored-because-the-flag-wins", bounce); code != 401 {
		t.Errorf("POST /api/v1/parse with BOUNCER_HTTP_TOKEN, overridden by --token-file = %d, want 401", code)
	}
	if code, body := fetch(t, "POST", s.url+"/api/v1/parse", "Bearer "+token, bounce); code != 200 || !strings.Contains(body, `"bounce":false`) {
		t.Errorf("POST /api/v1/parse with the token = %d %q, want 200 with a record", code, body)
	}
	if code, body := fetch(t, "GET", s.url+"/api/v1/suppressions", "Bearer "+token, nil); code != 503 || !strings.Contains(body, "needs a database: set DATABASE_URL") {
		t.Errorf("GET /api/v1/suppressions without a database = %d %q, want 503 saying so", code, body)
	}
}

func TestServeLookupFromDatabaseURL(t *testing.T) {
	t.Parallel()
	url := storetest.Migrated(t)
	s := startServe(t, map[string]string{"DATABASE_URL": url, "BOUNCER_HTTP_ADDR": "127.0.0.1:0"})
	if m := s.logged("explain page listening"); m["lookup"] != true || m["token"] != false {
		t.Errorf("listening line %v, want lookup true and token false", m)
	}
	if code, page := fetch(t, "GET", s.url+"/lookup?address=someone%40example.org", "", nil); code != 200 || !strings.Contains(page, "History of someone@<wbr>example.<wbr>org") {
		t.Errorf("GET /lookup = %d, want the address's (empty) history", code)
	}
	// The suppressions page is mounted too.
	if code, page := fetch(t, "GET", s.url+"/suppressions", "", nil); code != 200 || !strings.Contains(page, "0 suppressions") {
		t.Errorf("GET /suppressions = %d, want the (empty) search page", code)
	}
	if code, _ := fetch(t, "GET", s.url+"/suppressions/1", "", nil); code != 404 {
		t.Errorf("GET /suppressions/1 = %d, want 404 (none yet)", code)
	}
}

func TestDefaultAddrIsLoopback(t *testing.T) {
	if !explain.Loopback(explain.DefaultAddr) {
		t.Errorf("explain.DefaultAddr %q is not loopback: the default would need a token", explain.DefaultAddr)
	}
}
