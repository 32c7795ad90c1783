package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

func TestValidAddress(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"jane@example.com", true},
		{"Jane.Doe+tag@Mail.Example.CO.UK", true},
		{"jörg@bücher.de", true},         // RFC 6531 local part, IDNA domain
		{`"john doe"@example.com`, true}, // quoted string
		{"user@[192.0.2.1]", true},
		{"user@[IPv6:2001:db8::1]", true},
		{"a@b-c.example", true},
		{"x@example.123", false}, // numeric TLD
		{"jane\xff@example.com", false},
		{"jane\uFFFD@example.com", false},
		{"jane@exa\xffmple.com", false},
		{"jane", false},
		{"jane@", false},
		{"@example.com", false},
		{"jane@localhost", false}, // one label
		{"jane@example", false},
		{"jane@under_score.example", false},
		{"jane@-bad.example", false},
		{"jane@bad-.example", false},
		{"jane@a..example", false},
		{"jane doe@example.com", false},
		{".jane@example.com", false},
		{"ja..ne@example.com", false},
		{"jane\x01@example.com", false},
		{"user@[10.0.0.1]", false}, // a private literal cannot be ours to suppress
		{"user@[not-an-ip]", false},
		{fmt.Sprintf("%065d@example.com", 1), false},
		{"jane@" + fmt.Sprintf("%064d", 1) + ".example", false},
	}
	for _, tt := range tests {
		addr, domain := store.NormalizeAddress(tt.in)
		if got := store.ValidAddress(addr, domain); got != tt.want {
			t.Errorf("ValidAddress(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// An address that cannot be valid keeps its bounce row and event but is
// never suppressed and changes no list membership, whatever the
// classifier says; a manual suppression of one is refused.
func TestInvalidAddressNeverSuppressed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{SoftThreshold: 1})
	bad := []string{"jane\xff@example.com", "jane@localhost", "jane@exa mple.com", "jane@under_score.example"}
	var msgs []store.Message
	for i, a := range bad {
		addr, _ := store.NormalizeAddress(a)
		f.exec(`INSERT INTO list_members (list_id, address) VALUES ('news', $1)`, addr)
		msgs = append(msgs, bounce(fmt.Sprintf("bad-%d", i), uint32(i+1), t0, "news", rcpt(a, classify.MailboxUnknown)))
	}
	msgs = append(msgs, bounce("soft-bad", 10, t0, "news", rcpt("x\xfe@example.com", classify.MailboxFull)))
	msgs = append(msgs, bounce("cmp-bad", 11, t0, "news", rcpt("y@nodots", classify.Complaint)))
	if r := f.save(msgs...); r.Bounces != len(msgs) || r.Suppressions != 0 {
		t.Errorf("SaveBatch = %+v, want %d bounces and no suppression", r, len(msgs))
	}
	if got := f.counts()["list_members_changed"]; got != 0 {
		t.Errorf("list members changed = %d, want 0", got)
	}
	// The valid one next to them is suppressed: the guard is not a switch.
	if r := f.save(bounce("good", 20, t0, "news", rcpt("jane@example.com", classify.MailboxUnknown))); r.Suppressions != 1 {
		t.Errorf("SaveBatch(valid address) = %+v, want 1 suppression", r)
	}
	_, _, err := f.db.Suppress(context.Background(), store.SuppressRequest{Address: "jane@localhost", By: "test"})
	if err == nil {
		t.Error("Suppress(jane@localhost) = nil error, want ErrInvalid")
	}
}

// hugeDSN is a DSN listing n failed recipients, all subscribed to "news".
func hugeDSN(f *fixture, key string, uid uint32, n int) store.Message {
	rcpts := make([]classify.Recipient, n)
	addrs := make([]string, n)
	for i := range rcpts {
		addrs[i] = fmt.Sprintf("%s%d@example%d.com", key, i, i%50)
		rcpts[i] = rcpt(addrs[i], classify.MailboxUnknown)
	}
	f.exec(`INSERT INTO list_members (list_id, address) SELECT 'news', unnest($1::text[])`, addrs)
	return bounce(key, uid, t0, "news", rcpts...)
}

// A message past MaxRecipients is recorded (every bounce row and event)
// but suppresses nothing; one at the limit suppresses all it lists. Each
// save takes at most LockBuckets advisory locks, however many addresses
// it touches (one lock per address made 75,000 recipients fail with "out
// of shared memory").
func TestRecipientLimitAndBoundedLocks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Policy{MaxRecipients: 1000})
	over := hugeDSN(f, "over", 1, 10000)
	r := f.save(over)
	if r.Bounces != 10000 || r.Suppressions != 0 || r.Events != 10000 {
		t.Errorf("SaveBatch(10,000 recipients) = %+v, want 10000 bounces and events, no suppression", r)
	}
	if got := f.counts()["list_members_changed"]; got != 0 {
		t.Errorf("list members changed = %d, want 0", got)
	}

	// 3 messages at the limit in one batch: 3,000 addresses, all
	// suppressed under at most LockBuckets locks. Another session holds
	// the last bucket's lock, so that the saver, which locks in key order,
	// waits there holding every other lock it takes: count them.
	var at []store.Message
	for i := range 3 {
		at = append(at, hugeDSN(f, fmt.Sprintf("at%d-", i), uint32(10+i), 1000))
	}
	ctx := context.Background()
	holder, err := f.raw.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, store.LockKeyMax); err != nil {
		t.Fatal(err)
	}
	done, saved := make(chan store.SaveResult, 1), make(chan struct{})
	go func() {
		defer close(saved)
		res, err := f.db.SaveBatch(ctx, at)
		if err != nil {
			t.Errorf("SaveBatch: %v", err)
		}
		done <- res
	}()
	f.waitBlockedBy(holder.Conn().PgConn().PID(), saved)
	locks := f.n(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND pid IN (SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))`, holder.Conn().PgConn().PID())
	if locks == 0 || locks >= store.LockBuckets {
		t.Errorf("saver of 3,000 addresses holds %d advisory locks while waiting for the last, want 1..%d", locks, store.LockBuckets-1)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, store.LockKeyMax); err != nil {
		t.Fatal(err)
	}
	r = <-done
	if r.Suppressions != 3000 {
		t.Errorf("SaveBatch(3 x 1,000 recipients) = %+v, want 3000 suppressions", r)
	}
	if got := f.counts()["list_members_changed"]; got != 3000 {
		t.Errorf("list members changed = %d, want 3000", got)
	}
}
