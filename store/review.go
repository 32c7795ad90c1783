package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// where is a WHERE clause built from the filters given, so that the
// planner sees only those: one statement with every filter optional gets a
// generic plan that reads the whole table.
type where struct {
	conds []string
	args  []any
}

// add adds cond, in which ? stands for arg (when arg is not nil).
func (w *where) add(cond string, arg any) {
	if arg != nil {
		w.args = append(w.args, arg)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// ruleCond selects the suppressions whose evidence bounce a rule decided.
const ruleCond = `s.bounce_id IN (SELECT id FROM bounces WHERE rule = ?)`

// activeCond selects the suppressions in force at ?.
const activeCond = `s.removed_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > ?)`

// reviewWhere checks f and returns its WHERE clause, the cursor aside.
func (db *DB) reviewWhere(f *ReviewFilter) (*where, error) {
	if f.Reason != "" && f.Reason.rank() == 0 {
		return nil, fmt.Errorf("%w: reason %q", ErrInvalid, f.Reason)
	}
	if f.Limit < 0 || f.Before < 0 {
		return nil, fmt.Errorf("%w: limit %d, before %d (want 0 or more)", ErrInvalid, f.Limit, f.Before)
	}
	w := &where{}
	switch f.State {
	case "", StateActive:
		w.add(activeCond, db.clock())
	case StateLifted:
		w.add(`(s.removed_at IS NOT NULL OR s.expires_at <= ?)`, db.clock())
	case StateAll:
	default:
		return nil, fmt.Errorf("%w: state %q (want active, lifted or all)", ErrInvalid, f.State)
	}
	if q := strings.TrimSpace(f.Query); strings.Contains(q, "@") {
		addr, _ := NormalizeAddress(q)
		w.add(`s.address = ?`, addr)
	} else if q != "" {
		_, domain := NormalizeAddress("x@" + q) // as stored: lower case, IDNA, no final dot
		w.add(`s.domain = ?`, domain)
	}
	for _, c := range []struct {
		cond string
		val  string
	}{{`s.list_id = ?`, f.ListID}, {`s.reason = ?`, string(f.Reason)}, {ruleCond, f.Rule}, {`s.category = ?`, string(f.Category)}} {
		if c.val != "" {
			w.add(c.cond, c.val)
		}
	}
	if f.Global {
		w.add(`s.list_id = ''`, nil)
	}
	if !f.From.IsZero() {
		w.add(`s.created_at >= ?`, f.From)
	}
	if !f.To.IsZero() {
		w.add(`s.created_at < ?`, f.To)
	}
	return w, nil
}

// SearchSuppressions returns a page of the suppressions f selects, newest
// first, and the cursor of the next page (0: this was the last).
func (db *DB) SearchSuppressions(ctx context.Context, f ReviewFilter) ([]ReviewRow, int64, error) {
	w, err := db.reviewWhere(&f)
	if err != nil {
		return nil, 0, err
	}
	limit := min(MaxReviewPage, f.Limit)
	if limit == 0 {
		limit = 50
	}
	if f.Before > 0 {
		w.add(`s.id < ?`, f.Before)
	}
	q := `SELECT ` + suppressionCols + `, coalesce((SELECT b.rule FROM bounces b WHERE b.id = s.bounce_id), '')
FROM suppressions AS s` + w.String() + ` ORDER BY s.id DESC LIMIT ` + strconv.Itoa(limit+1)
	rows, err := db.pool.Query(ctx, q, w.args...)
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
	w, err := db.reviewWhere(&f)
	if err != nil {
		return 0, err
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM suppressions AS s`+w.String(), w.args...).Scan(&n); err != nil {
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

// where returns the WHERE clause of the suppressions in force sel names.
func (sel *BulkSelect) where(now time.Time) (*where, error) {
	sel.Rule = strings.TrimSpace(sel.Rule)
	if sel.Rule == "" && sel.Day.IsZero() {
		return nil, fmt.Errorf("%w: bulk undo: name a rule or a day", ErrInvalid)
	}
	w := &where{}
	w.add(activeCond, now)
	if sel.Rule != "" {
		w.add(ruleCond, sel.Rule)
	}
	if !sel.Day.IsZero() {
		d := sel.Day.UTC().Truncate(24 * time.Hour)
		w.add(`s.created_at >= ?`, d)
		w.add(`s.created_at < ?`, d.Add(24*time.Hour))
	}
	return w, nil
}

// PreviewBulkUndo counts the suppressions in force that sel names, and the
// highest of their ids, which bounds what BulkUndo lifts.
func (db *DB) PreviewBulkUndo(ctx context.Context, sel BulkSelect) (UndoPreview, error) {
	w, err := sel.where(db.clock())
	if err != nil {
		return UndoPreview{}, err
	}
	var p UndoPreview
	q := `SELECT count(*), coalesce(max(s.id), 0) FROM suppressions AS s` + w.String()
	if err := db.pool.QueryRow(ctx, q, w.args...).Scan(&p.Count, &p.MaxID); err != nil {
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
	w, err := sel.where(db.clock())
	if err != nil {
		return 0, err
	}
	w.add(`s.id <= ?`, p.MaxID)
	q := `SELECT s.id, s.address, s.list_id FROM suppressions AS s` + w.String() + ` ORDER BY s.id`
	n := 0
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, w.args...)
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
