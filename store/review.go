package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/classify"
)

// The suppressions page's side of the store: search suppressions, show one
// with its evidence, undo one, and undo in bulk everything one rule or one
// day suppressed (the day a rule misfired), after a preview.

// State selects suppressions by whether they are in force.
type State string

// The states of ReviewFilter.
const (
	StateActive State = "active" // not removed, not expired (the default)
	StateLifted State = "lifted" // removed or expired
	StateAll    State = "all"
)

// ReviewFilter selects suppressions for SearchSuppressions and
// CountSuppressions. Zero fields do not filter.
type ReviewFilter struct {
	// Query is a whole address (it has an @; compared normalised) or a
	// domain.
	Query    string
	ListID   string // only this list's suppressions
	Global   bool   // only global ones
	Reason   Reason
	Rule     string // the rule that decided the evidence bounce
	Category classify.Category
	// From and To bound the creation time: From <= created_at < To.
	From, To time.Time
	State    State // default StateActive
	// Limit is the page size (default 50, at most MaxReviewPage).
	Limit int
	// Before is the keyset cursor: only ids below it (0: from the newest).
	Before int64
}

// MaxReviewPage is the largest page SearchSuppressions returns.
const MaxReviewPage = 500

// ReviewRow is one suppression as the search shows it.
type ReviewRow struct {
	Suppression
	Rule string // the rule of the evidence bounce; "" for a manual one
}

// reviewWhere is the WHERE clause of a search; $1..$11 are reviewArgs.
const reviewWhere = `
WHERE ($1 = '' OR s.address = $1)
  AND ($2 = '' OR s.domain = $2)
  AND ($3 = '' OR s.list_id = $3)
  AND (NOT $4 OR s.list_id = '')
  AND ($5 = '' OR s.reason = $5)
  AND ($6 = '' OR b.rule = $6)
  AND ($7 = '' OR s.category = $7)
  AND ($8::timestamptz IS NULL OR s.created_at >= $8)
  AND ($9::timestamptz IS NULL OR s.created_at < $9)
  AND CASE $10
      WHEN 'active' THEN s.removed_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $11)
      WHEN 'lifted' THEN s.removed_at IS NOT NULL OR s.expires_at <= $11
      ELSE true END`

const searchSuppressionsSQL = `
SELECT ` + suppressionCols + `, coalesce(b.rule, '')
FROM suppressions AS s LEFT JOIN bounces b ON b.id = s.bounce_id` + reviewWhere + `
  AND ($12 = 0 OR s.id < $12)
ORDER BY s.id DESC
LIMIT $13`

const countSuppressionsSQL = `
SELECT count(*)
FROM suppressions AS s LEFT JOIN bounces b ON b.id = s.bounce_id` + reviewWhere

// reviewArgs checks f and returns the arguments of reviewWhere.
func (db *DB) reviewArgs(f *ReviewFilter) ([]any, error) {
	switch f.State {
	case "":
		f.State = StateActive
	case StateActive, StateLifted, StateAll:
	default:
		return nil, fmt.Errorf("%w: state %q (want active, lifted or all)", ErrInvalid, f.State)
	}
	if f.Reason != "" && f.Reason.rank() == 0 {
		return nil, fmt.Errorf("%w: reason %q", ErrInvalid, f.Reason)
	}
	if f.Limit < 0 || f.Before < 0 {
		return nil, fmt.Errorf("%w: limit %d, before %d (want 0 or more)", ErrInvalid, f.Limit, f.Before)
	}
	var addr, domain string
	if q := strings.TrimSpace(f.Query); strings.Contains(q, "@") {
		addr, _ = NormalizeAddress(q)
	} else {
		domain = strings.TrimSuffix(strings.ToLower(q), ".")
	}
	return []any{addr, domain, f.ListID, f.Global, string(f.Reason), f.Rule, string(f.Category),
		optTime(f.From), optTime(f.To), string(f.State), db.clock()}, nil
}

