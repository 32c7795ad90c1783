package worker

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"

	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker/verp"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// forgedDSN is a Postfix "550 5.1.1 user unknown" DSN for rcpt, delivered
// to the return path envTo, returning a message with Message-ID msgID.
func forgedDSN(rcpt, envTo, msgID string) []byte {
	return []byte(strings.ReplaceAll(fmt.Sprintf(`Delivered-To: %[2]s
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: %[2]s
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"
Message-Id: <dsn-%[3]s>

--B
Content-Type: text/plain

<%[1]s>: host mx.example.net said: 550 5.1.1 <%[1]s>: Recipient address rejected: User unknown (in reply to RCPT TO command)

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; %[1]s
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <%[1]s>: Recipient address rejected: User unknown

--B
Content-Type: text/rfc822-headers

From: news@lists.example.com
To: %[1]s
Message-ID: <%[3]s>
List-Id: <news.lists.example.com>

--B--
`, rcpt, envTo, msgID), "\n", "\r\n"))
}

// forwardedDSN is forgedDSN for a message sent to orig and forwarded to
// final, where the forward failed: Final-Recipient final, Original-Recipient
// orig, the returned original addressed to orig.
func forwardedDSN(final, orig, envTo, msgID string) []byte {
	s := string(forgedDSN(final, envTo, msgID))
	s = strings.Replace(s, "Final-Recipient:", "Original-Recipient: rfc822; "+orig+"\r\nFinal-Recipient:", 1)
	s = strings.Replace(s, "To: "+final+"\r\nMessage-ID:", "To: "+orig+"\r\nMessage-ID:", 1)
	return []byte(s)
}

func testSecret(b byte) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(b)), 32)))
}

// trustCase is one bounce of the trust test and what must come of it.
type trustCase struct {
	name, rcpt string
	raw        []byte
	verified   bool
	by         string
}

// runTrust runs a worker with trust policy tc on cases (each rcpt a
// subscribed member of news.lists.example.com, sent rows from sent) and
// checks every bounce row, suppression, membership and event.
func runTrust(t *testing.T, tc TrustConfig, sent []store.SentMessage, cases []trustCase) {
	t.Helper()
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ImportSent(ctx, sent); err != nil {
		t.Fatal(err)
	}
	raw, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var raws [][]byte
	for _, c := range cases {
		if _, err := raw.Exec(ctx, `INSERT INTO list_members (list_id, address) VALUES ('news.lists.example.com', $1)`, c.rcpt); err != nil {
			t.Fatal(err)
		}
		raws = append(raws, c.raw)
	}
	cfg := testConfig(t, dbURL, n.URL(), m.URL("INBOX"))
	cfg.Trust = tc
	tw := startWorker(t, cfg)
	wt.AppendRaw(t, wt.IMAPClient(t, m.Addr(), m.User, m.Password), "INBOX", raws...)
	waitFor(t, 30*time.Second, "every bounce stored", func() (bool, string) {
		var k int
		raw.QueryRow(ctx, `SELECT count(*) FROM bounces`).Scan(&k)
		return k == len(cases), fmt.Sprintf("%d of %d rows", k, len(cases))
	})
	for _, c := range cases {
		var verified bool
		var by, rule, member string
		var suppress bool
		var supps, events int
		err := raw.QueryRow(ctx, `SELECT b.verified, b.verified_by, b.rule, b.suppress,
			(SELECT status FROM list_members WHERE address = b.address),
			(SELECT count(*) FROM suppressions WHERE address = b.address),
			(SELECT count(*) FROM outbox WHERE payload->>'recipient' = b.address AND payload->>'type' = 'bounce'
				AND (payload->>'verified')::boolean = b.verified AND payload->>'verified_by' = b.verified_by
				AND (payload->>'suppress')::boolean = b.suppress)
			FROM bounces b WHERE b.address = $1`, c.rcpt).Scan(&verified, &by, &rule, &suppress, &member, &supps, &events)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if verified != c.verified || by != c.by {
			t.Errorf("%s: verified, verified_by = %v, %q; want %v, %q", c.name, verified, by, c.verified, c.by)
		}
		wantMember, wantSupps := "subscribed", 0
		if c.verified {
			wantMember, wantSupps = "bounced", 1
		}
		if suppress != c.verified || member != wantMember || supps != wantSupps || events != 1 {
			t.Errorf("%s: suppress %v, member %s, %d suppressions, %d matching events; want %v, %s, %d, 1",
				c.name, suppress, member, supps, events, c.verified, wantMember, wantSupps)
		}
		if !c.verified && !strings.HasSuffix(rule, "+"+c.by) {
			t.Errorf("%s: rule %q, want it suffixed +%s", c.name, rule, c.by)
		}
	}
	// Each unverified recipient is counted once, under its reason.
	want := map[string]float64{}
	for _, c := range cases {
		if !c.verified {
			want[c.by]++
		}
	}
	waitFor(t, 10*time.Second, "bouncer_unverified_total counted", func() (bool, string) {
		for by, n := range want {
			var m dto.Metric
			tw.w.trust.unverified.WithLabelValues(by).Write(&m)
			if m.GetCounter().GetValue() != n {
				return false, fmt.Sprintf("%s: %v, want %v", by, m.GetCounter().GetValue(), n)
			}
		}
		return true, ""
	})
}

