package worker

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// processedBy reports how many messages w has committed.
func processedBy(w *testWorker) int64 {
	snap, _ := w.w.status.snapshot()
	var n int64
	for _, s := range snap {
		n += s.Processed
	}
	return n
}

// waitProcessed waits until w has committed at least n messages, polling
// fast so that the fault that follows lands while batches run.
func waitProcessed(t *testing.T, w *testWorker, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for processedBy(w) < n {
		if time.Now().After(deadline) {
			t.Fatalf("worker committed %d messages in 60s, want %d", processedBy(w), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The IMAP server restarts while batches are under way.
func TestFaultIMAPRestart(t *testing.T) {
	d := wt.StartDovecot(t)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	msgs := loadCorpus(t)
	c := wt.IMAPClient(t, d.Addr(), d.User, d.Password)
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)
	c.Close()

	cfg := testConfig(t, dbURL, n.URL(), d.URL("INBOX"))
	cfg.BatchSize = 10
	w := startWorker(t, cfg)
	waitProcessed(t, w, 30)
	d.Restart(500 * time.Millisecond)
	c = wt.IMAPClient(t, d.Addr(), d.User, d.Password)
	e := expect(msgs, 1)
	waitFolders(t, c, "INBOX", e, 60*time.Second)
	checkStored(t, dbURL, n.URL(), e)
}

// Postgres is unreachable for 10 s while batches are under way.
func TestFaultPostgresDown(t *testing.T) {
	d := wt.StartDovecot(t)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	p := wt.StartProxy(t, strings.Split(strings.TrimPrefix(dbURL, "postgres://postgres@"), "/")[0])
	msgs := loadCorpus(t)
	c := wt.IMAPClient(t, d.Addr(), d.User, d.Password)
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)

	cfg := testConfig(t, wt.ViaProxy(dbURL, p.Addr()), n.URL(), d.URL("INBOX"))
	cfg.BatchSize = 10
	w := startWorker(t, cfg)
	waitProcessed(t, w, 30)
	p.Cut()
	cutAt := processedBy(w)
	time.Sleep(10 * time.Second)
	if got := processedBy(w); got > cutAt+10 {
		t.Errorf("%d messages committed while Postgres was unreachable", got-cutAt)
	}
	p.Heal()
	e := expect(msgs, 1)
	waitFolders(t, c, "INBOX", e, 60*time.Second)
	checkStored(t, dbURL, n.URL(), e)
}

// NATS is down for 10 s: rows wait in the outbox, then drain in order.
func TestFaultNATSDown(t *testing.T) {
	d := wt.StartDovecot(t)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	msgs := loadCorpus(t)
	c := wt.IMAPClient(t, d.Addr(), d.User, d.Password)

	w := startWorker(t, testConfig(t, dbURL, n.URL(), d.URL("INBOX")))
	waitFor(t, 10*time.Second, "worker idle", func() (bool, string) { _, ok := w.w.status.snapshot(); return ok, "" })
	n.Stop()
	downAt := time.Now()
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)
	e := expect(msgs, 1)
	waitFolders(t, c, "INBOX", e, 60*time.Second)
	s := readDB(t, dbURL)
	if s.outbox > 0 && s.pending != s.outbox {
		t.Errorf("%d of %d events marked published while NATS was down", s.outbox-s.pending, s.outbox)
	}
	time.Sleep(10*time.Second - time.Since(downAt))
	n.Start()
	s = checkStored(t, dbURL, n.URL(), e)
	ids := streamIDs(t, n.URL())
	if strings.Join(ids, ",") != strings.Join(s.msgIDs, ",") {
		t.Errorf("the stream's order differs from the outbox's")
	}
}

// The worker is SIGKILLed mid-batch; a standby process takes over within
// 30 s and finishes the work.
func TestFaultKillMidBatch(t *testing.T) {
	d := wt.StartDovecot(t)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	msgs := loadCorpus(t)
	c := wt.IMAPClient(t, d.Addr(), d.User, d.Password)
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)

	a := startHelper(t, "a", dbURL, n.URL(), d.URL("INBOX"))
	ctx := context.Background()
	pc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	waitFor(t, 60*time.Second, "first batches", func() (bool, string) {
		var k int
		pc.QueryRow(ctx, "SELECT count(*) FROM source_messages").Scan(&k)
		return k >= 30, fmt.Sprint(k)
	})
	b := startHelper(t, "b", dbURL, n.URL(), d.URL("INBOX")) // returns once b stands by
	a.Process.Kill()
	killed := time.Now()
	a.Wait()
	waitFor(t, 30*time.Second, "takeover by b", func() (bool, string) {
		var owner string
		pc.QueryRow(ctx, "SELECT owner FROM mailbox_leases WHERE mailbox LIKE 'bounces@%'").Scan(&owner)
		return strings.HasSuffix(owner, "-b"), owner
	})
	t.Logf("takeover %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	e := expect(msgs, 1)
	waitFolders(t, c, "INBOX", e, 60*time.Second)
	checkStored(t, dbURL, n.URL(), e)
	_ = b
}

// startHelper runs a worker in a child process (this test binary, see
// TestHelperWorker), killed at the end of the test.
func startHelper(t *testing.T, name, dbURL, natsURL, imapURL string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorker$")
	cmd.Env = append(os.Environ(),
		"BOUNCER_HELPER_WORKER=1",
		"DATABASE_URL="+dbURL,
		"NATS_URL="+natsURL,
		"BOUNCER_IMAP_URL="+imapURL,
		"BOUNCER_BATCH_SIZE=10",
		"BOUNCER_LEASE_TTL=3s",
		"BOUNCER_BACKOFF_MAX=1s",
		"BOUNCER_OWNER="+t.Name()+"-"+name,
	)
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// The child says when its worker is ready (working the mailbox, or
	// standing by for its lease).
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		found := false
		for sc.Scan() {
			if !found && sc.Text() == helperReady {
				found = true
				ready <- true
			}
		}
		if !found {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("helper worker %s exited before it was ready", name)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("helper worker %s not ready within 30s", name)
	}
	return cmd
}

// helperReady is the line TestHelperWorker prints once its worker is ready.
const helperReady = "helper worker ready"

// TestHelperWorker is the child process of startHelper; it does nothing
// in a normal test run.
func TestHelperWorker(t *testing.T) {
	if os.Getenv("BOUNCER_HELPER_WORKER") != "1" {
		return
	}
	cfg := testCfg{Config: DefaultConfig(), DatabaseURL: os.Getenv("DATABASE_URL"), NATSURL: os.Getenv("NATS_URL")}
	if err := cfg.FromEnv(os.Getenv); err != nil {
		t.Fatal(err)
	}
	cfg.BackoffMin = 100 * time.Millisecond
	w := startWorker(t, cfg)
	waitFor(t, 30*time.Second, "worker ready", func() (bool, string) { _, ok := w.w.status.snapshot(); return ok, "" })
	fmt.Println(helperReady)
	<-w.done // until killed
}

// Two workers list the same mailbox: exactly one works it.
func TestFaultTwoWorkers(t *testing.T) {
	d := wt.StartDovecot(t)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	msgs := loadCorpus(t)
	c := wt.IMAPClient(t, d.Addr(), d.User, d.Password)

	cfgA := testConfig(t, dbURL, n.URL(), d.URL("INBOX"))
	cfgA.BatchSize = 20
	a := startWorker(t, cfgA)
	cfgB := cfgA
	cfgB.Owner += "-b"
	b := startWorker(t, cfgB)
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)
	e := expect(msgs, 1)
	waitFolders(t, c, "INBOX", e, 60*time.Second)
	checkStored(t, dbURL, n.URL(), e)
	pa, pb := processedBy(a), processedBy(b)
	if (pa == 0) == (pb == 0) {
		t.Errorf("worker a committed %d messages, b %d: want exactly one of them working", pa, pb)
	}
	// The one working stops (and releases its lease): the other takes
	// over and handles new mail.
	working, other := a, b
	if pb > 0 {
		working, other = b, a
	}
	working.stop()
	more := slices.Clone(loadCorpus(t)[:20])
	for i := range more {
		m := more[i]
		m.Raw = append([]byte(fmt.Sprintf("X-Replay: %d\r\n", i)), m.Raw...)
		more[i] = m
	}
	wt.AppendRaw(t, c, "INBOX", raws(more)...)
	waitFor(t, 15*time.Second, "takeover", func() (bool, string) {
		return processedBy(other) >= 20, fmt.Sprint(processedBy(other))
	})
}

