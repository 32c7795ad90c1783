package worker

import (
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bouncer-mail/bouncer/classify"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// The project's fixtures APPENDed to Dovecot while the worker runs: every
// bounce in Postgres once, every event in the stream once, every bounce in
// Processed, the rest untouched and unread. Then everything is copied back
// and the worker restarted: nothing changes. Then a bounce APPENDed during
// IDLE becomes an event within 2 s.
func TestEndToEndDovecot(t *testing.T) {
	endToEndDovecot(t, loadCorpus(t))
}

// The same with the real-bounce corpus, when it is there (required in CI).
func TestEndToEndDovecotRealCorpus(t *testing.T) {
	endToEndDovecot(t, loadRealCorpus(t))
}

func endToEndDovecot(t *testing.T, msgs []corpusMsg) {
	d := wt.StartDovecot(t)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	c := wt.IMAPClient(t, d.Addr(), d.User, d.Password)

	cfg := testConfig(t, dbURL, n.URL(), d.URL("INBOX"))
	w := startWorker(t, cfg)
	waitFor(t, 10*time.Second, "worker idle", func() (bool, string) {
		snap, ready := w.w.status.snapshot()
		return ready, fmt.Sprint(snap)
	})
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)
	e := expect(msgs, 1)
	waitFolders(t, c, "INBOX", e, 90*time.Second)
	before := checkStored(t, dbURL, n.URL(), e)

	// Copy everything processed back into the inbox and restart.
	w.stop()
	for _, f := range []string{"Processed", "Quarantine"} {
		if _, err := c.Select(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Copy(imap.SeqSet{{Start: 1, Stop: 0}}, "INBOX").Wait(); err != nil && len(e.folders[f]) > 0 {
			t.Fatalf("copy %s back: %v", f, err)
		}
	}
	c.Unselect().Wait()
	w2 := startWorker(t, testConfig(t, dbURL, n.URL(), d.URL("INBOX")))
	waitFolders(t, c, "INBOX", expect(msgs, 2), 90*time.Second)
	after := checkStored(t, dbURL, n.URL(), e)
	if after.bounces != before.bounces || after.outbox != before.outbox {
		t.Errorf("after the replay: %d bounce rows, %d events; before: %d, %d", after.bounces, after.outbox, before.bounces, before.outbox)
	}

	// IDLE latency on Dovecot (which batches notifications by 0.5 s).
	idleLatency(t, w2, c, n.URL(), "INBOX", 2*time.Second)
}

// freshBounce is an RFC 3464 DSN with a unique recipient, so that it is
// new to the store.
func freshBounce(tag string) []byte {
	return []byte(fmt.Sprintf(`From: MAILER-DAEMON@mx.example.net
To: bounces@example.org
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-%[1]s@mx.example.net>
Date: Mon, 3 Mar 2025 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered to user-%[1]s@example.com.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Mon, 3 Mar 2025 09:59:58 +0000

Final-Recipient: rfc822; user-%[1]s@example.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; mail.example.com
Diagnostic-Code: smtp; 550 5.1.1 <user-%[1]s@example.com>: Recipient address rejected: User unknown in virtual mailbox table

--b1
Content-Type: text/rfc822-headers

From: news@example.org
To: user-%[1]s@example.com
Subject: Our news
Message-ID: <orig-%[1]s@example.org>
List-Id: <news.example.org>

--b1--
`, tag))
}

// idleLatency APPENDs a fresh bounce while the worker IDLEs and checks it
// is published as an event within limit. It returns the latency.
func idleLatency(t *testing.T, w *testWorker, c *imapclient.Client, natsURL, folder string, limit time.Duration) time.Duration {
	t.Helper()
	// The worker reports "idle" once the server has accepted IDLE.
	waitFor(t, 10*time.Second, "worker idle", func() (bool, string) {
		snap, _ := w.w.status.snapshot()
		for _, s := range snap {
			if s.State != stateIdle {
				return false, fmt.Sprint(snap)
			}
		}
		return true, ""
	})
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("bounce.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	raw := wt.ToCRLF(freshBounce(fmt.Sprint(time.Now().UnixNano())))
	if rep, err := classify.New(classify.Options{}).Classify(raw); err != nil || !rep.Bounce() {
		t.Fatalf("Classify(freshBounce) = %v, %v; want a bounce", rep, err)
	}
	start := time.Now()
	wt.AppendRaw(t, c, folder, raw)
	msg, err := sub.NextMsg(limit)
	if err != nil {
		t.Fatalf("no bounce event within %v of the APPEND: %v", limit, err)
	}
	took := time.Since(start)
	if msg.Header.Get(jetstream.MsgIDHeader) == "" {
		t.Errorf("event on %s has no Nats-Msg-Id", msg.Subject)
	}
	t.Logf("APPEND during IDLE to event: %v", took)
	return took
}
