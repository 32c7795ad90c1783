package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

func TestSaveBatchRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', 'dead@example.com'), ('promo', 'Dead@Example.com '), ('news', 'full@example.com')`)

	delivered := classify.Recipient{Address: "ok@example.com", Action: "delivered", Category: classify.Unknown, Severity: classify.None}
	relaySuppress := rcpt("relay@example.com", classify.RelayDenied)
	relaySuppress.Suppress = true // a classifier bug must not suppress a sender-side failure
	msgs := []store.Message{
		bounce("m1", 1, t0, "news", rcpt(" <Dead@EXAMPLE.com>", classify.MailboxUnknown), delivered,
			rcpt("dead@example.com", classify.MailboxUnknown)), // the same recipient twice: one row
		bounce("m2", 2, t0, "news", rcpt("full@example.com", classify.MailboxFull), rcpt("late@example.com", classify.Delayed)),
		bounce("m3", 3, t0, "news", relaySuppress),
		{Mailbox: "bounces@test/INBOX", UIDValidity: 7, UID: 4, SHA256: sha256.Sum256([]byte("garbage")), Size: 7, ParseError: "classify: malformed message\x00 \xff"},
		{Mailbox: "bounces@test/INBOX", UIDValidity: 7, UID: 5, SHA256: sha256.Sum256([]byte("human")), Report: &classify.Report{Kind: classify.KindNotBounce}},
	}
	res := f.save(msgs...)
	want := store.SaveResult{Messages: 5, Bounces: 4, Suppressions: 1, Events: 5}
	if res != want {
		t.Errorf("SaveBatch = %+v, want %+v", res, want)
	}
	if got := f.n(`SELECT count(*) FROM bounces WHERE address = 'dead@example.com' AND address_raw = ' <Dead@EXAMPLE.com>'`); got != 1 {
		t.Errorf("bounce rows of dead@example.com with the raw address kept = %d, want 1", got)
	}
	if got := f.n(`SELECT count(*) FROM source_messages WHERE kind IS NULL AND parse_error = 'classify: malformed message'||chr(65533)||' '||chr(65533)`); got != 1 {
		t.Errorf("parse error stored cleaned = %d rows, want 1", got)
	}
	s, err := f.db.CheckSuppression(t.Context(), "DEAD@example.com", "")
	if err != nil || s == nil {
		t.Fatalf("CheckSuppression(dead) = %v, %v; want a suppression", s, err)
	}
	if s.Reason != store.ReasonHard || s.Scope() != store.ScopeGlobal || s.Category != classify.MailboxUnknown || s.BounceID == 0 || s.CreatedBy != "bouncer" || !s.ExpiresAt.IsZero() {
		t.Errorf("suppression = %+v, want global hard mailbox_unknown with evidence, never expiring", s)
	}
	for _, a := range []string{"relay@example.com", "full@example.com", "late@example.com"} {
		if s, _ := f.db.CheckSuppression(t.Context(), a, "news"); s != nil {
			t.Errorf("CheckSuppression(%s) = %+v, want none", a, s)
		}
	}
	if got, want := f.member("news", "dead@example.com"), "bounced"; got != want {
		t.Errorf("member news/dead = %s, want %s", got, want)
	}
	if got, want := f.member("promo", "dead@example.com"), "bounced"; got != want {
		t.Errorf("member promo/dead (global scope: every list) = %s, want %s", got, want)
	}
	if got, want := f.member("news", "full@example.com"), "subscribed"; got != want {
		t.Errorf("member news/full = %s, want %s", got, want)
	}

	evs, err := f.db.PendingEvents(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]int{}
	for _, e := range evs {
		subjects[e.Subject]++
	}
	wantSubjects := map[string]int{"bounce.hard.mailbox_unknown": 1, "bounce.soft.mailbox_full": 1,
		"bounce.none.delayed": 1, "bounce.hard.relay_denied": 1, "suppression.added": 1}
	if !maps.Equal(subjects, wantSubjects) {
		t.Errorf("event subjects = %v, want %v", subjects, wantSubjects)
	}
	for _, e := range evs {
		var p store.Payload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatalf("payload of %s: %v", e.Subject, err)
		}
		if p.Schema != store.PayloadSchema || p.EventID != e.MsgID || p.Recipient == "" || p.Domain != "example.com" || p.Mailbox != "bounces@test/INBOX" {
			t.Errorf("payload %s = %s: want schema, event_id = msg id, recipient, domain, mailbox", e.Subject, e.Payload)
		}
		if e.Subject == "bounce.hard.mailbox_unknown" {
			if p.Recipient != "dead@example.com" || p.Status != "5.1.1" || p.SMTPCode != 550 || !p.Suppress ||
				p.ListID != "news" || p.CampaignID != "camp-1" || p.OriginalMessageID != "<orig-m1@news.test>" || p.SubscriberID != "sub-m1" ||
				p.Diagnostic == "" || p.Rule == "" || p.Kind != "dsn" || !p.Time.Equal(t0) {
				t.Errorf("bounce payload = %s", e.Payload)
			}
		}
		if e.Subject == "suppression.added" {
			if p.Suppression == nil || p.Suppression.Reason != store.ReasonHard || p.Suppression.Scope != store.ScopeGlobal || p.Recipient != "dead@example.com" || p.Status != "5.1.1" || p.SubscriberID != "sub-m1" {
				t.Errorf("suppression payload = %s", e.Payload)
			}
		}
	}
}

