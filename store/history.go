package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/classify"
)

// BounceRow is one stored failed recipient, with where its message came from.
type BounceRow struct {
	ID                int64
	Address           string // normalised
	AddressRaw        string // as reported
	Domain            string
	OriginalRecipient string
	Kind              classify.Kind
	Action            string
	Command           string // the SMTP command the failure answered, if known
	Status            string
	SMTPCode          int
	Diagnostic        string
	RemoteMTA         string
	LastAttempt       time.Time
	Category          classify.Category
	Severity          classify.Severity
	Suppress          bool
	Rule              string
	OriginalSource    string
	OriginalMessageID string
	ListID            string
	CampaignID        string
	SubscriberID      string
	OriginalAutoReply bool
	OccurredAt        time.Time // arrival of the bounce

	// The source message.
	Mailbox     string
	UIDValidity uint32
	UID         uint32
	MessageID   string // the bounce's own Message-ID
}

// bounceRowCols are the columns scanBounceRow reads, aliases b (bounces)
// and m (source_messages).
const bounceRowCols = `b.id, b.address, b.address_raw, b.domain, b.original_recipient, b.kind, b.action, b.command, b.status,
    b.smtp_code, b.diagnostic, b.remote_mta, b.last_attempt, b.category, b.severity, b.suppress,
    b.rule, b.original_source, b.original_message_id, b.list_id, b.campaign_id,
    b.original_auto_reply, b.occurred_at, b.subscriber_id, m.mailbox, m.uid_validity, m.uid, m.message_id`

func scanBounceRow(rows pgx.CollectableRow) (BounceRow, error) {
	var r BounceRow
	var last *time.Time
	var v, u int64
	if err := rows.Scan(&r.ID, &r.Address, &r.AddressRaw, &r.Domain, &r.OriginalRecipient,
		&r.Kind, &r.Action, &r.Command, &r.Status, &r.SMTPCode, &r.Diagnostic, &r.RemoteMTA, &last,
		&r.Category, &r.Severity, &r.Suppress, &r.Rule, &r.OriginalSource,
		&r.OriginalMessageID, &r.ListID, &r.CampaignID, &r.OriginalAutoReply, &r.OccurredAt, &r.SubscriberID,
		&r.Mailbox, &v, &u, &r.MessageID); err != nil {
		return r, err
	}
	if last != nil {
		r.LastAttempt = *last
	}
	r.UIDValidity, r.UID = uint32(v), uint32(u)
	return r, nil
}

const addressBouncesSQL = `
SELECT ` + bounceRowCols + `
FROM bounces b
JOIN source_messages m ON m.id = b.source_id
WHERE b.address = $1
ORDER BY b.occurred_at DESC, b.id DESC
LIMIT $2`

// addressSuppressionsSQL reads open and removed records apart, each from
// its partial index.
const addressSuppressionsSQL = `
SELECT ` + suppressionCols + `
FROM (
    SELECT * FROM suppressions WHERE address = $1 AND removed_at IS NULL
    UNION ALL
    SELECT * FROM suppressions WHERE address = $1 AND removed_at IS NOT NULL
) AS s
ORDER BY s.created_at DESC, s.id DESC`

// AddressHistory returns what is known of an address, newest first: its
// last limit bounces (default 50) and every suppression record, removed
// ones included. It is what the explain page shows.
func (db *DB) AddressHistory(ctx context.Context, address string, limit int) ([]BounceRow, []Suppression, error) {
	addr, _ := NormalizeAddress(address)
	if limit <= 0 {
		limit = 50
	}
	var bounces []BounceRow
	var sups []Suppression
	b := &pgx.Batch{}
	b.Queue(addressBouncesSQL, addr, limit).Query(func(rows pgx.Rows) error {
		var err error
		bounces, err = pgx.CollectRows(rows, scanBounceRow)
		return err
	})
	b.Queue(addressSuppressionsSQL, addr).Query(func(rows pgx.Rows) error {
		var err error
		sups, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Suppression, error) { return scanSuppression(r) })
		return err
	})
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("store: history of %s: %w", addr, mapErr(err))
	}
	return bounces, sups, nil
}

// StatsBy names a grouping of Stats.
type StatsBy string

// The groupings of Stats.
const (
	ByDay      StatsBy = "day"      // UTC day of arrival, YYYY-MM-DD
	ByDomain   StatsBy = "domain"   // recipient domain
	ByCategory StatsBy = "category" // classify.Category
	ByCampaign StatsBy = "campaign" // original campaign id, with campaign_sends
)

// StatsRow counts the bounces of one group.
type StatsRow struct {
	Key        string
	Bounces    int     // stored failed recipients (rows), delays and complaints included
	Recipients int     // distinct addresses
	Hard       int     // severity hard
	Soft       int     // severity soft
	Complaints int     // category complaint
	Suppress   int     // rows the classifier marked Suppress
	Share      float64 // Bounces over the period's total
	// Sent and Rate are for ByCampaign: messages sent (campaign_sends, 0
	// when unknown) and distinct hard or soft bounced recipients over Sent.
	Sent int64
	Rate float64
}

const statsSelect = `
SELECT %s AS key, count(*), count(DISTINCT address),
    count(*) FILTER (WHERE severity = 'hard'), count(*) FILTER (WHERE severity = 'soft'),
    count(*) FILTER (WHERE category = 'complaint'), count(*) FILTER (WHERE suppress),
    count(DISTINCT address) FILTER (WHERE severity IN ('hard', 'soft'))
FROM bounces
WHERE occurred_at >= $1
GROUP BY 1`