// SearchSuppressions returns a page of the suppressions f selects, newest
// first, and the cursor of the next page (0: this was the last).
func (db *DB) SearchSuppressions(ctx context.Context, f ReviewFilter) ([]ReviewRow, int64, error) {
	args, err := db.reviewArgs(&f)
	if err != nil {
		return nil, 0, err
	}
	limit := min(MaxReviewPage, f.Limit)
	if limit == 0 {
		limit = 50
	}
	rows, err := db.pool.Query(ctx, searchSuppressionsSQL, append(args, f.Before, limit+1)...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: search suppressions: %w", mapErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReviewRow, error) {
		var x ReviewRow
		var err error
		x.Suppression, err = scanSuppression(r, &x.Rule)
		return x, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: search suppressions: %w", mapErr(err))
	}
	var next int64
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// CountSuppressions counts the suppressions f selects (its Limit and
// Before aside).
func (db *DB) CountSuppressions(ctx context.Context, f ReviewFilter) (int, error) {
	args, err := db.reviewArgs(&f)
	if err != nil {
		return 0, err
	}
	var n int
	if err := db.pool.QueryRow(ctx, countSuppressionsSQL, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count suppressions: %w", mapErr(err))
	}
	return n, nil
}

// SuppressionDetail is one suppression with its evidence.
type SuppressionDetail struct {
	Suppression
	// Bounce is the evidence: the stored bounce row, with the rule that
	// decided and the remote server's words (Diagnostic). nil for a
	// suppression added by hand.
	Bounce *BounceRow
	// Members are the list memberships the suppression holds changed now.
	Members []Membership
}

// Membership is one list membership.
type Membership struct {
	ListID         string
	Status         string // subscribed, unsubscribed, bounced, complained
	PreviousStatus string // what it was before the suppression changed it
}

const suppressionByIDSQL = `SELECT ` + suppressionCols + ` FROM suppressions AS s WHERE s.id = $1`

const evidenceBounceSQL = `
SELECT ` + bounceRowCols + `
FROM bounces b JOIN source_messages m ON m.id = b.source_id
WHERE b.id = $1`

const suppressionMembersSQL = `
SELECT list_id, status, coalesce(previous_status, '')
FROM list_members WHERE suppression_id = $1
ORDER BY list_id`

// SuppressionByID returns suppression id with its evidence, or nil when
// there is none.
func (db *DB) SuppressionByID(ctx context.Context, id int64) (*SuppressionDetail, error) {
	var d SuppressionDetail
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var err error
		if d.Suppression, err = scanSuppression(tx.QueryRow(ctx, suppressionByIDSQL, id)); err != nil {
			return err
		}
		b := &pgx.Batch{}
		if d.BounceID != 0 {
			b.Queue(evidenceBounceSQL, d.BounceID).Query(func(rows pgx.Rows) error {
				r, err := pgx.CollectExactlyOneRow(rows, scanBounceRow)
				if err == nil {
					d.Bounce = &r
				}
				return err
			})
		}
		b.Queue(suppressionMembersSQL, id).Query(func(rows pgx.Rows) error {
			var err error
			d.Members, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Membership])
			return err
		})
		return tx.SendBatch(ctx, b).Close()
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: suppression %d: %w", id, mapErr(err))
	}
	return &d, nil
}

// UnsuppressID removes suppression id as Unsuppress does (memberships put
// back, a suppression.removed event, who and why recorded). It returns
// ErrNotSuppressed when id is not in force.
func (db *DB) UnsuppressID(ctx context.Context, id int64, by, why string) (Suppression, error) {
	by, why = cleanText(strings.TrimSpace(by), 256), cleanText(strings.TrimSpace(why), 2048)
	if by == "" || why == "" {
		return Suppression{}, fmt.Errorf("%w: unsuppress %d: say who and why", ErrInvalid, id)
	}
	var removed []Suppression
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		s, err := scanSuppression(tx.QueryRow(ctx, suppressionByIDSQL, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		removed, err = db.remove(ctx, tx, []removal{{address: s.Address, listID: s.ListID, by: by, why: why, id: id}})
		return err
	})
	if err != nil {
		return Suppression{}, fmt.Errorf("store: unsuppress %d: %w", id, mapErr(err))
	}
	if len(removed) == 0 {
		return Suppression{}, fmt.Errorf("%w: suppression %d is not in force", ErrNotSuppressed, id)
	}
	return removed[0], nil
}

// BulkSelect names the suppressions a bulk undo lifts: those in force whose
// evidence bounce was decided by Rule, or that were created on Day (a UTC
// day), or both. One of the two is required.
type BulkSelect struct {
	Rule string
	Day  time.Time // its UTC date counts; zero: any day
}