// thousand returns n one-recipient hard bounces, a tenth of them to the
// same few addresses, a fifth soft.
func manyMessages(prefix string, n int) []store.Message {
	msgs := make([]store.Message, n)
	for i := range msgs {
		addr := fmt.Sprintf("user%d@example%d.com", i, i%7)
		cat := classify.MailboxUnknown
		switch {
		case i%10 == 0:
			addr = fmt.Sprintf("shared%d@example.com", i%30)
		case i%5 == 1:
			cat = classify.MailboxFull
		}
		msgs[i] = bounce(fmt.Sprintf("%s-%d", prefix, i), uint32(i+1), day(i%20), "news", rcpt(addr, cat))
	}
	return msgs
}

func TestResaveChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	msgs := manyMessages("r", 1000)
	for i := range 100 {
		f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', $1)`, fmt.Sprintf("user%d@example%d.com", i, i%7))
	}
	var first store.SaveResult
	for i := 0; i < len(msgs); i += 250 {
		r := f.save(msgs[i : i+250]...)
		first.Messages += r.Messages
		first.Bounces += r.Bounces
	}
	if first.Messages != 1000 || first.Bounces != 1000 {
		t.Fatalf("first save stored %d messages, %d bounces; want 1000, 1000", first.Messages, first.Bounces)
	}
	// Every event is there, pending, its payload naming it (events checks).
	events := len(f.events())
	if pending := f.n(`SELECT count(*) FROM outbox WHERE published_at IS NULL`); events < 1000 || pending != events {
		t.Errorf("events = %d, pending = %d; want the same, at least 1000", events, pending)
	}
	before := f.counts()

	// The same messages: one big batch, then in another mailbox under other
	// UIDs (same content), then the same UIDs with other content.
	if r := f.save(msgs...); r != (store.SaveResult{Duplicates: 1000}) {
		t.Errorf("re-save = %+v, want 1000 duplicates and nothing else", r)
	}
	moved := make([]store.Message, len(msgs))
	for i, m := range msgs {
		m.Mailbox, m.UIDValidity, m.UID = "other@test/INBOX", 99, uint32(5000+i)
		moved[i] = m
	}
	if r := f.save(moved...); r != (store.SaveResult{Duplicates: 1000}) {
		t.Errorf("save of the same content in another mailbox = %+v, want 1000 duplicates", r)
	}
	changed := make([]store.Message, len(msgs))
	for i, m := range msgs {
		m.SHA256[0] ^= 0xff
		changed[i] = m
	}
	if r := f.save(changed...); r != (store.SaveResult{Duplicates: 1000}) {
		t.Errorf("save of the same mailbox UIDs = %+v, want 1000 duplicates", r)
	}
	if after := f.counts(); !maps.Equal(before, after) {
		t.Errorf("counts after re-saves = %v, want %v", after, before)
	}
}

