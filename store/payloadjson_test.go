package store

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// encodingJSON is the reference: what the outbox wrote before appendPayload.
func encodingJSON(t testing.TB, p *Payload) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func checkPayload(t *testing.T, p *Payload) {
	t.Helper()
	want := encodingJSON(t, p)
	got, err := appendPayload(nil, p)
	if err != nil {
		t.Fatalf("appendPayload: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("appendPayload:\n got %s\nwant %s", got, want)
	}
}

func TestAppendPayloadMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2025, 5, 1, 10, 0, 0, 123456000, time.UTC)
	for _, p := range []*Payload{
		{},
		{Schema: 1, EventID: "b-0123", Type: "bounce", Time: at, Recipient: "jane@example.com",
			Domain: "example.com", Status: "5.1.1", SMTPCode: 550, Category: "mailbox_unknown",
			Severity: "hard", Suppress: true, ListID: "news", CampaignID: "c42",
			OriginalMessageID: "<m1@example.org>", Diagnostic: "550 5.1.1 <jane@example.com>: user \"unknown\" \\ \t\r\n\x00\x1f\x7f",
			Mailbox: "bounces@imap.example.org:993/INBOX", Kind: "dsn", Action: "failed", Rule: "status-5.1.1"},
		{Schema: 1, EventID: "s-12-added-hard", Type: "suppression.added", Time: at.In(time.FixedZone("x", 3600)),
			Recipient: "jöe@例え.jp", Diagnostic: "bad \xff\xfe utf8 \u2028 \u2029 <&> é\u00a0",
			Suppression: &PayloadSuppression{ID: 12, Scope: ScopeGlobal, Reason: ReasonHard, BounceID: 7, CreatedBy: "bouncer"}},
		{Schema: 1, Type: "suppression.removed", Time: at, SMTPCode: -3,
			Suppression: &PayloadSuppression{ID: 1 << 40, Scope: ScopeList, ListID: "l", Reason: ReasonSoft,
				CreatedBy: "ops", ExpiresAt: at.Add(time.Hour), RemovedBy: "bouncer", RemovedWhy: "expired"}},
	} {
		checkPayload(t, p)
	}
}

func FuzzAppendPayload(f *testing.F) {
	f.Add("jane@example.com", "550 5.1.1 user unknown", int64(0), 550, true)
	f.Add("\xff\"\\\u2028", "\x00\x01\x7f<>&", int64(1e18), -1, false)
	f.Fuzz(func(t *testing.T, s1, s2 string, ns int64, code int, flag bool) {
		at := time.Unix(0, ns).UTC()
		p := &Payload{Schema: 1, EventID: s1, Type: s2, Time: at, Recipient: s1, Domain: s2,
			Status: s1, SMTPCode: code, Category: s2, Severity: s1, Suppress: flag, ListID: s2,
			CampaignID: s1, OriginalMessageID: s2, Diagnostic: s1 + s2, Mailbox: s2, Kind: s1, Rule: s2}
		if flag {
			p.Suppression = &PayloadSuppression{ID: ns, Scope: Scope(s1), ListID: s2, Reason: Reason(s1),
				BounceID: int64(code), CreatedBy: s2, ExpiresAt: at, RemovedBy: s1, RemovedWhy: s2}
		}
		checkPayload(t, p)
	})
}
