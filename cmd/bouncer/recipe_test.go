package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bouncer-mail/bouncer/store/storetest"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// standInListmonk answers the two calls of listmonk's API the recipe
// makes, as listmonk documents them: every address is a subscriber, and
// the first blocklist call fails, to show the recipe retries. listmonk
// itself (a Go binary released on GitHub) cannot be fetched on this
// machine, so this is its stand-in, not a mock of something we run.
type standInListmonk struct {
	mu          sync.Mutex
	ids         map[string]int64 // address -> subscriber id
	blocklisted map[int64]bool
	failed      bool
	changed     chan struct{}
	badAuth     int
}

var emailQueryRE = regexp.MustCompile(`^subscribers\.email = '((?:[^']|'')*)'$`)

func (l *standInListmonk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Header.Get("Authorization") != "token bouncer:s3cret" {
		l.badAuth++
		http.Error(w, `{"message":"invalid token"}`, http.StatusForbidden)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/subscribers":
		m := emailQueryRE.FindStringSubmatch(r.URL.Query().Get("query"))
		if m == nil {
			http.Error(w, `{"message":"unexpected query"}`, http.StatusBadRequest)
			return
		}
		addr := strings.ReplaceAll(m[1], "''", "'")
		if l.ids[addr] == 0 {
			l.ids[addr] = int64(len(l.ids) + 1)
		}
		fmt.Fprintf(w, `{"data":{"results":[{"id":%d,"email":%q}],"total":1,"per_page":1,"page":1}}`, l.ids[addr], addr)
	case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/blocklist"):
		if !l.failed {
			l.failed = true
			http.Error(w, `{"message":"database is restarting"}`, http.StatusServiceUnavailable)
			return
		}
		var id int64
		fmt.Sscanf(r.URL.Path, "/api/subscribers/%d/blocklist", &id)
		l.blocklisted[id] = true
		fmt.Fprint(w, `{"data":true}`)
		select {
		case l.changed <- struct{}{}:
		default:
		}
	default:
		http.NotFound(w, r)
	}
}

// blocklistedAddresses returns the addresses blocklisted so far, sorted.
func (l *standInListmonk) blocklistedAddresses() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for addr, id := range l.ids {
		if l.blocklisted[id] {
			out = append(out, addr)
		}
	}
	slices.Sort(out)
	return out
}

// The README's listmonk recipe, run as written against `bouncer demo`
// publishing to a real NATS and Postgres: every global suppression the
// demo makes is blocklisted once, a failed call is retried, and the
// durable consumer ends with nothing pending.
func TestRecipeListmonk(t *testing.T) {
	bin := buildBouncer(t)
	n := wt.StartNATS(t)
	dbURL := storetest.NewDatabase(t)
	recipe := filepath.Join(t.TempDir(), "listmonk")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", recipe, "../../deploy/recipes/listmonk").CombinedOutput(); err != nil {
		t.Fatalf("go build recipe: %v\n%s", err, out)
	}
	readme, _ := os.ReadFile("../../README.md")
	if !strings.Contains(string(readme), "go run ./deploy/recipes/listmonk") {
		t.Error("README does not show how to run the listmonk recipe")
	}

	demo := startDemo(t, bin, dbURL, "NATS_URL="+n.URL())
	want := globalSuppressions(t, dbURL)
	if len(want) == 0 {
		t.Fatal("the demo made no global suppression")
	}

	lm := &standInListmonk{ids: map[string]int64{}, blocklisted: map[int64]bool{}, changed: make(chan struct{}, 1)}
	srv := httptest.NewServer(lm)
	defer srv.Close()
	cmd := exec.Command(recipe)
	cmd.Env = append(cleanEnv(), "NATS_URL="+n.URL(), "LISTMONK_URL="+srv.URL,
		"LISTMONK_USER=bouncer", "LISTMONK_TOKEN=s3cret", "RETRY_AFTER=100ms")
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	}()

	deadline := time.After(60 * time.Second)
	for !slices.Equal(lm.blocklistedAddresses(), want) {
		select {
		case <-lm.changed:
		case err := <-done:
			t.Fatalf("recipe exited: %v\n%s", err, logs.String())
		case <-deadline:
			t.Fatalf("blocklisted %d of %d global suppressions in 60s:\n%s", len(lm.blocklistedAddresses()), len(want), logs.String())
		}
	}
	// Every event acknowledged: the consumer's state has no push
	// notification, so it is read until it says so.
	for info := consumerInfo(t, n.URL(), "listmonk-blocklist"); info.NumPending != 0 || info.NumAckPending != 0; info = consumerInfo(t, n.URL(), "listmonk-blocklist") {
		select {
		case <-deadline:
			t.Fatalf("consumer: pending %d, ack pending %d after 60s:\n%s", info.NumPending, info.NumAckPending, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := <-done; err != nil {
		t.Errorf("recipe on SIGINT: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "retried in 100ms") || lm.badAuth != 0 {
		t.Errorf("want one retried call and no refused token (refused %d):\n%s", lm.badAuth, logs.String())
	}
	if got := strings.Count(logs.String(), "blocklisted "); got != len(want) {
		t.Errorf("recipe logged %d blocklisted, want %d (one per suppression):\n%s", got, len(want), logs.String())
	}
	demo.interrupt(t)
}

// globalSuppressions are the addresses suppressed in global scope, sorted.
func globalSuppressions(t *testing.T, dbURL string) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	rows, _ := conn.Query(t.Context(), `SELECT address FROM suppressions WHERE list_id = '' AND removed_at IS NULL ORDER BY address`)
	addrs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

func consumerInfo(t *testing.T, url, name string) *jetstream.ConsumerInfo {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	c, err := js.Consumer(t.Context(), "BOUNCES", name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}