// TestSaveMixedAfterNew saves a batch of messages half seen before, once
// after an all-new batch (the save does not look them up first and must
// fall back) and once after a batch that met messages seen before (it
// looks first).
func TestSaveMixedAfterNew(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	msgs := make([]store.Message, 300)
	for i := range msgs {
		msgs[i] = bounce(fmt.Sprintf("m-%d", i), uint32(i+1), day(i%20), "news", rcpt(fmt.Sprintf("m%d@example.com", i), classify.MailboxUnknown))
	}
	if r := f.save(msgs[:100]...); r.Messages != 100 || r.Duplicates != 0 {
		t.Fatalf("all-new batch = %+v, want 100 messages", r)
	}
	// Not looked up: 50 seen before, 50 new.
	want := store.SaveResult{Messages: 50, Duplicates: 50, Bounces: 50, Suppressions: 50, Events: 100}
	if r := f.save(msgs[50:150]...); r != want {
		t.Errorf("mixed batch after a new one = %+v, want %+v", r, want)
	}
	// Looked up, after the mixed batch: again 50 and 50.
	if r := f.save(msgs[100:200]...); r != want {
		t.Errorf("mixed batch after a mixed one = %+v, want %+v", r, want)
	}
	// All new again, after a mixed batch.
	want = store.SaveResult{Messages: 100, Bounces: 100, Suppressions: 100, Events: 200}
	if r := f.save(msgs[200:300]...); r != want {
		t.Errorf("new batch after a mixed one = %+v, want %+v", r, want)
	}
	if n := f.n(`SELECT count(*) FROM bounces`); n != 300 {
		t.Errorf("bounce rows = %d, want 300", n)
	}
	if n := f.n(`SELECT count(*) FROM source_messages`); n != 300 {
		t.Errorf("messages = %d, want 300", n)
	}
}

func TestConcurrentOverlappingSaves(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	msgs := manyMessages("c", 900)
	// The soft bounces of one address on three distinct days, split between
	// the savers: whoever commits last must see the other's and suppress.
	for d := range 3 {
		msgs = append(msgs, bounce(fmt.Sprintf("soft-%d", d), uint32(10000+d), day(d), "news", rcpt("racy@example.com", classify.MailboxFull)))
	}
	for i := range 50 {
		f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', $1), ('promo', $1)`, fmt.Sprintf("shared%d@example.com", i%30)+fmt.Sprint(i/30))
	}
	f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', 'racy@example.com')`)

	a := append(append([]store.Message{}, msgs[:600]...), msgs[900], msgs[902])
	b := append(append([]store.Message{}, msgs[300:900]...), msgs[901], msgs[902])
	rand.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() {
		for i := 0; i < len(a) && errA == nil; i += 150 {
			_, errA = f.db.SaveBatch(context.Background(), a[i:min(i+150, len(a))])
		}
	})
	wg.Go(func() {
		for i := 0; i < len(b) && errB == nil; i += 200 {
			_, errB = f.db.SaveBatch(context.Background(), b[i:min(i+200, len(b))])
		}
	})
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("concurrent SaveBatch = %v, %v", errA, errB)
	}
	if got := f.n(`SELECT count(*) FROM source_messages`); got != 903 {
		t.Errorf("messages = %d, want 903", got)
	}
	if got := f.n(`SELECT count(*) FROM bounces`); got != 903 {
		t.Errorf("bounces = %d, want 903", got)
	}
	if got := f.n(`SELECT count(*) FROM outbox WHERE subject LIKE 'bounce.%'`); got != 903 {
		t.Errorf("bounce events = %d, want 903", got)
	}
	wantSup := f.n(`SELECT count(DISTINCT address) FROM bounces WHERE suppress`) + 1 // + racy, soft
	if got := f.n(`SELECT count(*) FROM suppressions`); got != wantSup {
		t.Errorf("suppressions = %d, want %d (one per hard address, plus the soft one)", got, wantSup)
	}
	if got := f.n(`SELECT count(*) FROM outbox WHERE subject = 'suppression.added'`); got != wantSup {
		t.Errorf("suppression.added events = %d, want %d", got, wantSup)
	}
	if got := f.n(`SELECT count(*) FROM suppressions WHERE address = 'racy@example.com' AND reason = 'soft'`); got != 1 {
		t.Errorf("soft suppressions of racy@ = %d, want 1 (no lost update)", got)
	}
	if got := f.member("news", "racy@example.com"); got != "bounced" {
		t.Errorf("member news/racy = %s, want bounced", got)
	}
}

