package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/demo"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
	"github.com/bouncer-mail/bouncer/worker"
)

// `bouncer demo` runs as a subprocess against a throw-away database on the
// local PostgreSQL: its summary is what classifying the samples directly
// says; a message added with the printed `bouncer inject` command is
// processed; SIGINT ends it with status 0 within 10 s. A second run against
// the same database prints the same summary (nothing is recorded twice).
func TestDemo(t *testing.T) {
	bin := buildBouncer(t)
	dbURL := storetest.NewDatabase(t)
	want := expectedSummary(t)
	var wantText strings.Builder
	want.Write(&wantText)

	first := startDemo(t, bin, dbURL)
	if first.summary != wantText.String() {
		t.Errorf("first run's summary differs from classifying the samples directly:\n%s", lineDiff(first.summary, wantText.String()))
	}
	events := want.BounceEvents + want.SuppressionEvents
	if s := fmt.Sprintf("This run recorded all %d messages and published %d events to the JetStream stream BOUNCES (it holds %d).", want.Messages, events, events); !strings.Contains(first.output(), s) {
		t.Errorf("first run does not say %q:\n%s", s, first.output())
	}

	// One more bounce, added the way the demo says.
	extra := filepath.Join(t.TempDir(), "extra.eml")
	const extraRcpt = "newcomer@gone.example"
	os.WriteFile(extra, []byte(extraBounce(extraRcpt)), 0o644)
	out, err := exec.CommandContext(t.Context(), bin, "inject", "--imap", first.injectURL, extra).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "appended 1 message(s)") {
		t.Fatalf("bouncer inject --imap %s = %v: %s", first.injectURL, err, out)
	}
	first.waitFor(t, "processed 1 more message(s): 1 new, 0 already recorded", 30*time.Second)
	if n := metricSum(t, first.web+"/metrics", "bouncer_messages_total"); n != want.Messages+1 {
		t.Errorf("bouncer_messages_total after inject = %d, want %d", n, want.Messages+1)
	}
	// The same bounce re-sent is processed, but it is not new.
	if out, err := exec.CommandContext(t.Context(), bin, "inject", "--imap", first.injectURL, extra).CombinedOutput(); err != nil {
		t.Fatalf("bouncer inject (again) = %v: %s", err, out)
	}
	first.waitFor(t, "processed 1 more message(s): 0 new, 1 already recorded", 30*time.Second)
	db, err := store.Open(t.Context(), dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if s, err := db.CheckSuppression(t.Context(), extraRcpt, ""); err != nil || s == nil || s.Category != classify.MailboxUnknown {
		t.Errorf("CheckSuppression(%s) after inject = %+v, %v; want a mailbox_unknown suppression", extraRcpt, s, err)
	}
	first.interrupt(t)

	second := startDemo(t, bin, dbURL)
	if second.summary != first.summary {
		t.Errorf("second run's summary differs from the first's:\n%s", lineDiff(second.summary, first.summary))
	}
	if s := "This run recorded nothing new"; !strings.Contains(second.output(), s) {
		t.Errorf("second run does not say %q:\n%s", s, second.output())
	}
	second.interrupt(t)
}

// The demo without PostgreSQL says how to get one, and exits 2.
func TestDemoWithoutPostgres(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var stdout, stderr syncBuffer
	vars := map[string]string{"DATABASE_URL": "postgres://postgres@" + addr + "/bouncer_demo?sslmode=disable"}
	err = run(t.Context(), &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}, []string{"demo"})
	if !errors.Is(err, errUsage) {
		t.Fatalf("bouncer demo without PostgreSQL = %v, want a usage error", err)
	}
	for _, s := range []string{"no PostgreSQL answers at " + addr, "docker compose up -d postgres", "service postgresql start", "DATABASE_URL="} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("bouncer demo without PostgreSQL says:\n%s\nwant it to mention %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "failed to connect to") {
		t.Errorf("bouncer demo without PostgreSQL shows pgx's error chain:\n%s", err)
	}
}

// The default port taken, the demo's pages go to a free one, and it says so.
func TestListenDemoHTTP(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ln, note, err := listenDemoHTTP(busy.Addr().String())
	if err != nil {
		t.Fatalf("listenDemoHTTP(%s taken) = %v", busy.Addr(), err)
	}
	defer ln.Close()
	if ln.Addr().String() == busy.Addr().String() || !strings.Contains(note, "is taken") {
		t.Errorf("listenDemoHTTP(%s taken) = %s, %q; want another port and a note", busy.Addr(), ln.Addr(), note)
	}
}

