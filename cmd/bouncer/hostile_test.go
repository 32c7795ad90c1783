package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// workerRSSBound is the peak resident set `bouncer run` stays under on the
// largest messages its limits admit, as the README's Limits section says.
const workerRSSBound = 256 << 20

// hostileCase is one message of TestHostileMessages and what must become
// of it: quarantined with an error that says which limit, or recorded with
// so many bounce rows and no suppression.
type hostileCase struct {
	name string
	raw  []byte
	err  string // the parse_error's start; "" when it is recorded
	rows int    // bounce rows when recorded
}

// The real `bouncer run`, as a child process on a private Dovecot with
// real Postgres and NATS, is given a hostile message for every limit (a
// 30 MB message, 1,000-level MIME nesting, 10,000 recipients, a DSN of
// 75,000 recipients of 11.8 MB, one of more recipients than are read, a
// huge header block, invalid UTF-8 and NUL bytes in headers and
// addresses): each ends in Quarantine with its limit's error or is
// recorded without a suppression, the good bounce appended after them is
// processed, and the process's peak RSS (VmHWM) stays under
// workerRSSBound. The binary is built without the race detector whatever
// the tests run with: RSS is measured as shipped.
func TestHostileMessages(t *testing.T) {
	bin := buildPlainBouncer(t)
	d := wt.StartDovecot(t)
	ns := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	cases := hostileCases()
	good := goodBounce("after-hostile")
	raws := [][]byte{}
	for _, c := range cases {
		raws = append(raws, c.raw)
	}
	raws = append(raws, good)
	ic := wt.IMAPClient(t, d.Addr(), d.User, d.Password)
	wt.AppendRaw(t, ic, "INBOX", raws...)

	ctx := context.Background()
	pc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	start := time.Now()
	child, logs := startRunChild(t, bin, map[string]string{
		"DATABASE_URL": dbURL, "NATS_URL": ns.URL(), "BOUNCER_IMAP_URL": d.URL("INBOX"),
		"BOUNCER_HTTP_ADDR": "off", "BOUNCER_LOG_LEVEL": "info", "BOUNCER_OWNER": "hostile",
	})
	waitUntil(t, 3*time.Minute, "every message stored and its events published", func() bool {
		var stored, pending int
		pc.QueryRow(ctx, `SELECT (SELECT count(*) FROM source_messages), (SELECT count(*) FROM outbox WHERE published_at IS NULL)`).Scan(&stored, &pending)
		return stored == len(raws) && pending == 0
	})
	took := time.Since(start)
	hwm := vmHWM(t, child.Process.Pid)
	t.Logf("75,000-recipient DSN: %d bytes", len(cases[3].raw))
	t.Logf("%d messages (%d MB) stored and published in %v; worker VmHWM %.1f MB",
		len(raws), totalSize(raws)>>20, took.Round(time.Millisecond), float64(hwm)/(1<<20))
	if hwm <= 0 || hwm > workerRSSBound {
		t.Errorf("bouncer run peak RSS (VmHWM) = %d bytes, want under %d", hwm, workerRSSBound)
	}
	checkHostileOutcomes(t, pc, cases)
	var goodSupp int
	pc.QueryRow(ctx, `SELECT count(*) FROM suppressions WHERE address = 'user-after-hostile@example.com'`).Scan(&goodSupp)
	if goodSupp != 1 {
		t.Errorf("the good bounce after the hostile ones: %d suppressions, want 1", goodSupp)
	}
	quarantined := 0
	for _, c := range cases {
		if c.err != "" {
			quarantined++
		}
	}
	if got := len(wt.ListFolder(t, ic, "Quarantine")); got != quarantined {
		t.Errorf("Quarantine holds %d messages, want %d", got, quarantined)
	}
	if got := len(wt.ListFolder(t, ic, "INBOX")); got != 0 {
		t.Errorf("INBOX still holds %d messages, want 0", got)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("bouncer run logged errors:\n%.4000s", logs.String())
	}
}