// UIDVALIDITY changes (the mailbox is deleted and re-created): the worker
// rescans safely, storing nothing twice.
func TestFaultUIDValidity(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	msgs := memCorpus(t)
	half := msgs[:len(msgs)/2]
	c := wt.IMAPClient(t, m.Addr(), m.User, m.Password)
	if err := c.Create("Bounces", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	wt.AppendRaw(t, c, "Bounces", raws(half)...)
	w := startWorker(t, testConfig(t, dbURL, n.URL(), m.URL("Bounces")))
	e1 := expect(half, 1)
	waitFolders(t, c, "Bounces", e1, 30*time.Second)
	checkStored(t, dbURL, n.URL(), e1)
	w.stop()

	c.Unselect().Wait()
	if err := c.Delete("Bounces").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Bounces", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	wt.AppendRaw(t, c, "Bounces", raws(msgs)...)
	startWorker(t, testConfig(t, dbURL, n.URL(), m.URL("Bounces")))
	e2 := expect(msgs, 1)
	want := expectation{folders: map[string]map[[32]byte]int{"": e2.folders[""]}, unique: e2.unique}
	for _, f := range []string{"Processed", "Quarantine"} {
		want.folders[f] = map[[32]byte]int{}
		for _, e := range []expectation{e1, e2} {
			for k, v := range e.folders[f] {
				want.folders[f][k] += v
			}
		}
	}
	waitFolders(t, c, "Bounces", want, 30*time.Second)
	checkStored(t, dbURL, n.URL(), e2)
}

// A connection that hangs without closing (a frozen peer) is noticed and
// replaced; mail that arrives afterwards is processed.
func TestFaultDeadConnection(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	p := wt.StartProxy(t, m.Addr())
	cfg := testConfig(t, dbURL, n.URL(), strings.Replace(m.URL("INBOX"), m.Addr(), p.Addr(), 1))
	cfg.IdleRefresh = time.Second
	cfg.IMAPTimeout = 2 * time.Second
	w := startWorker(t, cfg)
	waitFor(t, 10*time.Second, "worker idle", func() (bool, string) { _, ok := w.w.status.snapshot(); return ok, "" })
	p.Freeze()
	frozen := time.Now()
	waitFor(t, 10*time.Second, "dead connection noticed", func() (bool, string) {
		_, ok := w.w.status.snapshot()
		return !ok, ""
	})
	t.Logf("frozen connection noticed after %v (IDLE refresh %v, timeout %v)", time.Since(frozen).Round(time.Millisecond), cfg.IdleRefresh, cfg.IMAPTimeout)
	p.Heal()
	c := wt.IMAPClient(t, m.Addr(), m.User, m.Password)
	msgs := memCorpus(t)[:30]
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)
	e := expect(msgs, 1)
	waitFolders(t, c, "INBOX", e, 20*time.Second)
	checkStored(t, dbURL, n.URL(), e)
}