// expectedSummary is what the summary must say, from classifying the
// samples directly and applying the default suppression policy as
// store.Policy documents it: dead addresses at once (hard), complaints at
// once, soft categories after soft bounces on 3 distinct days within 15.
func expectedSummary(t *testing.T) demo.Summary {
	t.Helper()
	samples, err := demo.Samples()
	if err != nil {
		t.Fatal(err)
	}
	cls := classify.New(classify.Options{})
	s := demo.Summary{Messages: len(samples), Kinds: map[string]int{}, Suppressions: map[store.Reason]int{}}
	rows := map[demo.Row]int{}
	replies := map[demo.Reply]int{}
	type why struct {
		reason store.Reason
		row    demo.Row
	}
	suppress := map[string]why{}
	softDays := map[string]map[int]bool{}
	hashes := map[[32]byte]string{}
	for _, smp := range samples {
		sum := worker.MessageSHA256(smp.Raw) // what the store de-duplicates on
		if prev, dup := hashes[sum]; dup {
			t.Fatalf("samples %s and %s are the same message", prev, smp.Name)
		}
		hashes[sum] = smp.Name
		rep, err := cls.Classify(smp.Raw)
		if err != nil {
			s.Kinds["quarantined"]++
			s.Folders.Quarantine++
			continue
		}
		s.Kinds[string(rep.Kind)]++
		if rep.Kind == classify.KindNotBounce {
			s.Folders.Inbox++
		} else {
			s.Folders.Processed++
		}
		seen := map[string]bool{}
		for _, r := range rep.Recipients {
			if !r.Failed() {
				continue
			}
			addr, domain := store.NormalizeAddress(r.Address)
			if seen[addr] {
				continue // one row per message and recipient
			}
			seen[addr] = true
			row := demo.Row{Category: r.Category, Severity: r.Severity}
			rows[row]++
			if r.SMTPCode == 553 {
				replies[demo.Reply{Category: r.Category, Text: demo.ReplyText(r.Diagnostic, 553)}]++
			}
			var reason store.Reason
			switch {
			case !store.ValidAddress(addr, domain): // recorded, never suppressed
			case r.Category == classify.Complaint:
				reason = store.ReasonComplaint
			case rep.Original.AutoReply || classify.NeverSuppress(r.Category):
			case r.Suppress:
				reason = store.ReasonHard
			case r.Category == classify.MailboxFull || r.Category == classify.Expired:
				if softDays[addr] == nil {
					softDays[addr] = map[int]bool{}
				}
				softDays[addr][smp.AgeDays] = true
				if len(softDays[addr]) >= store.DefaultSoftThreshold {
					reason = store.ReasonSoft
				}
			}
			if reason == "" {
				continue
			}
			if w, ok := suppress[addr]; ok && w.reason != reason && w.reason != store.ReasonSoft {
				t.Fatalf("samples: %s would be suppressed as %s and as %s: make each suppressed address appear one way", addr, w.reason, reason)
			}
			suppress[addr] = why{reason, row}
		}
	}
	suppressed := map[demo.Row]int{}
	for _, w := range suppress {
		s.Suppressions[w.reason]++
		suppressed[w.row]++
		s.SuppressionEvents++
	}
	for k, n := range rows {
		k.Recipients, k.Suppressed = n, suppressed[k]
		s.Rows = append(s.Rows, k)
		s.BounceEvents += n
	}
	for k, n := range replies {
		k.N = n
		s.Replies = append(s.Replies, k)
	}
	s.Sort()
	// The samples are meant to show these; a change that loses one should
	// be a decision.
	for _, c := range classify.Categories {
		if c != classify.AutoReply && rows[demo.Row{Category: c, Severity: classify.Hard}]+rows[demo.Row{Category: c, Severity: classify.Soft}]+rows[demo.Row{Category: c, Severity: classify.None}] == 0 {
			t.Errorf("samples: no recipient of category %s", c)
		}
	}
	if s.Kinds["auto_reply"] == 0 || s.Kinds["not_bounce"] == 0 || s.Kinds["quarantined"] == 0 || s.Suppressions[store.ReasonSoft] == 0 || len(s.Replies) < 20 {
		t.Errorf("samples: want an auto-reply, a person's reply, an unreadable message, a soft suppression and 20+ 553 variants; got %+v", s)
	}
	return s
}

// demoRunning is one `bouncer demo` subprocess and what it printed.
type demoRunning struct {
	cmd       *exec.Cmd
	exited    chan error
	mu        sync.Mutex
	out       strings.Builder
	lines     chan string
	stderr    syncBuffer
	summary   string // the block that starts with "Summary"
	injectURL string
	web       string
}