// TestTrustVERP forges "user unknown" bounces for subscribed members, with
// no token, a tampered one, one issued for another address and one under a
// retired key: none suppresses, each is recorded unverified and says why.
// The real bounces, signed by the current key or the older one still
// listed, suppress.
func TestTrustVERP(t *testing.T) {
	t.Parallel()
	keys, err := verp.ParseKeys("k2:" + testSecret('n') + ",k1:" + testSecret('o'))
	if err != nil {
		t.Fatal(err)
	}
	retiredKeys, _ := verp.ParseKeys("k0:" + testSecret('r'))
	cur := verp.Codec{Keys: keys, Domain: "lists.example.com"}
	old := verp.Codec{Keys: mustKeys(t, "k1:"+testSecret('o')), Domain: "lists.example.com"}
	retired := verp.Codec{Keys: retiredKeys, Domain: "lists.example.com"}
	rp := func(c verp.Codec, rcpt string) string {
		a, err := c.Encode(verp.Fields{Recipient: rcpt, List: "news.lists.example.com"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tampered := rp(cur, "b@example.org")
	at := strings.IndexByte(tampered, '@')
	last := map[byte]byte{'a': 'b'}[tampered[at-1]]
	if last == 0 {
		last = 'a'
	}
	tampered = tampered[:at-1] + string(last) + tampered[at:]
	cases := []trustCase{
		{"no token", "a@example.org", forgedDSN("a@example.org", "bounces@lists.example.com", "m-a@lists"), false, "unverified:no-token"},
		{"tampered token", "b@example.org", forgedDSN("b@example.org", tampered, "m-b@lists"), false, "unverified:bad-tag"},
		{"another address's token", "c@example.org", forgedDSN("c@example.org", rp(cur, "mallory@example.org"), "m-c@lists"), false, "unverified:wrong-recipient"},
		{"retired key", "d@example.org", forgedDSN("d@example.org", rp(retired, "d@example.org"), "m-d@lists"), false, "unverified:unknown-key"},
		{"real", "e@example.org", forgedDSN("e@example.org", rp(cur, "E@Example.org"), "m-e@lists"), true, "verp:k2"},
		{"real, older key", "f@example.org", forgedDSN("f@example.org", rp(old, "f@example.org"), "m-f@lists"), true, "verp:k1"},
		// The subscriber forwards to a dead address: the token's
		// recipient, which the DSN gives as Original-Recipient, wins.
		{"token's recipient wins", "j@example.org", forwardedDSN("gone@elsewhere.example", "j@example.org", rp(cur, "j@example.org"), "m-j@lists"),
			true, "verp:k2;reported=gone@elsewhere.example"},
	}
	runTrust(t, TrustConfig{Mode: TrustVERP, VERP: &cur}, nil, cases)
}

// TestTrustSent: with sent-message evidence only, a bounce whose returned
// Message-ID was never sent, or was sent to someone else, suppresses
// nothing; the real one does.
func TestTrustSent(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	sent := []store.SentMessage{
		{MessageID: "<m-h@lists>", Recipient: "mallory@example.org", SentAt: at},
		{MessageID: "m-i@lists", Recipient: "I@EXAMPLE.org", ListID: "news.lists.example.com", SentAt: at},
		{MessageID: "m-k@lists", Recipient: "k@example.org", SentAt: at},
	}
	cases := []trustCase{
		{"not sent", "g@example.org", forgedDSN("g@example.org", "bounces@lists.example.com", "m-g@lists"), false, "unverified:not-sent"},
		{"sent to another", "h@example.org", forgedDSN("h@example.org", "bounces@lists.example.com", "m-h@lists"), false, "unverified:wrong-recipient"},
		{"real", "i@example.org", forgedDSN("i@example.org", "bounces@lists.example.com", "m-i@lists"), true, "sent"},
		{"sent recipient wins", "k@example.org", forwardedDSN("gone2@elsewhere.example", "k@example.org", "bounces@lists.example.com", "m-k@lists"),
			true, "sent;reported=gone2@elsewhere.example"},
	}
	runTrust(t, TrustConfig{Mode: TrustAuto}, sent, cases)
}

func mustKeys(t testing.TB, s string) *verp.Keys {
	t.Helper()
	k, err := verp.ParseKeys(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTrustFromEnv checks the modes and their errors.
func TestTrustFromEnv(t *testing.T) {
	key := "k1:" + testSecret('x')
	tests := []struct {
		env     map[string]string
		mode    TrustMode
		keys    bool
		wantErr string
	}{
		{map[string]string{}, TrustAuto, false, ""},
		{map[string]string{"BOUNCER_TRUST": "ANY"}, TrustAny, false, ""},
		{map[string]string{"BOUNCER_VERP_KEYS": key}, TrustAuto, true, ""},
		{map[string]string{"BOUNCER_TRUST": "verp"}, "", false, "BOUNCER_TRUST=verp needs BOUNCER_VERP_KEYS"},
		{map[string]string{"BOUNCER_TRUST": "maybe"}, "", false, `BOUNCER_TRUST="maybe": want verp, sent, any or auto`},
		{map[string]string{"BOUNCER_VERP_KEYS": "k1:short"}, "", false, "BOUNCER_VERP_KEYS"},
	}
	for _, tt := range tests {
		tc, err := TrustFromEnv(func(k string) string { return tt.env[k] })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("TrustFromEnv(%v) = %v, want error containing %q", tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil || tc.Mode != tt.mode || (tc.VERP != nil) != tt.keys {
			t.Errorf("TrustFromEnv(%v) = %+v, %v; want mode %s, keys %v", tt.env, tc, err, tt.mode, tt.keys)
		}
	}
}