func TestSaveBatchCheckpointAndInvalid(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	m := bounce("cp", 41, t0, "", rcpt("x@example.com", classify.MailboxFull))
	if _, err := f.db.SaveBatchCheckpoint(ctx, []store.Message{m}, "mb", store.Checkpoint{UIDValidity: 7, LastUID: 41}); err != nil {
		t.Fatal(err)
	}
	cp, ok, err := f.db.Checkpoint(ctx, "mb")
	if err != nil || !ok || cp != (store.Checkpoint{UIDValidity: 7, LastUID: 41}) {
		t.Errorf("Checkpoint = %+v, %v, %v; want {7 41}", cp, ok, err)
	}
	bad := m
	bad.Report = nil
	if _, err := f.db.SaveBatch(ctx, []store.Message{bad}); err == nil || !strings.Contains(err.Error(), "neither report nor parse error") {
		t.Errorf("SaveBatch(no report, no error) = %v, want an ErrInvalid", err)
	}
	if r, err := f.db.SaveBatch(ctx, nil); err != nil || r != (store.SaveResult{}) {
		t.Errorf("SaveBatch(nil) = %+v, %v", r, err)
	}
}

// Every column of a bounce row and of a suppression holds what the report
// said (the rows go in as binary COPY data written by the store).
func TestSaveBatchColumns(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{SoftThreshold: 1})
	r := rcpt("Jane@Example.com", classify.MailboxUnknown)
	r.OriginalAddress, r.Command, r.RemoteMTA = "rfc822; jane@example.com", "RCPT TO", "mx.example.com"
	r.LastAttempt = time.Date(2025, 4, 30, 23, 59, 58, 123456789, time.UTC)
	m := bounce("cols", 1, t0.Add(1500*time.Microsecond), "news", r, rcpt("soft@example.com", classify.MailboxFull))
	m.Report.Original.Campaign = map[string]string{"X-Campaign": "c\"1<", "X-Mailer-Id": "m\x00é"}
	m.Report.Original.From, m.Report.Original.To, m.Report.Original.Subject = "news@example.org", "jane@example.com", "Hello ✓"
	f.now = t0.Add(time.Hour)
	f.save(m)

	var got string
	err := f.raw.QueryRow(t.Context(), `
SELECT concat_ws('|', b.id = s.bounce_id, b.source_id = m.id, b.address, b.address_raw, b.domain, b.original_recipient,
    b.kind, b.action, b.command, b.status, b.smtp_code, b.diagnostic, b.remote_mta,
    to_char(b.last_attempt AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), b.category, b.severity, b.suppress, b.rule,
    b.original_source, b.original_message_id, b.list_id, b.campaign_id, b.campaign::text, b.original_from,
    b.original_to, b.original_subject, b.original_auto_reply,
    to_char(b.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), b.created_at = $1,
    s.address, s.address_raw, s.domain, s.list_id, s.reason, s.category, s.note, s.created_by,
    s.expires_at IS NULL, s.created_at = $1, s.scope)
FROM bounces b JOIN source_messages m ON m.sha256 = $2 JOIN suppressions s ON s.address = b.address
WHERE b.address = 'jane@example.com'`, f.now, m.SHA256[:]).Scan(&got)
	if err != nil {
		t.Fatal(err)
	}
	want := "t|t|jane@example.com|Jane@Example.com|example.com|rfc822; jane@example.com|dsn|failed|RCPT TO|5.1.1|550|" +
		"550 5.1.1 user unknown|mx.example.com|2025-04-30 23:59:58.123456|mailbox_unknown|hard|t|test-mailbox_unknown|" +
		`message/rfc822|<orig-cols@news.test>|news|camp-1|{"X-Campaign": "c\"1<", "X-Mailer-Id": "m�é"}|news@example.org|` +
		"jane@example.com|Hello ✓|f|2025-05-01 10:00:00.001500|t|" +
		"jane@example.com|Jane@Example.com|example.com||hard|mailbox_unknown||bouncer|t|t|global"
	if got != want {
		t.Errorf("row:\n got %s\nwant %s", got, want)
	}
	var expires time.Time
	var bounceID int64
	if err := f.raw.QueryRow(t.Context(), `SELECT expires_at, bounce_id FROM suppressions WHERE address = 'soft@example.com'`).Scan(&expires, &bounceID); err != nil {
		t.Fatal(err)
	}
	if !expires.Equal(f.now.Add(store.DefaultSoftExpiry)) || bounceID != int64(f.n(`SELECT id FROM bounces WHERE address = 'soft@example.com'`)) {
		t.Errorf("soft suppression expires %v, bounce %d", expires, bounceID)
	}
}