// checkHostileOutcomes compares what Postgres holds of each message (by UID,
// in the order they were appended) with what its case wants.
func checkHostileOutcomes(t *testing.T, pc *pgx.Conn, cases []hostileCase) {
	t.Helper()
	ctx := context.Background()
	rows, err := pc.Query(ctx, `SELECT s.uid, s.parse_error, count(b.id), count(b.id) FILTER (WHERE b.suppress),
		(SELECT count(*) FROM suppressions x JOIN bounces y ON y.id = x.bounce_id WHERE y.source_id = s.id)
		FROM source_messages s LEFT JOIN bounces b ON b.source_id = s.id GROUP BY s.id ORDER BY s.uid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var uid int64
		var perr string
		var n, suppress, supp int
		if err := rows.Scan(&uid, &perr, &n, &suppress, &supp); err != nil {
			t.Fatal(err)
		}
		if i >= len(cases) {
			break // the good bounce
		}
		c := cases[i]
		i++
		if c.err != "" {
			if !strings.HasPrefix(perr, c.err) || n != 0 {
				t.Errorf("%s (uid %d): parse_error %q and %d bounce rows; want quarantined with %q", c.name, uid, perr, n, c.err)
			}
			continue
		}
		if perr != "" || n != c.rows || supp != 0 {
			t.Errorf("%s (uid %d): parse_error %q, %d bounce rows, %d suppressions; want recorded, %d rows, no suppression",
				c.name, uid, perr, n, supp, c.rows)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(cases) {
		t.Errorf("%d of %d hostile messages stored", i, len(cases))
	}
}

// hostileCases builds the hostile messages, one per limit or trap.
func hostileCases() []hostileCase {
	nul := hostileDSN("nul", 1, "Subject: nul \x00 bytes\r\nX-Nul: a\x00b\r\n", func(i int) string { return "jo\x00hn@nul.example" })
	nul = bytes.Replace(nul, []byte("user unknown"), []byte("user\x00unknown"), 1)
	return []hostileCase{
		{"30 MB message", bigMessage(30 << 20), "message too large: ", 0},
		{"1,000-level MIME nesting", nestedMessage(1000), "classify: MIME parts nested too deep", 0},
		{"10,000 recipients", hostileDSN("ten-k", 10000, "", nil), "", 10000},
		{"75,000 recipients (11.8 MB)", hostileDSN("huge", 75000, "", nil), "", 75000},
		{"more recipients than are read", tinyDSN(100001), "classify: too many recipients", 0},
		{"huge header block", hostileDSN("header", 1, strings.Repeat("X-Pad: "+strings.Repeat("p", 90)+"\r\n", 3000), nil), "classify: header block too large", 0},
		{"invalid UTF-8 headers", hostileDSN("utf8", 1, "Subject: \xff\xfe\xc3(\r\nX-Junk: \x80\x81\r\n", func(i int) string { return "jo\xffhn@utf8.example" }), "", 1},
		{"NUL bytes", nul, "", 1},
	}
}

// hostileDSN is a DSN from mx.example.net listing n failed recipients
// (addr(i), or r<i>-tag@tag.example when addr is nil), with extra header
// fields.
func hostileDSN(tag string, n int, extra string, addr func(int) string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.org\r\n%sMessage-ID: <dsn-%s@mx.example.net>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n"+
		"--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"+
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n", extra, tag)
	for i := range n {
		a := fmt.Sprintf("r%d-%s@%s.example", i, tag, tag)
		if addr != nil {
			a = addr(i)
		}
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: 5.1.1\r\n"+
			"Diagnostic-Code: smtp; 550 5.1.1 <%s>: user unknown\r\n", a, a)
	}
	fmt.Fprintf(&b, "\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@example.org\r\nSubject: Our news\r\n"+
		"Message-ID: <orig-%s@example.org>\r\n\r\n--b1--\r\n", tag)
	return b.Bytes()
}

// tinyDSN lists n recipients in as few bytes as a DSN can.
func tinyDSN(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: MAILER-DAEMON@mx.example.net\r\nMessage-ID: <dsn-tiny@mx.example.net>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n")
	for i := range n {
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; %d@t.example\r\nAction: failed\r\n", i)
	}
	b.WriteString("\r\n--b1--\r\n")
	return b.Bytes()
}

// bigMessage is a plain message of about size bytes.
func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: MAILER-DAEMON@mx.example.net\r\nMessage-ID: <big@mx.example.net>\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("x", 98) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// nestedMessage nests multiparts depth levels deep.
func nestedMessage(depth int) []byte {
	var b bytes.Buffer
	b.WriteString("From: MAILER-DAEMON@mx.example.net\r\nMessage-ID: <nested@mx.example.net>\r\nMIME-Version: 1.0\r\n")
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"n%d\"\r\n\r\n--n%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nuser unknown\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--n%d--\r\n", i)
	}
	return b.Bytes()
}

// goodBounce is an ordinary hard bounce for user-tag@example.com.
func goodBounce(tag string) []byte {
	return hostileDSN("good", 1, "Subject: Undelivered Mail Returned to Sender\r\n", func(int) string { return "user-" + tag + "@example.com" })
}

func totalSize(raws [][]byte) int {
	n := 0
	for _, r := range raws {
		n += len(r)
	}
	return n
}

var (
	plainOnce sync.Once
	plainBin  string
	plainErr  error
)

// buildPlainBouncer builds the bouncer binary without the race detector,
// once per test process.
func buildPlainBouncer(t *testing.T) string {
	t.Helper()
	plainOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bouncer-plain-")
		if err != nil {
			plainErr = err
			return
		}
		plainBin = filepath.Join(dir, "bouncer")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", plainBin, ".").CombinedOutput(); err != nil {
			plainErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainBin
}

// startRunChild starts `bin run` with vars over the test's environment
// (without GOGC and GOMEMLIMIT, so that the binary's own settings apply);
// it is killed when the test ends. Its stderr (the JSON log) is returned.
func startRunChild(t *testing.T, bin string, vars map[string]string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "run")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, set := vars[k]; !set && k != "GOGC" && k != "GOMEMLIMIT" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, logs
}

// vmHWM is a process's peak resident set (VmHWM in /proc/PID/status), in
// bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("peak RSS: %v", err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