// SIGTERM (ctx cancelled) while batches run: the batch under way finishes
// or is abandoned, and nothing is moved out of the mailbox without being
// committed. A restart then finishes the work.
func TestShutdownMidBatch(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	msgs := memCorpus(t)
	c := wt.IMAPClient(t, m.Addr(), m.User, m.Password)
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)
	cfg := testConfig(t, dbURL, n.URL(), m.URL("INBOX"))
	cfg.BatchSize = 10
	w := startWorker(t, cfg)
	waitProcessed(t, w, 40)
	w.stop()
	stored := readDB(t, dbURL).messages
	moved := 0
	for _, f := range []string{"Processed", "Quarantine"} {
		for _, fm := range wt.ListFolder(t, c, f) {
			moved++
			if stored[fm.Sum] == 0 {
				t.Errorf("message %x was moved to %s without being committed", fm.Sum[:6], f)
			}
		}
	}
	if moved == 0 || moved == len(msgs) {
		t.Logf("stopped with %d of %d moved: not mid-drain", moved, len(msgs))
	}
	startWorker(t, testConfig(t, dbURL, n.URL(), m.URL("INBOX")))
	e := expect(msgs, 1)
	waitFolders(t, c, "INBOX", e, 30*time.Second)
	checkStored(t, dbURL, n.URL(), e)
}
