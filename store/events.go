package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Event subjects (DESIGN.md, stream BOUNCES on bounce.> and suppression.>).
const (
	// SubjectBouncePrefix + "<severity>.<category>" is the subject of the
	// event of one stored failed recipient, e.g. bounce.hard.mailbox_unknown.
	SubjectBouncePrefix       = "bounce."
	SubjectSuppressionAdded   = "suppression.added"
	SubjectSuppressionRemoved = "suppression.removed"
)

// PayloadSchema is the version of Payload; it changes only when a field
// changes meaning or goes away (new fields do not change it). Version 2:
// a bounce's suppress is false when the bounce was not proven to answer
// mail we sent (verified false), whatever the classifier said.
const PayloadSchema = 2

// Event is one event of the outbox: a message to publish on NATS JetStream.
type Event struct {
	// ID is the event's row in the outbox, for MarkPublished: events are
	// numbered in the order they were written.
	ID        int64
	Subject   string
	MsgID     string // the Nats-Msg-Id: stable, derived from the natural key
	Payload   []byte // JSON, see Payload
	CreatedAt time.Time
}

// Payload is the JSON body of every event.
//
// A bounce event (subject bounce.<severity>.<category>) describes one stored
// failed recipient; its event_id is "b-" and 32 hex digits of
// sha256(message sha256 || recipient), so the same recipient of the same
// message always gets the same id, whichever mailbox it was read from.
// A suppression event (suppression.added, suppression.removed) carries the
// recipient fields of the evidence bounce (empty for a manual suppression)
// and the suppression itself; its event_id is "s-<suppression id>-added-<reason>"
// (a soft suppression upgraded to hard is added again, with the new reason)
// or "s-<suppression id>-removed". event_id is also the Nats-Msg-Id, so
// JetStream drops a republished event as a duplicate.
//
//	{"schema":2,"event_id":"b-6f1c…","type":"bounce","time":"2025-05-01T10:00:00Z",
//	 "recipient":"jane@example.com","domain":"example.com","status":"5.1.1",
//	 "smtp_code":550,"category":"mailbox_unknown","severity":"hard","suppress":true,
//	 "list_id":"news.example.org","campaign_id":"c42","original_message_id":"<m1@example.org>",
//	 "diagnostic":"550 5.1.1 user unknown","mailbox":"bounces@imap.example.org:993/INBOX",
//	 "kind":"dsn","action":"failed","rule":"status-5.1.1","verified":true,"verified_by":"verp:k1"}
type Payload struct {
	Schema     int       `json:"schema"`
	EventID    string    `json:"event_id"`
	Type       string    `json:"type"` // bounce, suppression.added, suppression.removed
	Time       time.Time `json:"time"`
	Recipient  string    `json:"recipient"` // normalised (NormalizeAddress)
	Domain     string    `json:"domain"`
	Status     string    `json:"status"`    // enhanced status, e.g. 5.1.1
	SMTPCode   int       `json:"smtp_code"` // 0 if none
	Category   string    `json:"category"`
	Severity   string    `json:"severity"`
	Suppress   bool      `json:"suppress"` // the classifier's decision for this recipient
	ListID     string    `json:"list_id"`
	CampaignID string    `json:"campaign_id"`
	// SubscriberID is the sending platform's id of the recipient, from
	// the original's subscriber header (see classify.Options), when it
	// had one.
	SubscriberID      string `json:"subscriber_id,omitempty"`
	OriginalMessageID string `json:"original_message_id"`
	Diagnostic        string `json:"diagnostic"`
	Mailbox           string `json:"mailbox"`

	// Bounce events only.
	Kind   string `json:"kind,omitempty"`
	Action string `json:"action,omitempty"`
	Rule   string `json:"rule,omitempty"`
	// Verified says whether the bounce was proven to answer mail we sent
	// (absent when no trust policy was applied), VerifiedBy by what or why
	// not; an unverified bounce suppresses nothing.
	Verified   *bool  `json:"verified,omitempty"`
	VerifiedBy string `json:"verified_by,omitempty"`

	// Suppression events only.
	Suppression *PayloadSuppression `json:"suppression,omitempty"`
}

