package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"

	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// manyRecipientDSN is an RFC 3464 DSN listing n failed recipients,
// tag-0@many.example ... tag-(n-1)@many.example, as the wire carries it.
func manyRecipientDSN(tag string, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n"+
		"Message-ID: <dsn-%s@mx.example.net>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n"+
		"--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"+
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n", tag)
	for i := range n {
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; %s-%d@many.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"+
			"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n", tag, i)
	}
	fmt.Fprintf(&b, "\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@example.org\r\nSubject: Our news\r\n"+
		"Message-ID: <orig-%s@example.org>\r\nList-Id: <news.example.org>\r\n\r\n--b1--\r\n", tag)
	return b.Bytes()
}

// wireBounce is freshBounce as the wire carries it, with its hash.
func wireBounce(tag string) ([]byte, [32]byte) {
	raw := wt.ToCRLF(freshBounce(tag))
	return raw, sha256.Sum256(raw)
}

// A batch holding one message whose save Postgres refuses (a trigger
// rejects its bounce row: a non-transient error, as a value Postgres
// cannot take would be) quarantines exactly that message, with its error
// recorded, and saves the rest of the batch and the batches after it.
func TestSaveFailureQuarantinesOneMessage(t *testing.T) {
	saveFailure(t, "P0001") // raise_exception
}

// The same when the refusal looks transient (a serialization failure
// each time): after maxSaveAttempts tries the batch is split all the same.
func TestRepeatedTransientSaveFailure(t *testing.T) {
	saveFailure(t, "40001")
}

// saveFailure runs a batch with a message whose bounce row a trigger
// refuses with SQLSTATE code.
func saveFailure(t *testing.T, code string) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	ctx := context.Background()
	pc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	if _, err := pc.Exec(ctx, `
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.address LIKE 'user-poison@%' THEN RAISE EXCEPTION 'poison row refused' USING ERRCODE = '`+code+`'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON bounces FOR EACH ROW EXECUTE FUNCTION refuse_poison();`); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dbURL, n.URL(), m.URL("INBOX"))
	cfg.BatchSize = 25
	w := startWorker(t, cfg)

	var raws [][]byte
	e := expectation{folders: map[string]map[[32]byte]int{"": {}, "Processed": {}, "Quarantine": {}},
		unique: map[[32]byte]bool{}, bounces: map[[32]byte]bool{}, names: map[[32]byte]string{}}
	var poisonSum [32]byte
	for i := range 60 {
		tag := fmt.Sprint(i)
		dest := "Processed"
		if i == 37 {
			tag, dest = "poison", "Quarantine"
		}
		raw, sum := wireBounce(tag)
		if dest == "Quarantine" {
			poisonSum = sum
		}
		raws = append(raws, raw)
		e.folders[dest][sum]++
		e.unique[sum], e.names[sum] = true, tag
	}
	c := wt.IMAPClient(t, m.Addr(), m.User, m.Password)
	wt.AppendRaw(t, c, "INBOX", raws...)
	waitFolders(t, c, "INBOX", e, 30*time.Second)
	s := checkStored(t, dbURL, n.URL(), e)
	if s.bounces != 59 {
		t.Errorf("%d bounce rows, want 59 (every message but the poisoned one)", s.bounces)
	}
	var perr string
	if err := pc.QueryRow(ctx, "SELECT parse_error FROM source_messages WHERE sha256 = $1", poisonSum[:]).Scan(&perr); err != nil ||
		!strings.Contains(perr, "save failed") || !strings.Contains(perr, "poison row refused") {
		t.Errorf("poisoned message: parse_error %q, %v; want the save's error", perr, err)
	}
	if got := counterValue(t, w.w.metrics.saveQuarantined); got != 1 {
		t.Errorf("bouncer_save_quarantined_total = %v, want 1", got)
	}
}

