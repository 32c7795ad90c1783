package store_test

import (
	"crypto/sha256"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

func TestRecordsOf(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{})
	dead := bounce("r1", 1, t0, "news", rcpt("dead@example.com", classify.MailboxUnknown), rcpt("relay@example.com", classify.RelayDenied))
	other := bounce("r2", 2, t0, "news", rcpt("gone@example.org", classify.MailboxUnknown))
	broken := store.Message{Mailbox: "bounces@test/INBOX", UIDValidity: 7, UID: 3, SHA256: sha256.Sum256([]byte("junk")), ParseError: "classify: malformed message"}
	f.save(dead, other, broken)

	sums := [][32]byte{dead.SHA256, broken.SHA256, sha256.Sum256([]byte("never saved"))}
	check := func(when string) {
		t.Helper()
		rec, err := f.db.RecordsOf(t.Context(), sums)
		if err != nil {
			t.Fatalf("%s: RecordsOf: %v", when, err)
		}
		kinds := map[[32]byte]classify.Kind{}
		for _, m := range rec.Messages {
			kinds[m.SHA256] = m.Kind
			if m.SHA256 == broken.SHA256 && m.ParseError == "" {
				t.Errorf("%s: broken message has no parse error", when)
			}
		}
		if len(rec.Messages) != 2 || kinds[dead.SHA256] != classify.KindDSN || kinds[broken.SHA256] != "" {
			t.Errorf("%s: RecordsOf messages = %+v, want the dsn and the broken one", when, rec.Messages)
		}
		var addrs []string
		for _, b := range rec.Bounces {
			addrs = append(addrs, b.Address+"/"+string(b.Category))
		}
		if len(addrs) != 2 || addrs[0] != "dead@example.com/mailbox_unknown" || addrs[1] != "relay@example.com/relay_denied" {
			t.Errorf("%s: RecordsOf bounces = %v, want dead (mailbox_unknown) and relay (relay_denied)", when, addrs)
		}
		if len(rec.Suppressions) != 1 || rec.Suppressions[0].Address != "dead@example.com" || rec.Suppressions[0].BounceID != rec.Bounces[0].ID {
			t.Errorf("%s: RecordsOf suppressions = %+v, want dead@example.com's, with its bounce as evidence", when, rec.Suppressions)
		}
	}
	check("first save")
	// Saved again (another mailbox, same content): nothing changes.
	again := dead
	again.Mailbox, again.UID = "other@test/INBOX", 9
	if res := f.save(again); res.Duplicates != 1 || res.Events != 0 {
		t.Errorf("SaveBatch again = %+v, want one duplicate and no events", res)
	}
	check("second save")
}