var statsSQL = map[StatsBy]string{
	ByDay:      fmt.Sprintf(statsSelect, `to_char((occurred_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD')`) + ` ORDER BY 1`,
	ByDomain:   fmt.Sprintf(statsSelect, `domain`) + ` ORDER BY 2 DESC, 1`,
	ByCategory: fmt.Sprintf(statsSelect, `category`) + ` ORDER BY 2 DESC, 1`,
	ByCampaign: `
WITH g AS (` + fmt.Sprintf(statsSelect, `campaign_id`) + `)
SELECT g.*, coalesce((SELECT sum(sent) FROM campaign_sends s WHERE s.campaign_id = g.key), 0)::bigint
FROM g
ORDER BY 2 DESC, 1`,
}

// Stats counts the bounces that arrived since the given time, grouped by.
func (db *DB) Stats(ctx context.Context, since time.Time, by StatsBy) ([]StatsRow, error) {
	q, ok := statsSQL[by]
	if !ok {
		return nil, fmt.Errorf("%w: stats by %q (want day, domain, category or campaign)", ErrInvalid, by)
	}
	rows, err := db.pool.Query(ctx, q, since)
	if err != nil {
		return nil, fmt.Errorf("store: stats by %s: %w", by, mapErr(err))
	}
	defer rows.Close()
	var out []StatsRow
	total := 0
	for rows.Next() {
		var r StatsRow
		var bounced int
		dst := []any{&r.Key, &r.Bounces, &r.Recipients, &r.Hard, &r.Soft, &r.Complaints, &r.Suppress, &bounced}
		if by == ByCampaign {
			dst = append(dst, &r.Sent)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("store: stats by %s: %w", by, err)
		}
		if r.Sent > 0 {
			r.Rate = float64(bounced) / float64(r.Sent)
		}
		total += r.Bounces
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: stats by %s: %w", by, mapErr(err))
	}
	for i := range out {
		out[i].Share = float64(out[i].Bounces) / float64(total)
	}
	return out, nil
}

// Recorded is what the store holds for a set of messages (RecordsOf).
type Recorded struct {
	// Messages are the messages found, in no particular order; a message
	// never saved is missing.
	Messages []RecordedMessage
	// Bounces are their failed recipients, one row per message and
	// recipient, in insertion order.
	Bounces []BounceRow
	// Suppressions are the records whose evidence is one of Bounces, removed
	// and expired ones included, oldest first.
	Suppressions []Suppression
}

// RecordedMessage is one stored source message.
type RecordedMessage struct {
	SHA256      [32]byte
	Mailbox     string // where it was first read
	UIDValidity uint32
	UID         uint32
	MessageID   string
	Kind        classify.Kind // "" when it could not be classified
	ParseError  string
	ProcessedAt time.Time
}

const recordedMessagesSQL = `
SELECT sha256, mailbox, uid_validity, uid, message_id, coalesce(kind, ''), parse_error, processed_at
FROM source_messages
WHERE sha256 = ANY($1)`

const recordedBouncesSQL = `
SELECT ` + bounceRowCols + `
FROM source_messages m
JOIN bounces b ON b.source_id = m.id
WHERE m.sha256 = ANY($1)
ORDER BY b.id`

const recordedSuppressionsSQL = `
SELECT ` + suppressionCols + `
FROM source_messages m
JOIN bounces b ON b.source_id = m.id
JOIN suppressions s ON s.bounce_id = b.id
WHERE m.sha256 = ANY($1)
ORDER BY s.created_at, s.id`

// RecordsOf returns what the store holds for the messages whose content
// hashes to sums (Message.SHA256): the messages, their bounce rows and the
// suppressions those rows are the evidence of. Saving is idempotent, so
// this is the same whichever process or mailbox read them, and however
// often: `bouncer demo` reports its sample set with it.
func (db *DB) RecordsOf(ctx context.Context, sums [][32]byte) (Recorded, error) {
	keys := make([][]byte, len(sums))
	for i := range sums {
		keys[i] = sums[i][:]
	}
	var out Recorded
	b := &pgx.Batch{}
	b.Queue(recordedMessagesSQL, keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var m RecordedMessage
			var sum []byte
			var v, u int64
			if err := rows.Scan(&sum, &m.Mailbox, &v, &u, &m.MessageID, &m.Kind, &m.ParseError, &m.ProcessedAt); err != nil {
				return err
			}
			m.SHA256 = [32]byte(sum)
			m.UIDValidity, m.UID = uint32(v), uint32(u)
			out.Messages = append(out.Messages, m)
		}
		return rows.Err()
	})
	b.Queue(recordedBouncesSQL, keys).Query(func(rows pgx.Rows) error {
		var err error
		out.Bounces, err = pgx.CollectRows(rows, scanBounceRow)
		return err
	})
	b.Queue(recordedSuppressionsSQL, keys).Query(func(rows pgx.Rows) error {
		var err error
		out.Suppressions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Suppression, error) { return scanSuppression(r) })
		return err
	})
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return Recorded{}, fmt.Errorf("store: records of %d messages: %w", len(sums), mapErr(err))
	}
	return out, nil
}
