package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// testCfg is a worker's Config with where its database and NATS are,
// which the test opens for it as cmd/bouncer does.
type testCfg struct {
	Config
	DatabaseURL, NATSURL string
}

// testConfig is a configuration with short timers for tests.
func testConfig(t testing.TB, dbURL, natsURL string, imapURLs ...string) testCfg {
	t.Helper()
	cfg := testCfg{Config: DefaultConfig(), DatabaseURL: dbURL, NATSURL: natsURL}
	cfg.IMAPURLs = imapURLs
	cfg.BackoffMin = 100 * time.Millisecond
	cfg.BackoffMax = time.Second
	cfg.LeaseTTL = 3 * time.Second
	cfg.IdleRefresh = 5 * time.Second
	cfg.IMAPTimeout = 5 * time.Second
	cfg.PollInterval = time.Second
	cfg.Owner = fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	return cfg
}

// testWorker is a Worker running in the test process.
type testWorker struct {
	t      testing.TB
	w      *Worker
	db     *store.DB
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// tlog writes log lines to the test log.
type tlog struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (l *tlog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func startWorker(t testing.TB, cfg testCfg) *testWorker {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(cfg.NATSURL, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	lw := &tlog{t: t}
	var out io.Writer = lw
	if os.Getenv("BOUNCER_TEST_QUIET") != "" {
		out = io.Discard
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo})).With("owner", cfg.Owner[len(cfg.Owner)-4:])
	w, err := New(cfg.Config, db, nc, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	tw := &testWorker{t: t, w: w, db: db, nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { tw.done <- w.Run(rctx) }()
	t.Cleanup(func() {
		tw.stop()
		lw.mu.Lock()
		lw.closed = true
		lw.mu.Unlock()
	})
	return tw
}

// stop shuts the worker down as SIGTERM would and waits for it.
func (tw *testWorker) stop() {
	tw.once.Do(func() {
		tw.cancel()
		select {
		case err := <-tw.done:
			if err != nil {
				tw.t.Errorf("Worker.Run = %v", err)
			}
		case <-time.After(30 * time.Second):
			tw.t.Errorf("Worker.Run did not return within 30s of shutdown")
		}
		tw.nc.Close()
		tw.db.Close()
	})
}

// corpusMsg is one test message with what the worker is expected to do
// with it, as the classifier decides today.
type corpusMsg struct {
	Name string
	Raw  []byte // as APPENDed (see readMessages)
	Sum  [32]byte
	Dest string // "Processed", "Quarantine" or "" (left in the inbox)
	Rep  *classify.Report
}

// fixtureDirs hold the bounces the project owns: the classifier's golden
// corpus and the demo's samples. A plain clone has them, so the worker's
// tests need nothing from outside the repository.
var fixtureDirs = []string{
	filepath.Join("..", "classify", "testdata"),
	filepath.Join("..", "cmd", "bouncer", "internal", "demo", "samples"),
}

// serverAltered are fixtures an IMAP server stores other than APPENDed
// (bare CR line ends; no header at all), so that their hash as stored
// differs from the one the tests expect: the classifier's tests keep them.
var serverAltered = map[string]bool{"hostile-cr-only.eml": true, "hostile-no-header.eml": true}

// fixtureCopies is how many distinct copies of each fixture the tests
// APPEND (each made unique by a header): about 400 messages, so that the
// fault tests' faults land while batches of 10 are still under way.
const fixtureCopies = 4

var (
	fixturesOnce sync.Once
	fixtures     []corpusMsg
	fixturesErr  error
)

// loadCorpus returns the project's own fixtures (fixtureDirs), each in
// fixtureCopies copies, classified the way the worker classifies them.
func loadCorpus(t testing.TB) []corpusMsg {
	t.Helper()
	fixturesOnce.Do(func() {
		var files []string
		for _, dir := range fixtureDirs {
			fs, err := emlFiles(dir)
			if err != nil {
				fixturesErr = err
				return
			}
			for _, f := range fs {
				if !serverAltered[filepath.Base(f)] {
					files = append(files, f)
				}
			}
		}
		fixtures, fixturesErr = readMessages(files, fixtureCopies)
	})
	if fixturesErr != nil {
		t.Fatalf("test fixtures: %v", fixturesErr)
	}
	return fixtures
}

// haveRealCorpus says whether realCorpusDir would find the corpus.
func haveRealCorpus() bool {
	dir := os.Getenv("BOUNCER_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "corpus", "dev")
	}
	_, err := os.Stat(dir)
	return err == nil
}

// realCorpusDir is the real-bounce corpus kept outside the repository:
// $BOUNCER_CORPUS, or ../shared/corpus/dev beside the clone. It is an
// extra evaluation: absent, the test is skipped, unless CI is set
// (.ci/run), where it is required.
func realCorpusDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("BOUNCER_CORPUS")
	set := dir != ""
	if !set {
		dir = filepath.Join("..", "..", "shared", "corpus", "dev")
	}
	if _, err := os.Stat(dir); err != nil {
		if set || os.Getenv("CI") != "" {
			t.Fatalf("real-bounce corpus: %v (set BOUNCER_CORPUS to its directory)", err)
		}
		t.Skipf("real-bounce corpus not found at %s; set BOUNCER_CORPUS to run this test", dir)
	}
	return dir
}

// loadRealCorpus reads every .eml of the real-bounce corpus once each.
func loadRealCorpus(t testing.TB) []corpusMsg {
	t.Helper()
	files, err := emlFiles(realCorpusDir(t))
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("no .eml files")
	}
	if err != nil {
		t.Fatalf("real-bounce corpus: %v", err)
	}
	msgs, err := readMessages(files, 1)
	if err != nil {
		t.Fatalf("real-bounce corpus: %v", err)
	}
	return msgs
}

// emlFiles lists dir/**/*.eml in order.
func emlFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".eml") {
			files = append(files, p)
		}
		return err
	})
	sort.Strings(files)
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("no .eml under %s", dir)
	}
	return files, err
}

