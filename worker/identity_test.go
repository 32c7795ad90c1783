package worker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/store"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

func TestCanonicalHost(t *testing.T) {
	for in, want := range map[string]string{
		"localhost": "localhost", "LOCALHOST.": "localhost", "imap.localhost": "localhost",
		"127.0.0.1": "localhost", "127.1.2.3": "localhost", "::1": "localhost", "[::1]": "localhost",
		"::ffff:192.0.2.1": "192.0.2.1", "2001:DB8:0::1": "2001:db8::1",
		"Mail.Example.COM.": "mail.example.com", "192.0.2.1": "192.0.2.1",
	} {
		if got := canonicalHost(in); got != want {
			t.Errorf("canonicalHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// Two workers given one mailbox as 127.0.0.1 and as localhost: one works
// it, the other stands by, and nothing is stored twice.
func TestTwoSpellingsOneMailbox(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	c := wt.IMAPClient(t, m.Addr(), m.User, m.Password)

	cfgA := testConfig(t, dbURL, n.URL(), m.URL("INBOX"))
	cfgA.BatchSize = 10
	a := startWorker(t, cfgA)
	cfgB := testConfig(t, dbURL, n.URL(), strings.Replace(m.URL("INBOX"), "127.0.0.1", "localhost", 1))
	cfgB.Owner += "-b"
	cfgB.BatchSize = 10
	b := startWorker(t, cfgB)
	if a.w.cfg.Mailboxes[0].Key != b.w.cfg.Mailboxes[0].Key {
		t.Errorf("keys %q and %q: want one", a.w.cfg.Mailboxes[0].Key, b.w.cfg.Mailboxes[0].Key)
	}
	waitFor(t, 10*time.Second, "one worker standing by", func() (bool, string) {
		key := a.w.cfg.Mailboxes[0].Key
		sa, _ := a.w.status.snapshot()
		sb, _ := b.w.status.snapshot()
		return (sa[key].State == stateStandby) != (sb[key].State == stateStandby), sa[key].State + " " + sb[key].State
	})
	msgs := memCorpus(t)[:120]
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)
	e := expect(msgs, 1)
	waitFolders(t, c, "INBOX", e, 60*time.Second)
	checkStored(t, dbURL, n.URL(), e)
	if pa, pb := processedBy(a), processedBy(b); (pa == 0) == (pb == 0) {
		t.Errorf("worker a (127.0.0.1) committed %d messages, b (localhost) %d: want exactly one of them working", pa, pb)
	}
}

// A checkpoint saved under the key of earlier versions (the URL's host as
// written) is carried on from: what it covers is not read again.
func TestLegacyCheckpoint(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	c := wt.IMAPClient(t, m.Addr(), m.User, m.Password)
	msgs := memCorpus(t)[:20]
	wt.AppendRaw(t, c, "INBOX", raws(msgs)...)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	legacy := fmt.Sprintf("%s@%s/INBOX", m.User, m.Addr())
	if err := db.SaveCheckpoint(ctx, legacy, store.Checkpoint{UIDValidity: sel.UIDValidity, LastUID: 10}); err != nil {
		t.Fatal(err)
	}
	c.Unselect().Wait()

	e := expect(msgs[10:], 1)
	for _, cm := range msgs[:10] { // below the checkpoint: left alone
		e.folders[""][cm.Sum]++
	}
	startWorker(t, testConfig(t, dbURL, n.URL(), m.URL("INBOX")))
	waitFolders(t, c, "INBOX", e, 30*time.Second)
	key := "bounces@" + strings.Replace(m.Addr(), "127.0.0.1", "localhost", 1) + "/INBOX"
	waitFor(t, 10*time.Second, "checkpoint under the new key", func() (bool, string) {
		cp, ok, err := db.Checkpoint(ctx, key)
		return err == nil && ok && cp.LastUID == 20, fmt.Sprint(cp, ok, err)
	})
}