// PayloadSuppression describes the suppression of a suppression event.
type PayloadSuppression struct {
	ID         int64     `json:"id"`
	Scope      Scope     `json:"scope"`   // global or list
	ListID     string    `json:"list_id"` // the list of a list-scope suppression
	Reason     Reason    `json:"reason"`
	BounceID   int64     `json:"bounce_id,omitempty"`
	CreatedBy  string    `json:"created_by"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	RemovedBy  string    `json:"removed_by,omitempty"`
	RemovedWhy string    `json:"removed_why,omitempty"`
}

// bounceMsgID is the stable event id of recipient addr of the message whose
// content hashes to sum.
func bounceMsgID(sum [32]byte, addr string) string {
	h := sha256.New()
	h.Write(sum[:])
	h.Write([]byte{0})
	h.Write([]byte(addr))
	return "b-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func suppressionAddedMsgID(id int64, r Reason) string {
	return "s-" + strconv.FormatInt(id, 10) + "-added-" + string(r)
}

func suppressionRemovedMsgID(id int64) string {
	return "s-" + strconv.FormatInt(id, 10) + "-removed"
}

// outboxEvents are the events one transaction writes, in order.
type outboxEvents struct {
	rows [][]any // outboxColumns
}

// outboxColumns are the columns of an event's outbox row that the store
// writes; id comes from the table's identity, in row order.
var outboxColumns = []string{"subject", "msg_id", "payload", "created_at"}

// add encodes p (with its schema version) and appends the event.
func (o *outboxEvents) add(subject string, p *Payload, at time.Time) error {
	p.Schema = PayloadSchema
	payload, err := encodePayload(p)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", p.EventID, err)
	}
	o.rows = append(o.rows, []any{subject, p.EventID, payload, at})
	return nil
}

// encodePayload is p's JSON, without HTML escaping: diagnostics and
// Message-IDs are full of < and >, which consumers and people reading
// the stream should see as such.
func encodePayload(p *Payload) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// write copies the events into the outbox in tx and returns how many.
// Their msg_ids are new by construction: a caller writes an event only
// for a change its own transaction made (outbox_msg_id_key checks it).
func (o *outboxEvents) write(ctx context.Context, tx pgx.Tx) (int, error) {
	if len(o.rows) == 0 {
		return 0, nil
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, outboxColumns, pgx.CopyFromRows(o.rows))
	if err != nil {
		return 0, fmt.Errorf("write %d events: %w", len(o.rows), err)
	}
	return int(n), nil
}

// pendingEventsSQL reads the oldest events not yet published
// (outbox_pending_idx).
const pendingEventsSQL = `
SELECT id, subject, msg_id, payload, created_at
FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1`

// PendingEvents returns up to limit events not yet marked published, oldest
// first. Two publishers may get the same events; JetStream de-duplication
// by MsgID makes that harmless.
func (db *DB) PendingEvents(ctx context.Context, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.pool.Query(ctx, pendingEventsSQL, limit)
	if err != nil {
		return nil, fmt.Errorf("store: pending events: %w", mapErr(err))
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		err := row.Scan(&e.ID, &e.Subject, &e.MsgID, &e.Payload, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: pending events: %w", mapErr(err))
	}
	return evs, nil
}

const markPublishedSQL = `
UPDATE outbox SET published_at = $2
WHERE id = ANY($1) AND published_at IS NULL`

// MarkPublished records that the events with these ids were acknowledged by
// JetStream. Marking one twice is harmless.
func (db *DB) MarkPublished(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := db.pool.Exec(ctx, markPublishedSQL, ids, db.clock()); err != nil {
		return fmt.Errorf("store: mark %d events published: %w", len(ids), mapErr(err))
	}
	return nil
}

const outboxLagSQL = `
SELECT count(*), min(created_at)
FROM outbox
WHERE published_at IS NULL`

// OutboxLag returns how many events wait to be published and when the
// oldest of them was written (zero when none wait).
func (db *DB) OutboxLag(ctx context.Context) (pending int, oldest time.Time, err error) {
	var t *time.Time
	if err := db.pool.QueryRow(ctx, outboxLagSQL).Scan(&pending, &t); err != nil {
		return 0, time.Time{}, fmt.Errorf("store: outbox lag: %w", mapErr(err))
	}
	if t != nil {
		oldest = *t
	}
	return pending, oldest, nil
}

const pruneOutboxSQL = `
DELETE FROM outbox
WHERE published_at < $1`

// PruneOutbox deletes the events published before the given time, and
// returns how many. The rows the events describe stay; only the delivery
// log goes.
func (db *DB) PruneOutbox(ctx context.Context, before time.Time) (int64, error) {
	tag, err := db.pool.Exec(ctx, pruneOutboxSQL, before)
	if err != nil {
		return 0, fmt.Errorf("store: prune outbox: %w", mapErr(err))
	}
	return tag.RowsAffected(), nil
}
