package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"
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
// changes meaning or goes away (new fields do not change it).
const PayloadSchema = 1

// Event is one event of the outbox: a message to publish on NATS JetStream.
type Event struct {
	// ID names the event for MarkPublished. It encodes the outbox row and
	// the event's place in it (row<<20 | index); only order and equality
	// mean anything.
	ID        int64
	Subject   string
	MsgID     string // the Nats-Msg-Id: stable, derived from the natural key
	Payload   []byte // JSON, see Payload
	CreatedAt time.Time
}

// eventIndexBits is how many low bits of Event.ID number the event in its
// outbox row; an outbox row holds fewer than 1<<eventIndexBits events.
const eventIndexBits = 20

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
//	{"schema":1,"event_id":"b-6f1c…","type":"bounce","time":"2025-05-01T10:00:00Z",
//	 "recipient":"jane@example.com","domain":"example.com","status":"5.1.1",
//	 "smtp_code":550,"category":"mailbox_unknown","severity":"hard","suppress":true,
//	 "list_id":"news.example.org","campaign_id":"c42","original_message_id":"<m1@example.org>",
//	 "diagnostic":"550 5.1.1 user unknown","mailbox":"bounces@imap.example.org:993/INBOX",
//	 "kind":"dsn","action":"failed","rule":"status-5.1.1"}
type Payload struct {
	Schema            int       `json:"schema"`
	EventID           string    `json:"event_id"`
	Type              string    `json:"type"` // bounce, suppression.added, suppression.removed
	Time              time.Time `json:"time"`
	Recipient         string    `json:"recipient"` // normalised (NormalizeAddress)
	Domain            string    `json:"domain"`
	Status            string    `json:"status"`    // enhanced status, e.g. 5.1.1
	SMTPCode          int       `json:"smtp_code"` // 0 if none
	Category          string    `json:"category"`
	Severity          string    `json:"severity"`
	Suppress          bool      `json:"suppress"` // the classifier's decision for this recipient
	ListID            string    `json:"list_id"`
	CampaignID        string    `json:"campaign_id"`
	OriginalMessageID string    `json:"original_message_id"`
	Diagnostic        string    `json:"diagnostic"`
	Mailbox           string    `json:"mailbox"`

	// Bounce events only.
	Kind   string `json:"kind,omitempty"`
	Action string `json:"action,omitempty"`
	Rule   string `json:"rule,omitempty"`

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

// outboxRows accumulates the events of one transaction, one line each.
type outboxRows struct {
	n                          int
	subjects, msgIDs, payloads []byte
	z                          []byte // payloads compressed (seal); nil until sealed
}

// bouncePayloadSize is about the size of an event's JSON.
const bouncePayloadSize = 600

// reserve makes room for n more events of about size bytes of JSON each.
func (o *outboxRows) reserve(n, size int) {
	if o.subjects == nil {
		o.subjects, o.msgIDs, o.payloads = getBuf(0), getBuf(0), getBuf(0)
	}
	o.subjects = slices.Grow(o.subjects, n*32)
	o.msgIDs = slices.Grow(o.msgIDs, n*40)
	o.payloads = slices.Grow(o.payloads, n*size)
}

func (o *outboxRows) add(subject string, p *Payload) error {
	p.Schema = PayloadSchema
	if o.subjects == nil {
		o.reserve(1, bouncePayloadSize)
	}
	if o.n > 0 {
		o.subjects = append(o.subjects, '\n')
		o.msgIDs = append(o.msgIDs, '\n')
		o.payloads = append(o.payloads, '\n')
	}
	// One line per event: JSON text never holds a raw newline.
	var err error
	if o.payloads, err = appendPayload(o.payloads, p); err != nil {
		return fmt.Errorf("encode event %s: %w", p.EventID, err)
	}
	o.subjects = append(o.subjects, subject...)
	o.msgIDs = append(o.msgIDs, p.EventID...)
	o.n++
	o.z = nil
	return nil
}

// outboxMark is how far an outboxRows was filled.
type outboxMark struct{ n, subjects, msgIDs, payloads int }

func (o *outboxRows) mark() outboxMark {
	return outboxMark{o.n, len(o.subjects), len(o.msgIDs), len(o.payloads)}
}

// reset drops the events added after m.
func (o *outboxRows) reset(m outboxMark) {
	o.n, o.subjects, o.msgIDs, o.payloads = m.n, o.subjects[:m.subjects], o.msgIDs[:m.msgIDs], o.payloads[:m.payloads]
	o.z = nil
}

// seal compresses the payloads for the outbox row; adding an event
// afterwards unseals. A saver seals while the server is busy with its
// rows, so that the compression costs no time.
func (o *outboxRows) seal() {
	if o.n > 0 && o.z == nil {
		o.z = zstdEncoder().EncodeAll(o.payloads, getBuf(len(o.payloads)/8))
	}
}

// release gives o's buffers back to bufPool once its events are written.
func (o *outboxRows) release() {
	if o.subjects != nil {
		putBuf(o.subjects)
		putBuf(o.msgIDs)
		putBuf(o.payloads)
	}
	if o.z != nil {
		putBuf(o.z)
	}
	*o = outboxRows{}
}

// insertOutboxSQL writes the events of a transaction as one row of
// outbox_batches: subjects and msg_ids one line per event, the payloads'
// lines compressed with zstd (migrations 00004 to 00006 say why; the view
// outbox shows one row per event). Their msg_ids are new by construction:
// a caller writes an event only for a change its own transaction made.
const insertOutboxSQL = `
INSERT INTO outbox_batches (created_at, subjects, msg_ids, payloads, payloads_zstd, published, pending)
VALUES ($1, $2, $3, '', $4, array_fill(false, ARRAY[$5::int]), $5)`

// maxOutboxRow is the most events one outbox row holds (Event.ID keeps
// eventIndexBits for the index).
const maxOutboxRow = 1<<eventIndexBits - 1

// queueOutbox queues the insert of o's events into b and returns how many
// events that is.
func queueOutbox(b *pgx.Batch, o *outboxRows, now time.Time) int {
	if o.n == 0 {
		return 0
	}
	o.seal()
	b.Queue(insertOutboxSQL, now, o.subjects, o.msgIDs, o.z, o.n)
	return o.n
}

// The payloads of an outbox row are zstd-compressed by the store, so
// that a batch's events cost the server a tenth of the bytes (1,000 events
// are about 0.5 MB of JSON). Encoder and decoder are safe for concurrent
// EncodeAll and DecodeAll calls.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		// A 1 MB window covers a batch's payloads and keeps the encoder
		// at 1.5 MB of heap (the default window: 4.6 MB).
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(1<<20))
		if err != nil {
			panic(err) // only for invalid options
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(maxOutboxPayloads))
		if err != nil {
			panic(err)
		}
		return d
	})
)

