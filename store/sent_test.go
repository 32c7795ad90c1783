package store_test

import (
	"errors"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

// TestImportSent checks that importing sent messages is idempotent, that a
// bad row writes nothing, and that the batched look-up finds them by
// Message-ID with or without brackets.
func TestImportSent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	if ok, err := f.db.HasSentMessages(t.Context()); err != nil || ok {
		t.Fatalf("HasSentMessages on an empty table = %v, %v; want false, nil", ok, err)
	}
	msgs := []store.SentMessage{
		{MessageID: "<m1@news.test>", Recipient: " Ana@Example.COM", ListID: "news", CampaignID: "c1", SentAt: t0},
		{MessageID: "m2@news.test", Recipient: "bob@example.com", SentAt: t0},
		{MessageID: "<m1@news.test>", Recipient: "other@example.com", SentAt: t0}, // a repeat: the first wins
	}
	for i, want := range []int64{2, 0} {
		n, err := f.db.ImportSent(t.Context(), msgs)
		if err != nil || n != want {
			t.Fatalf("ImportSent #%d = %d, %v; want %d, nil", i+1, n, err, want)
		}
	}
	bad := []store.SentMessage{{MessageID: "<m3@news.test>", Recipient: "c@example.com", SentAt: t0}, {MessageID: "m4@x", Recipient: "not an address", SentAt: t0}}
	if _, err := f.db.ImportSent(t.Context(), bad); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ImportSent(bad recipient) = %v, want ErrInvalid", err)
	}
	if got := f.n(`SELECT count(*) FROM sent_messages`); got != 2 {
		t.Errorf("sent_messages rows after a bad import = %d, want 2", got)
	}
	found, err := f.db.SentMessages(t.Context(), []string{"m1@news.test", "<m2@news.test>", "nope@news.test", ""})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found["m1@news.test"].Recipient != "ana@example.com" || found["m2@news.test"].Recipient != "bob@example.com" {
		t.Errorf("SentMessages = %+v, want m1 (ana@example.com) and m2 (bob@example.com)", found)
	}
	if ok, err := f.db.HasSentMessages(t.Context()); err != nil || !ok {
		t.Errorf("HasSentMessages = %v, %v; want true, nil", ok, err)
	}
}

// TestSaveUntrusted checks that a recipient the trust policy did not
// verify is recorded (verified false, its event) and suppresses nothing,
// hard or complaint, while a verified one does.
func TestSaveUntrusted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', 'ana@example.com'), ('news', 'bob@example.com'), ('news', 'cy@example.com')`)
	forged := bounce("forged", 1, t0, "news", rcpt("ana@example.com", classify.MailboxUnknown))
	forged.Trust = []store.Trust{{Verified: false, By: "unverified:no-token"}}
	complaint := bounce("complaint", 2, t0, "news", rcpt("cy@example.com", classify.Complaint))
	complaint.Trust = []store.Trust{{Verified: false, By: "unverified:not-sent"}}
	real := bounce("real", 3, t0, "news", rcpt("bob@example.com", classify.MailboxUnknown))
	real.Trust = []store.Trust{{Verified: true, By: "verp:k1"}}
	legacy := bounce("legacy", 4, t0, "news", rcpt("dee@example.com", classify.MailboxUnknown))
	res := f.save(forged, complaint, real, legacy)
	if res.Bounces != 4 || res.Suppressions != 2 {
		t.Errorf("SaveBatch = %+v, want 4 bounces and 2 suppressions (bob, dee)", res)
	}
	for addr, want := range map[string]string{"ana@example.com": "subscribed", "cy@example.com": "subscribed", "bob@example.com": "bounced"} {
		if got := f.member("news", addr); got != want {
			t.Errorf("member news/%s = %s, want %s", addr, got, want)
		}
	}
	if got := f.n(`SELECT count(*) FROM bounces WHERE verified = false AND verified_by LIKE 'unverified:%'`); got != 2 {
		t.Errorf("unverified bounce rows = %d, want 2", got)
	}
	if got := f.n(`SELECT count(*) FROM bounces WHERE address = 'bob@example.com' AND verified AND verified_by = 'verp:k1'`); got != 1 {
		t.Errorf("verified row of bob = %d, want 1", got)
	}
	if got := f.n(`SELECT count(*) FROM bounces WHERE address = 'dee@example.com' AND verified IS NULL AND verified_by = ''`); got != 1 {
		t.Errorf("legacy row of dee (no policy: NULL) = %d, want 1", got)
	}
	verified := map[string]string{}
	for _, p := range f.events() {
		if p.Type != "bounce" {
			continue
		}
		if p.Schema != store.PayloadSchema {
			t.Errorf("event schema %d, want %d", p.Schema, store.PayloadSchema)
		}
		v := "absent"
		if p.Verified != nil {
			v = map[bool]string{true: "true", false: "false"}[*p.Verified]
		}
		verified[p.Recipient] = v + " " + p.VerifiedBy
	}
	want := map[string]string{"ana@example.com": "false unverified:no-token", "cy@example.com": "false unverified:not-sent",
		"bob@example.com": "true verp:k1", "dee@example.com": "absent "}
	for a, w := range want {
		if verified[a] != w {
			t.Errorf("event of %s: verified = %q, want %q", a, verified[a], w)
		}
	}
}
