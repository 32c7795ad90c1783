package chaos

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bouncer-mail/bouncer/worker"
)

// folders are the mailbox's folders a message can end in: the worker
// moves bounces to Processed, what it cannot read to Quarantine, and
// leaves a person's reply unread in INBOX.
var folders = []string{"INBOX", "Processed", "Quarantine"}

// mailbox is how many copies of each message (by SHA-256) every folder holds.
type mailbox map[string]map[[32]byte]int

// readMailbox fetches every message of user's folders and hashes it.
func readMailbox(addr, user, password string) (mailbox, error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, fmt.Errorf("imap %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return nil, fmt.Errorf("imap login %s: %w", user, err)
	}
	m := mailbox{}
	for _, f := range folders {
		m[f] = map[[32]byte]int{}
		sel, err := c.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			var ie *imap.Error
			if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
				continue
			}
			return nil, fmt.Errorf("imap examine %s: %w", f, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		sec := &imap.FetchItemBodySection{Peek: true}
		bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
		if err != nil {
			return nil, fmt.Errorf("imap fetch %s: %w", f, err)
		}
		for _, b := range bufs {
			m[f][sha256.Sum256(worker.ToCRLF(b.FindBodySection(sec)))]++
		}
	}
	return m, nil
}

// rowKey is a bounce row's natural key: the message and the recipient.
type rowKey struct {
	sum     [32]byte
	address string
}

// dbState is what a run left in its database.
type dbState struct {
	messages     int                 // source_messages rows
	rows         map[rowKey][]string // bounces: category/severity/suppress of each row
	outbox       map[string]int      // msg_id -> rows (the key makes it 1)
	bounceEvents map[string]bool     // msg_ids of bounce.* events (stable across databases)
	pending      int                 // events not yet published
	suppressions map[string]int      // open suppressions by address|list|reason
	subjects     map[string]int      // events by subject
	checkpoint   int64               // the UIDVALIDITY of the workers' checkpoint
}

func readDB(ctx context.Context, url string) (*dbState, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	s := &dbState{rows: map[rowKey][]string{}, outbox: map[string]int{}, bounceEvents: map[string]bool{},
		suppressions: map[string]int{}, subjects: map[string]int{}}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM source_messages").Scan(&s.messages); err != nil {
		return nil, err
	}
	rows, _ := c.Query(ctx, `SELECT sm.sha256, b.address, b.category, b.severity, b.suppress
		FROM bounces b JOIN source_messages sm ON sm.id = b.source_id`)
	var sum []byte
	var addr, cat, sev string
	var sup bool
	if _, err := pgx.ForEachRow(rows, []any{&sum, &addr, &cat, &sev, &sup}, func() error {
		k := rowKey{address: addr}
		copy(k.sum[:], sum)
		s.rows[k] = append(s.rows[k], fmt.Sprintf("%s/%s/%v", cat, sev, sup))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read bounces: %w", err)
	}
	var id, subject string
	var pending bool
	rows, _ = c.Query(ctx, "SELECT msg_id, subject, published_at IS NULL FROM outbox")
	if _, err := pgx.ForEachRow(rows, []any{&id, &subject, &pending}, func() error {
		s.outbox[id]++
		s.subjects[subject]++
		if len(subject) > 7 && subject[:7] == "bounce." {
			s.bounceEvents[id] = true
		}
		if pending {
			s.pending++
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	c.QueryRow(ctx, "SELECT max(uid_validity) FROM mailbox_checkpoints").Scan(&s.checkpoint)
	var list, reason string
	rows, _ = c.Query(ctx, "SELECT address, list_id, reason FROM suppressions WHERE removed_at IS NULL")
	if _, err := pgx.ForEachRow(rows, []any{&addr, &list, &reason}, func() error {
		s.suppressions[addr+"|"+list+"|"+reason]++
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read suppressions: %w", err)
	}
	return s, nil
}

// progress returns how many messages url's database holds and how many
// of its events wait to be published.
func progress(ctx context.Context, url string) (messages, pending int, err error) {
	err = queryRow(ctx, url, 5*time.Second, `SELECT (SELECT count(*) FROM source_messages),
		(SELECT count(*) FROM outbox WHERE published_at IS NULL)`, &messages, &pending)
	return messages, pending, err
}

// queryRow scans the one row of query into dest, on a connection of its
// own to url (the servers restart under the run: no pool to go stale),
// within timeout.
func queryRow(ctx context.Context, url string, timeout time.Duration, query string, dest ...any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.QueryRow(ctx, query).Scan(dest...)
}

// leaseHolder returns the owner of the mailbox's lease (not the outbox's).
func leaseHolder(ctx context.Context, url string) string {
	var owner string
	queryRow(ctx, url, 3*time.Second, "SELECT owner FROM mailbox_leases WHERE mailbox <> 'outbox' AND expires_at > now() ORDER BY acquired_at DESC LIMIT 1", &owner)
	return owner
}

// streamIDs returns how many times each Nats-Msg-Id is in the BOUNCES stream.
func streamIDs(ctx context.Context, url string) (map[string]int, int, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, 0, fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, worker.StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return map[string]int{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("stream %s: %w", worker.StreamName, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	n := int(info.State.Msgs)
	ids := map[string]int{}
	if n == 0 {
		return ids, 0, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, 0, err
	}
	for got := 0; got < n; {
		batch, err := cons.Fetch(min(n-got, 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, 0, err
		}
		k := 0
		for m := range batch.Messages() {
			ids[m.Headers().Get(jetstream.MsgIDHeader)]++
			k++
		}
		if k == 0 {
			return nil, 0, fmt.Errorf("stream: read %d of %d messages", got, n)
		}
		got += k
	}
	return ids, n, nil
}

// diff counts what want has that got lacks (missing), what got holds more
// than once where want holds it once (duplicate) and what got has that
// want lacks (extra).
type diff struct{ missing, duplicate, extra int }

func (d diff) bad() bool { return d.missing+d.duplicate+d.extra > 0 }

func (d diff) String() string {
	return fmt.Sprintf("missing %d, duplicate %d, extra %d", d.missing, d.duplicate, d.extra)
}

// compare compares two multisets.
func compare[K comparable](want, got map[K]int) diff {
	var d diff
	for k, w := range want {
		g := got[k]
		switch {
		case g < w:
			d.missing += w - g
		case g > w:
			d.duplicate += g - w
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			d.extra += g
		}
	}
	return d
}

// notBounces returns how many stored messages are not bounces: the
// worker leaves those unread in INBOX.
func notBounces(ctx context.Context, url string) (int, error) {
	var n int
	err := queryRow(ctx, url, 5*time.Second, "SELECT count(*) FROM source_messages WHERE kind = 'not_bounce'", &n)
	return n, err
}

// checkpointUIDValidity returns the UIDVALIDITY of the workers' checkpoint.
func checkpointUIDValidity(ctx context.Context, url string) (int64, error) {
	var v int64
	err := queryRow(ctx, url, 5*time.Second, "SELECT coalesce(max(uid_validity), 0) FROM mailbox_checkpoints", &v)
	return v, err
}