// maxOutboxPayloads bounds the decompressed payloads of one outbox row.
const maxOutboxPayloads = 1 << 30

// outboxPayloads returns the payload lines of an outbox row: payloads
// (rows written before migration 6) or z decompressed.
func outboxPayloads(payloads []byte, z []byte) ([]byte, error) {
	if z == nil {
		return payloads, nil
	}
	b, err := zstdDecoder().DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("decompress event payloads: %w", err)
	}
	return b, nil
}

// pendingRowsSQL reads outbox rows with events not yet published, from
// after id $1, oldest first.
const pendingRowsSQL = `
SELECT id, created_at, subjects, msg_ids, payloads, payloads_zstd, published
FROM outbox_batches WHERE pending > 0 AND id > $1 ORDER BY id LIMIT $2`

// pendingPage is how many outbox rows PendingEvents reads per query: most
// hold hundreds of events.
const pendingPage = 8

// PendingEvents returns up to limit events not yet marked published, oldest
// first. Two publishers may get the same events; JetStream de-duplication
// by MsgID makes that harmless.
func (db *DB) PendingEvents(ctx context.Context, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []Event
	after := int64(0)
	for len(out) < limit {
		var n int
		var err error
		out, after, n, err = db.pendingPage(ctx, out, after, limit)
		if err != nil {
			return nil, err
		}
		if n < pendingPage {
			break
		}
	}
	return out, nil
}