// A message another transaction is inserting when SaveBatch inserts it:
// the batch waits for that transaction, then saves the rest (it committed)
// or everything (it rolled back).
func TestSaveBatchRacesAnInsert(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	ctx := t.Context()
	for i, commit := range []bool{true, false} {
		key := fmt.Sprintf("race-%v", commit)
		sum := sha256.Sum256([]byte(key + "-a"))
		tx, err := f.raw.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background()) // a failed test must not keep the connection
		var pid uint32
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO source_messages (sha256, mailbox, uid_validity, uid, processed_at) VALUES ($1, 'elsewhere', 1, $2, now())`, sum[:], i); err != nil {
			t.Fatal(err)
		}
		type result struct {
			res store.SaveResult
			err error
		}
		done := make(chan result, 1)
		saved := make(chan struct{})
		go func() {
			defer close(saved)
			res, err := f.db.SaveBatch(ctx, []store.Message{
				bounce(key+"-a", uint32(10*i+1), t0, "", rcpt("a-"+key+"@example.com", classify.MailboxUnknown)),
				bounce(key+"-b", uint32(10*i+2), t0, "", rcpt("b-"+key+"@example.com", classify.MailboxUnknown)),
			})
			done <- result{res, err}
		}()
		f.waitBlockedBy(pid, saved) // SaveBatch waits on the uncommitted row
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		<-saved
		r := <-done
		want := store.SaveResult{Messages: 1, Duplicates: 1, Bounces: 1, Suppressions: 1, Events: 2}
		if !commit {
			want = store.SaveResult{Messages: 2, Bounces: 2, Suppressions: 2, Events: 4}
		}
		if r.err != nil || r.res != want {
			t.Errorf("commit %v: SaveBatch = %+v, %v; want %+v", commit, r.res, r.err, want)
		}
	}
	if got := f.n(`SELECT count(*) FROM bounces`); got != 3 {
		t.Errorf("bounce rows = %d, want 3", got)
	}
}
