package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SentMessage is one message the sending platform sent: the evidence that
// a bounce quoting its Message-ID answers mail of ours (BOUNCER_TRUST=sent).
type SentMessage struct {
	MessageID  string // the Message-ID, with or without angle brackets
	Recipient  string // the envelope recipient
	ListID     string
	CampaignID string
	SentAt     time.Time
}

// Trust is what the worker's trust policy made of one failed recipient:
// whether the bounce is proven to answer mail we sent, and by what (or
// why not). An unverified recipient is recorded and suppresses nothing.
type Trust struct {
	Verified bool
	// By names the proof ("verp:k1", "sent", "trust:any") or its lack
	// ("unverified:no-token", "unverified:bad-tag", ...).
	By string
}

// CleanMessageID is a Message-ID as sent_messages and classify keep it:
// trimmed, without angle brackets.
func CleanMessageID(id string) string { return strings.Trim(id, "<> \t\r\n") }

// Check validates m and returns it as sent_messages stores it: the
// Message-ID without brackets, the recipient normalised (NormalizeAddress).
func (m SentMessage) Check() (SentMessage, error) {
	m.MessageID = CleanMessageID(m.MessageID)
	if m.MessageID == "" || len(m.MessageID) > maxShort || strings.ContainsAny(m.MessageID, " \t\r\n") {
		return m, fmt.Errorf("%w: message_id %q: want a Message-ID such as <id@host> (no spaces, at most %d bytes)", ErrInvalid, m.MessageID, maxShort)
	}
	addr, domain := NormalizeAddress(m.Recipient)
	if domain == "" || len(addr) > maxShort {
		return m, fmt.Errorf("%w: recipient %q: want an email address (local@domain)", ErrInvalid, m.Recipient)
	}
	m.Recipient = addr
	if len(m.ListID) > maxShort || len(m.CampaignID) > maxShort {
		return m, fmt.Errorf("%w: list_id or campaign_id longer than %d bytes", ErrInvalid, maxShort)
	}
	if m.SentAt.IsZero() {
		return m, fmt.Errorf("%w: sent_at missing: want an RFC 3339 time such as 2026-12-04T09:00:00Z", ErrInvalid)
	}
	m.SentAt = m.SentAt.UTC().Truncate(time.Microsecond)
	return m, nil
}

// sentCopyColumns are the columns of sent_messages, in COPY order: the
// order `bouncer sent import` documents for platforms that COPY directly.
var sentCopyColumns = []string{"message_id", "recipient", "list_id", "campaign_id", "sent_at"}

// createSentImportSQL makes the staging table of one import. COPY cannot
// skip rows that are there already, so the rows go into it first and
// insertSentSQL moves the new ones: importing a file again adds nothing.
const createSentImportSQL = `CREATE TEMP TABLE sent_import (LIKE sent_messages) ON COMMIT DROP`

const insertSentSQL = `
INSERT INTO sent_messages (message_id, recipient, list_id, campaign_id, sent_at)
SELECT message_id, recipient, list_id, campaign_id, sent_at FROM sent_import
ON CONFLICT (message_id) DO NOTHING`

// ImportSent adds sent messages to sent_messages in one transaction and
// returns how many were new: a Message-ID already there (or twice in msgs)
// keeps its first row, so importing the same file twice changes nothing.
// Every message is checked first (SentMessage.Check); an invalid one
// writes nothing and its error names its index.
func (db *DB) ImportSent(ctx context.Context, msgs []SentMessage) (int64, error) {
	rows := make([][]any, len(msgs))
	for i, m := range msgs {
		c, err := m.Check()
		if err != nil {
			return 0, fmt.Errorf("sent message %d: %w", i+1, err)
		}
		rows[i] = []any{c.MessageID, c.Recipient, c.ListID, c.CampaignID, c.SentAt}
	}
	if len(rows) == 0 {
		return 0, nil
	}
	var added int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, createSentImportSQL); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sent_import"}, sentCopyColumns, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, insertSentSQL)
		added = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: import %d sent messages: %w", len(msgs), mapErr(err))
	}
	return added, nil
}

const sentByIDSQL = `
SELECT message_id, recipient, list_id, campaign_id, sent_at
FROM sent_messages WHERE message_id = ANY($1)`

// SentMessages returns the sent messages with these Message-IDs (brackets
// or not), by Message-ID without brackets: one query for a whole batch of
// bounces. Ids not found are absent.
func (db *DB) SentMessages(ctx context.Context, ids []string) (map[string]SentMessage, error) {
	out := map[string]SentMessage{}
	var clean []string
	for _, id := range ids {
		if id = CleanMessageID(id); id != "" {
			clean = append(clean, id)
		}
	}
	if len(clean) == 0 {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, sentByIDSQL, clean)
	if err != nil {
		return nil, fmt.Errorf("store: look up %d sent messages: %w", len(clean), mapErr(err))
	}
	for rows.Next() {
		var m SentMessage
		if err := rows.Scan(&m.MessageID, &m.Recipient, &m.ListID, &m.CampaignID, &m.SentAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: look up sent messages: %w", mapErr(err))
		}
		out[m.MessageID] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: look up sent messages: %w", mapErr(err))
	}
	return out, nil
}

// HasSentMessages reports whether sent_messages has any row: with
// BOUNCER_TRUST=auto and no VERP keys, the worker then asks for that proof.
func (db *DB) HasSentMessages(ctx context.Context) (bool, error) {
	var ok bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM sent_messages)`).Scan(&ok); err != nil {
		return false, fmt.Errorf("store: any sent messages: %w", mapErr(err))
	}
	return ok, nil
}

// trustOf returns the trust verdict on Report.Recipients[i], or nil.
func (m *Message) trustOf(i int) *Trust {
	if i < len(m.Trust) {
		return &m.Trust[i]
	}
	return nil
}

// verified is the bounce row's verified: NULL when no policy was applied.
func (p *pendingBounce) verified() *bool {
	if p.trust == nil {
		return nil
	}
	v := p.trust.Verified
	return &v
}

func (p *pendingBounce) verifiedBy() string {
	if p.trust == nil {
		return ""
	}
	return cleanText(p.trust.By, maxShort)
}

// untrusted reports whether the trust policy found the bounce not ours:
// then it asks for no suppression (hard, soft or complaint), whatever the
// classifier said.
func (p *pendingBounce) untrusted() bool { return p.trust != nil && !p.trust.Verified }