// pendingPage appends to out the unpublished events of up to pendingPage
// outbox rows after id after, stopping at limit events; it returns the
// last row's id and how many rows it read.
func (db *DB) pendingPage(ctx context.Context, out []Event, after int64, limit int) ([]Event, int64, int, error) {
	rows, err := db.pool.Query(ctx, pendingRowsSQL, after, pendingPage)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("store: pending events: %w", mapErr(err))
	}
	defer rows.Close()
	n := 0
	for len(out) < limit && rows.Next() {
		var r struct {
			id               int64
			at               time.Time
			subjects, msgIDs string
			payloads, z      []byte
			published        []bool
		}
		if err := rows.Scan(&r.id, &r.at, &r.subjects, &r.msgIDs, &r.payloads, &r.z, &r.published); err != nil {
			return nil, 0, 0, fmt.Errorf("store: pending events: %w", err)
		}
		n++
		after = r.id
		payloads, err := outboxPayloads(r.payloads, r.z)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("store: pending events of outbox row %d: %w", r.id, err)
		}
		// Each event's payload is its line of the row's payloads.
		subjects, msgIDs := strings.Split(r.subjects, "\n"), strings.Split(r.msgIDs, "\n")
		lines := bytes.Split(payloads, []byte{'\n'})
		if len(subjects) != len(r.published) || len(msgIDs) != len(r.published) || len(lines) != len(r.published) {
			return nil, 0, 0, fmt.Errorf("store: outbox row %d is damaged: %d flags, %d subjects, %d msg ids, %d payloads",
				r.id, len(r.published), len(subjects), len(msgIDs), len(lines))
		}
		for i, done := range r.published {
			if done {
				continue
			}
			out = append(out, Event{
				ID: r.id<<eventIndexBits | int64(i+1), Subject: subjects[i], MsgID: msgIDs[i],
				Payload: slices.Clip(lines[i]), CreatedAt: r.at,
			})
			if len(out) == limit {
				break
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("store: pending events: %w", mapErr(err))
	}
	return out, after, n, nil
}

// markPublishedSQL sets the published flags of events, locking their rows
// in id order first so that concurrent markers neither lose each other's
// flags nor deadlock.
const markPublishedSQL = `
WITH m AS (
    SELECT x >> 20 AS row_id, array_agg((x & 1048575)::int) AS idx
    FROM unnest($1::bigint[]) AS x
    GROUP BY 1
), l AS (
    SELECT o.id, o.published, m.idx
    FROM outbox_batches o JOIN m ON o.id = m.row_id
    WHERE o.pending > 0
    ORDER BY o.id
    FOR UPDATE OF o
), n AS (
    SELECT l.id, array_agg(e.p OR e.i = ANY(l.idx) ORDER BY e.i) AS published
    FROM l CROSS JOIN LATERAL unnest(l.published) WITH ORDINALITY AS e(p, i)
    GROUP BY l.id
)
UPDATE outbox_batches AS o SET
    published = n.published,
    marked_at = $2,
    pending = cardinality(array_positions(n.published, false)),
    published_at = CASE WHEN false = ANY(n.published) THEN NULL ELSE $2::timestamptz END
FROM n
WHERE o.id = n.id`

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
SELECT coalesce(sum(pending), 0), min(created_at)
FROM outbox_batches
WHERE pending > 0`

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
DELETE FROM outbox_batches
WHERE pending = 0 AND published_at < $1`

// PruneOutbox deletes the outbox rows whose events were all published
// before the given time, and returns how many rows. The rows the events
// describe stay; only the delivery log goes.
func (db *DB) PruneOutbox(ctx context.Context, before time.Time) (int64, error) {
	tag, err := db.pool.Exec(ctx, pruneOutboxSQL, before)
	if err != nil {
		return 0, fmt.Errorf("store: prune outbox: %w", mapErr(err))
	}
	return tag.RowsAffected(), nil
}