// A hostile DSN listing 10,000 recipients is recorded (a bounce row for
// each) but suppresses no one, past the recipient limit, and the mail
// behind it is processed.
func TestManyRecipientsDoNotStall(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	cfg := testConfig(t, dbURL, n.URL(), m.URL("INBOX"))
	cfg.BatchSize = 10
	startWorker(t, cfg)

	e := expectation{folders: map[string]map[[32]byte]int{"": {}, "Processed": {}, "Quarantine": {}},
		unique: map[[32]byte]bool{}, bounces: map[[32]byte]bool{}, names: map[[32]byte]string{}}
	huge := manyRecipientDSN("hostile", 10000)
	raws := [][]byte{huge}
	hugeSum := sha256.Sum256(huge)
	e.folders["Processed"][hugeSum]++
	e.unique[hugeSum], e.names[hugeSum] = true, "hostile"
	for i := range 20 {
		raw, sum := wireBounce(fmt.Sprint("after-", i))
		raws = append(raws, raw)
		e.folders["Processed"][sum]++
		e.unique[sum], e.names[sum] = true, fmt.Sprint("after-", i)
	}
	c := wt.IMAPClient(t, m.Addr(), m.User, m.Password)
	wt.AppendRaw(t, c, "INBOX", raws...)
	waitFolders(t, c, "INBOX", e, 60*time.Second)
	s := checkStored(t, dbURL, n.URL(), e)
	if s.bounces != 10000+20 {
		t.Errorf("%d bounce rows, want 10020", s.bounces)
	}
	ctx := context.Background()
	pc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	var hostile, others int
	if err := pc.QueryRow(ctx, `SELECT count(*) FILTER (WHERE domain = 'many.example'), count(*) FILTER (WHERE domain <> 'many.example') FROM suppressions`).Scan(&hostile, &others); err != nil {
		t.Fatal(err)
	}
	if hostile != 0 || others != 20 {
		t.Errorf("suppressions: %d of the hostile DSN's, %d of the others; want 0 and 20", hostile, others)
	}
}

// counterValue reads a counter as gaugeValue reads a gauge.
func counterValue(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// BenchmarkHugeDSN measures a worker process (as `bouncer run` tunes its
// garbage collector) on a DSN listing BOUNCER_BENCH_RECIPIENTS failed
// recipients (default 75,000, the size that once made Postgres run out
// of lock memory) followed by 20 ordinary bounces, on Dovecot: the time
// until all are stored and published, and the worker's peak RSS. Run it
// once:
//
//	go test ./worker -run '^$' -bench BenchmarkHugeDSN -benchtime 1x
func BenchmarkHugeDSN(b *testing.B) {
	n := 75000
	if v, err := strconv.Atoi(os.Getenv("BOUNCER_BENCH_RECIPIENTS")); err == nil && v > 0 {
		n = v
	}
	d := wt.StartDovecot(b)
	ns := wt.StartNATS(b)
	dbURL := wt.NewDatabase(b)
	huge := manyRecipientDSN("huge", n)
	raws := [][]byte{huge}
	for i := range 20 {
		raw, _ := wireBounce(fmt.Sprint("behind-", i))
		raws = append(raws, raw)
	}
	c := wt.IMAPClient(b, d.Addr(), d.User, d.Password)
	wt.AppendRaw(b, c, "INBOX", raws...)
	ctx := context.Background()
	pc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close(ctx)
	b.ResetTimer()
	start := time.Now()
	child := startBenchWorker(b, dbURL, ns.URL(), d.URL("INBOX"))
	var stored, pending, rows, supp int
	for {
		pc.QueryRow(ctx, `SELECT (SELECT count(*) FROM source_messages), (SELECT count(*) FROM outbox WHERE published_at IS NULL),
			(SELECT count(*) FROM bounces), (SELECT count(*) FROM suppressions)`).Scan(&stored, &pending, &rows, &supp)
		if stored == len(raws) && pending == 0 {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("stored %d of %d messages in 5 min", stored, len(raws))
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	rss := peakRSS(b, child.Process.Pid)
	b.ReportMetric(took.Seconds(), "s")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
	b.Logf("DSN of %d recipients (%d bytes) and 20 bounces behind it: stored and published in %v, %d bounce rows, %d suppressions; worker peak RSS %.1f MB",
		n, len(huge), took.Round(time.Millisecond), rows, supp, float64(rss)/(1<<20))
}