// MaxBulkUndo is the most suppressions one bulk undo lifts.
const MaxBulkUndo = 50000

// UndoPreview is what a bulk undo would lift: Count suppressions, none of
// them above MaxID. BulkUndo takes it back to lift exactly those.
type UndoPreview struct {
	Count int
	MaxID int64
}

// ErrPreviewStale is returned by BulkUndo when what it would lift is no
// longer what was previewed: preview again.
var ErrPreviewStale = errors.New("store: the suppressions changed since the preview")

// bulkWhere selects the suppressions in force of a BulkSelect: $1 rule, $2
// day start, $3 day end, $4 now.
const bulkWhere = `
FROM suppressions AS s LEFT JOIN bounces b ON b.id = s.bounce_id
WHERE s.removed_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $4)
  AND ($1 = '' OR b.rule = $1)
  AND ($2::timestamptz IS NULL OR (s.created_at >= $2 AND s.created_at < $3))`

const bulkPreviewSQL = `SELECT count(*), coalesce(max(s.id), 0)` + bulkWhere

const bulkTargetsSQL = `SELECT s.id, s.address, s.list_id` + bulkWhere + `
  AND s.id <= $5
ORDER BY s.id`

func (sel *BulkSelect) args(now time.Time) ([]any, error) {
	sel.Rule = strings.TrimSpace(sel.Rule)
	if sel.Rule == "" && sel.Day.IsZero() {
		return nil, fmt.Errorf("%w: bulk undo: name a rule or a day", ErrInvalid)
	}
	var from, to *time.Time
	if !sel.Day.IsZero() {
		d := sel.Day.UTC().Truncate(24 * time.Hour)
		e := d.Add(24 * time.Hour)
		from, to = &d, &e
	}
	return []any{sel.Rule, from, to, now}, nil
}

// PreviewBulkUndo counts the suppressions in force that sel names, and the
// highest of their ids, which bounds what BulkUndo lifts.
func (db *DB) PreviewBulkUndo(ctx context.Context, sel BulkSelect) (UndoPreview, error) {
	args, err := sel.args(db.clock())
	if err != nil {
		return UndoPreview{}, err
	}
	var p UndoPreview
	if err := db.pool.QueryRow(ctx, bulkPreviewSQL, args...).Scan(&p.Count, &p.MaxID); err != nil {
		return UndoPreview{}, fmt.Errorf("store: preview bulk undo: %w", mapErr(err))
	}
	return p, nil
}

// BulkUndo lifts what PreviewBulkUndo previewed for sel, in one
// transaction, through the path of Unsuppress (memberships put back, one
// suppression.removed event each, who and why recorded). It lifts exactly
// the previewed suppressions or nothing: when the suppressions in force
// up to p.MaxID are not p.Count any more (one was lifted or expired since,
// or one that committed late joined), it returns ErrPreviewStale.
func (db *DB) BulkUndo(ctx context.Context, sel BulkSelect, p UndoPreview, by, why string) (int, error) {
	by, why = cleanText(strings.TrimSpace(by), 256), cleanText(strings.TrimSpace(why), 2048)
	if by == "" || why == "" {
		return 0, fmt.Errorf("%w: bulk undo: say who and why", ErrInvalid)
	}
	if p.Count <= 0 || p.Count > MaxBulkUndo {
		return 0, fmt.Errorf("%w: bulk undo of %d suppressions (want 1 to %d)", ErrInvalid, p.Count, MaxBulkUndo)
	}
	args, err := sel.args(db.clock())
	if err != nil {
		return 0, err
	}
	n := 0
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, bulkTargetsSQL, append(args, p.MaxID)...)
		if err != nil {
			return err
		}
		rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (removal, error) {
			x := removal{by: by, why: why}
			return x, r.Scan(&x.id, &x.address, &x.listID)
		})
		if err != nil {
			return err
		}
		if len(rs) != p.Count {
			return fmt.Errorf("%w: %d in force up to id %d, %d previewed", ErrPreviewStale, len(rs), p.MaxID, p.Count)
		}
		removed, err := db.remove(ctx, tx, rs)
		if err != nil {
			return err
		}
		if n = len(removed); n != p.Count {
			// One was lifted between the read and the locks.
			return fmt.Errorf("%w: %d lifted, %d previewed", ErrPreviewStale, n, p.Count)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: bulk undo: %w", mapErr(err))
	}
	return n, nil
}
