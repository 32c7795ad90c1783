package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// WebhookEvent is one event an email service provider posted to a webhook
// (package worker/webhook), verified and classified: saved like a
// mailbox message, with the provider and its event id as the idempotency
// key and the raw payload as the evidence.
type WebhookEvent struct {
	Provider string // "ses", "sendgrid", "postmark", "mailgun"
	EventID  string // the provider's id of the event (SNS MessageId, sg_event_id, ...)
	Type     string // the provider's label of the event
	// VerifiedBy says how the request was verified ("sendgrid:ecdsa").
	VerifiedBy string
	Payload    []byte // the event as received
	// Message is what the classifier made of the event. SaveWebhooks
	// fills its Mailbox, SHA256, UIDValidity, UID, Size and Trust.
	Message Message
}

// WebhookMailbox is the source_messages.mailbox of provider's events.
func WebhookMailbox(provider string) string { return "webhook:" + provider }

// WebhookKey is the sha256 a provider's event is saved under: the same
// provider and event id are the same event, whatever the payload says.
func WebhookKey(provider, eventID string) [32]byte {
	return sha256.Sum256([]byte("webhook\x00" + provider + "\x00" + eventID))
}

// uidBlockSize is how many numbers of webhook_uid_seq a DB reserves at a
// time: a save of a few events then costs no round trip for them.
const uidBlockSize = 1024

const webhookUIDsSQL = `SELECT nextval('webhook_uid_seq') FROM generate_series(1, $1)`

// uidBlock is a DB's reserved numbers of webhook_uid_seq not used yet.
type uidBlock struct {
	mu   sync.Mutex
	free []int64
}

// SaveWebhooks saves evs in one transaction, as SaveBatch does messages
// (rows, suppressions, outbox events), and each new event's payload in
// webhook_events. An event saved before (same provider and event id) writes
// nothing. stored[i] reports whether evs[i] was new. A recipient of an
// event is trusted (verified, evidence VerifiedBy): the provider's
// signature proves the event is about mail we sent.
func (db *DB) SaveWebhooks(ctx context.Context, evs []WebhookEvent) (res SaveResult, stored []bool, err error) {
	if len(evs) == 0 {
		return SaveResult{}, nil, nil
	}
	for i := range evs {
		e := &evs[i]
		if e.Provider == "" || e.EventID == "" || e.VerifiedBy == "" {
			return SaveResult{}, nil, fmt.Errorf("%w: webhook event %d: provider, event id and verified_by are required", ErrInvalid, i)
		}
		if len(e.EventID) > maxShort || !utf8.ValidString(e.EventID) || strings.ContainsRune(e.EventID, 0) {
			return SaveResult{}, nil, fmt.Errorf("%w: webhook event %d: event id is not UTF-8 text of at most %d bytes", ErrInvalid, i, maxShort)
		}
	}
	uids, err := db.webhookUIDs(ctx, len(evs))
	if err != nil {
		return SaveResult{}, nil, err
	}
	msgs := make([]Message, len(evs))
	for i := range evs {
		e := &evs[i]
		m := e.Message
		m.Mailbox, m.SHA256, m.Size = WebhookMailbox(e.Provider), WebhookKey(e.Provider, e.EventID), len(e.Payload)
		m.UIDValidity, m.UID = uint32(uids[i]>>32), uint32(uids[i])
		if m.Report != nil {
			m.Trust = make([]Trust, len(m.Report.Recipients))
			for k := range m.Trust {
				m.Trust[k] = Trust{Verified: true, By: e.VerifiedBy}
			}
		}
		msgs[i] = m
	}
	batch, dups, err := uniqueMessages(msgs)
	if err != nil {
		return SaveResult{}, nil, err
	}
	s := db.newBatchSave(batch, db.clock())
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		if res, err = s.run(ctx, tx); err != nil {
			return err
		}
		stored, err = s.writeWebhookEvents(ctx, tx, evs, msgs)
		return err
	})
	if err != nil {
		return SaveResult{}, nil, fmt.Errorf("store: save %d webhook events: %w", len(evs), mapErr(err))
	}
	res.Duplicates += dups
	return res, stored, nil
}

// webhookUIDs takes n numbers of webhook_uid_seq, from those reserved
// before or a new block. Numbers a crash leaves unused are skipped: only
// their uniqueness matters.
func (db *DB) webhookUIDs(ctx context.Context, n int) ([]int64, error) {
	b := &db.uids
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.free) < n {
		rows, _ := db.pool.Query(ctx, webhookUIDsSQL, max(n-len(b.free), uidBlockSize))
		more, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return nil, fmt.Errorf("store: number %d webhook events: %w", n, mapErr(err))
		}
		b.free = append(b.free, more...)
	}
	out := b.free[:n:n]
	b.free = b.free[n:]
	return out, nil
}

// writeWebhookEvents inserts the payloads of the events whose message the
// transaction inserted (each once, though evs may repeat one).
func (s *batchSave) writeWebhookEvents(ctx context.Context, tx pgx.Tx, evs []WebhookEvent, msgs []Message) ([]bool, error) {
	stored := make([]bool, len(evs))
	var provider, eventID, typ, verifiedBy []string
	var sourceID []int64
	var payload [][]byte
	for i := range evs {
		id, ok := s.sourceIDs[msgs[i].SHA256]
		if !ok {
			continue
		}
		delete(s.sourceIDs, msgs[i].SHA256) // a repeat in evs is a duplicate
		e := &evs[i]
		stored[i] = true
		provider, eventID = append(provider, cleanText(e.Provider, maxShort)), append(eventID, e.EventID)
		typ, verifiedBy = append(typ, cleanText(e.Type, maxShort)), append(verifiedBy, cleanText(e.VerifiedBy, maxShort))
		sourceID, payload = append(sourceID, id), append(payload, e.Payload)
	}
	if len(sourceID) == 0 {
		return stored, nil
	}
	if _, err := tx.Exec(ctx, insertWebhookEventsSQL, provider, eventID, typ, sourceID, verifiedBy, payload, s.now); err != nil {
		return nil, fmt.Errorf("insert %d webhook events: %w", len(sourceID), err)
	}
	return stored, nil
}

// insertWebhookEventsSQL inserts webhook_events rows from arrays, in one
// round trip.
const insertWebhookEventsSQL = `
INSERT INTO webhook_events (provider, event_id, event_type, source_id, verified_by, payload, received_at)
SELECT u.*, $7::timestamptz
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bytea[]) AS u`