// readMessages reads files and classifies each as the worker does. With
// copies > 1 each file gives that many messages, the k-th (k > 0)
// starting with an X-Test-Copy header so that each has its own hash.
func readMessages(files []string, copies int) ([]corpusMsg, error) {
	cls := classify.New(classify.Options{MaxSize: DefaultMaxMessageSize})
	var out []corpusMsg
	for k := range copies {
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			if k > 0 {
				raw = append([]byte(fmt.Sprintf("X-Test-Copy: %d\n", k)), raw...)
			}
			// What the tests APPEND is the form a server stores: CRLF line
			// ends, and NUL as 0x80 (Dovecot's substitution), so Dovecot
			// and the memserver return the same bytes.
			wire := bytes.ReplaceAll(wt.ToCRLF(raw), []byte{0}, []byte{0x80})
			m := corpusMsg{Name: f, Raw: wire, Sum: sha256.Sum256(wire)}
			rep, err := safeClassify(cls, wire)
			switch {
			case err != nil:
				m.Dest = "Quarantine"
			case rep.Kind == classify.KindNotBounce:
				m.Rep = rep
			default:
				m.Rep, m.Dest = rep, "Processed"
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// memCorpus is the fixtures without the messages that start with an mbox
// "From " line: go-imap's memserver cannot parse them and returns an
// empty body (Dovecot keeps them as they are).
func memCorpus(t testing.TB) []corpusMsg {
	var out []corpusMsg
	for _, m := range loadCorpus(t) {
		if !bytes.HasPrefix(m.Raw, []byte("From ")) {
			out = append(out, m)
		}
	}
	return out
}

func raws(msgs []corpusMsg) [][]byte {
	out := make([][]byte, len(msgs))
	for i := range msgs {
		out[i] = msgs[i].Raw
	}
	return out
}

// waitFor polls cond until it holds or the limit passes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v; last state: %s", what, limit, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expectation is what a set of APPENDed messages must end as.
type expectation struct {
	folders map[string]map[[32]byte]int // folder -> hash -> count ("" is the bounce folder)
	unique  map[[32]byte]bool           // every distinct message
	bounces map[[32]byte]bool           // distinct messages that are not not_bounce
	names   map[[32]byte]string         // a file name for each message, for failure messages
}

func expect(msgs []corpusMsg, copies int) expectation {
	e := expectation{folders: map[string]map[[32]byte]int{"": {}, "Processed": {}, "Quarantine": {}},
		unique: map[[32]byte]bool{}, bounces: map[[32]byte]bool{}, names: map[[32]byte]string{}}
	for _, m := range msgs {
		e.names[m.Sum] = filepath.Base(m.Name)
		n := 1
		if m.Dest != "" {
			n = copies
		}
		e.folders[m.Dest][m.Sum] += n
		e.unique[m.Sum] = true
		if m.Dest == "Processed" {
			e.bounces[m.Sum] = true
		}
	}
	return e
}

// folderStateOf counts the messages of each folder by hash ("" is inbox).
func folderStateOf(t testing.TB, c *imapclient.Client, inbox string, folders []string) map[string]map[[32]byte]int {
	t.Helper()
	out := map[string]map[[32]byte]int{}
	for _, f := range folders {
		name := f
		if f == "" {
			name = inbox
		}
		out[f] = map[[32]byte]int{}
		for _, m := range wt.ListFolder(t, c, name) {
			out[f][m.Sum]++
			if f == "" && m.Seen {
				t.Errorf("message in %s was marked \\Seen", inbox)
			}
		}
	}
	return out
}

func sameCounts(a, b map[[32]byte]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func total(m map[[32]byte]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// waitFolders waits until every folder holds exactly what e says.
func waitFolders(t testing.TB, c *imapclient.Client, inbox string, e expectation, limit time.Duration) {
	t.Helper()
	waitFor(t, limit, "folders as expected", func() (bool, string) {
		var folders []string
		for f := range e.folders {
			folders = append(folders, f)
		}
		got := folderStateOf(t, c, inbox, folders)
		ok := true
		var state []string
		for f, want := range e.folders {
			if !sameCounts(got[f], want) {
				ok = false
				for sum, n := range want {
					if got[f][sum] != n {
						state = append(state, fmt.Sprintf("%q holds %s %d times, want %d", f, e.names[sum], got[f][sum], n))
					}
				}
			}
			state = append(state, fmt.Sprintf("%q: %d/%d", f, total(got[f]), total(want)))
		}
		sort.Strings(state)
		return ok, strings.Join(state, ", ")
	})
}

// dbState is what Postgres holds after a run.
type dbState struct {
	messages map[[32]byte]int // source messages by hash
	bounces  int
	dupRows  int // (source, address) pairs seen twice: must be 0
	outbox   int
	pending  int
	msgIDs   []string // outbox msg ids by id order
}

func readDB(t testing.TB, dbURL string) dbState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	s := dbState{messages: map[[32]byte]int{}}
	rows, _ := c.Query(ctx, "SELECT sha256 FROM source_messages")
	var sum []byte
	if _, err := pgx.ForEachRow(rows, []any{&sum}, func() error {
		var k [32]byte
		copy(k[:], sum)
		s.messages[k]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM bounces").Scan(&s.bounces); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM (SELECT 1 FROM bounces GROUP BY source_id, address HAVING count(*) > 1) d").Scan(&s.dupRows); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox").Scan(&s.outbox, &s.pending); err != nil {
		t.Fatal(err)
	}
	rows, _ = c.Query(ctx, "SELECT msg_id FROM outbox ORDER BY id")
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { s.msgIDs = append(s.msgIDs, id); return nil }); err != nil {
		t.Fatal(err)
	}
	return s
}

// streamIDs returns the Nats-Msg-Id of every message in BOUNCES, in
// stream order.
func streamIDs(t testing.TB, natsURL string) []string {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatalf("stream %s: %v", StreamName, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Msgs)
	if n == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for len(ids) < n {
		batch, err := cons.Fetch(min(n-len(ids), 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			ids = append(ids, m.Headers().Get(jetstream.MsgIDHeader))
			got++
		}
		if got == 0 {
			t.Fatalf("stream: read %d of %d messages", len(ids), n)
		}
	}
	return ids
}

// checkStored asserts the exact end state: every distinct message in
// Postgres once, no duplicate bounce rows, every event published and in
// the stream once, in outbox order.
func checkStored(t testing.TB, dbURL, natsURL string, e expectation) dbState {
	t.Helper()
	var s dbState
	waitFor(t, 30*time.Second, "outbox drained", func() (bool, string) {
		s = readDB(t, dbURL)
		return s.pending == 0 && len(s.messages) == len(e.unique), fmt.Sprintf("%d pending, %d/%d messages", s.pending, len(s.messages), len(e.unique))
	})
	for sum := range e.unique {
		if s.messages[sum] != 1 {
			t.Errorf("message %x stored %d times, want 1", sum[:6], s.messages[sum])
		}
	}
	if len(s.messages) != len(e.unique) {
		t.Errorf("%d messages stored, want %d", len(s.messages), len(e.unique))
	}
	if s.dupRows != 0 {
		t.Errorf("%d duplicate bounce rows", s.dupRows)
	}
	ids := streamIDs(t, natsURL)
	if len(ids) != s.outbox {
		t.Errorf("stream holds %d events, outbox %d", len(ids), s.outbox)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("event %s twice in the stream", id)
		}
		seen[id] = true
	}
	for _, id := range s.msgIDs {
		if !seen[id] {
			t.Errorf("event %s is not in the stream", id)
		}
	}
	t.Logf("stored: %d messages, %d bounce rows, %d events", len(s.messages), s.bounces, s.outbox)
	return s
}