func (d *demoRunning) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// startDemo runs `bouncer demo` on dbURL with its pages on a free port and
// waits for it to finish the samples and say how to go on.
func startDemo(t *testing.T, bin, dbURL string, env ...string) *demoRunning {
	t.Helper()
	d := &demoRunning{exited: make(chan error, 1), lines: make(chan string, 1000)}
	d.cmd = exec.Command(bin, "demo")
	d.cmd.Env = append(append(cleanEnv(), "DATABASE_URL="+dbURL, "BOUNCER_HTTP_ADDR=127.0.0.1:0"), env...)
	d.cmd.Stderr = &d.stderr
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			select {
			case d.lines <- sc.Text():
			default:
			}
		}
		d.exited <- d.cmd.Wait()
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.exited
		}
		if strings.Contains(d.stderr.String(), `"level":"ERROR"`) {
			t.Errorf("bouncer demo logged errors:\n%s", d.stderr.String())
		}
	})
	d.waitFor(t, "Press Ctrl-C to stop.", 3*time.Minute)
	t.Logf("bouncer demo ready in %v", time.Since(start).Round(time.Millisecond))
	out := d.output()
	if i := strings.Index(out, "\n"+demo.SummaryHeader+" "); i >= 0 {
		rest := out[i+1:]
		if j := strings.Index(rest, "\n\n"); j >= 0 {
			d.summary = rest[:j+2]
		}
	}
	if d.summary == "" {
		t.Fatalf("no summary in the output:\n%s", out)
	}
	if m := regexp.MustCompile(`bouncer inject --imap '([^']+)'`).FindStringSubmatch(out); m != nil {
		d.injectURL = m[1]
	} else {
		t.Fatalf("no inject command in the output:\n%s", out)
	}
	if m := regexp.MustCompile(`(?m)^  explain page +(http://\S+)/$`).FindStringSubmatch(out); m != nil {
		d.web = m[1]
	} else {
		t.Fatalf("no explain page in the output:\n%s", out)
	}
	for _, p := range []string{"/", "/readyz", "/healthz"} {
		resp, err := http.Get(d.web + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d, want 200", p, resp.StatusCode)
		}
	}
	return d
}

// waitFor waits for a line of output containing s.
func (d *demoRunning) waitFor(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	if strings.Contains(d.output(), s) {
		return
	}
	timeout := time.After(limit)
	for {
		select {
		case l := <-d.lines:
			if strings.Contains(l, s) {
				return
			}
		case err := <-d.exited:
			d.exited <- err
			t.Fatalf("bouncer demo exited (%v) before printing %q:\n%s\nstderr:\n%s", err, s, d.output(), d.stderr.String())
		case <-timeout:
			t.Fatalf("bouncer demo did not print %q within %v:\n%s\nstderr:\n%s", s, limit, d.output(), d.stderr.String())
		}
	}
}

// interrupt sends SIGINT (Ctrl-C) and wants exit status 0 within 10 s.
func (d *demoRunning) interrupt(t *testing.T) {
	t.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		d.exited <- err
		if err != nil {
			t.Errorf("bouncer demo after SIGINT: %v (want exit status 0)\nstderr:\n%s", err, d.stderr.String())
		}
		t.Logf("bouncer demo stopped %v after SIGINT", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatalf("bouncer demo still running 10s after SIGINT")
	}
}

// cleanEnv is the test's environment without the variables the demo
// reads, so that the developer's settings do not change what it does.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || k == "NATS_URL" || strings.HasPrefix(k, "BOUNCER_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildBouncer builds the bouncer binary once per test process, with the
// race detector when the tests have it.
func buildBouncer(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bouncer-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "bouncer")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		args := []string{"build", "-o", builtBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.CommandContext(ctx, "go", append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// metricSum sums the series of one metric at url.
func metricSum(t *testing.T, url, name string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\d+)$`)
	total := 0
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	return total
}

// lineDiff shows the lines of got and want that differ.
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			fmt.Fprintf(&b, "line %d:\n  got:  %q\n  want: %q\n", i+1, gl, wl)
		}
	}
	return b.String()
}

// extraBounce is a Postfix DSN for a recipient the samples do not have.
func extraBounce(rcpt string) string {
	return strings.ReplaceAll(`From: MAILER-DAEMON@mx.lists.example.com (Mail Delivery System)
To: bounces+extra@lists.example.com
Subject: Undelivered Mail Returned to Sender
Date: Tue, 03 Nov 2026 10:00:00 +0000
Message-Id: <extra-1@mx.lists.example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="X1"

--X1
Content-Type: text/plain; charset=us-ascii

<RCPT>: host mx.gone.example[192.0.2.77] said: 550 5.1.1 <RCPT>: Recipient
    address rejected: User unknown (in reply to RCPT TO command)

--X1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.lists.example.com

Final-Recipient: rfc822; RCPT
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.gone.example
Diagnostic-Code: smtp; 550 5.1.1 <RCPT>: Recipient address rejected: User unknown

--X1--
`, "RCPT", rcpt)
}
