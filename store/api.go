package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// CheckResult is the answer for one address of CheckSuppressions.
type CheckResult struct {
	Address    string // as asked
	Normalized string
	// Suppression is the suppression in force (a global one before the
	// list's), nil when the address may be mailed. An erased address gets
	// one of reason ReasonErased.
	Suppression *Suppression
	// Invalid says why Address is not an email address ("" when it is);
	// such an address is not looked up.
	Invalid string
}

// checkManySQL finds, for each address, the suppression in force: one
// probe of the unique index suppressions_open_key per address and scope.
const checkManySQL = `
SELECT ` + suppressionCols + `, q.i
FROM unnest($1::text[]) WITH ORDINALITY AS q(address, i)
CROSS JOIN LATERAL (
    SELECT * FROM suppressions AS s
    WHERE s.address = q.address AND (s.list_id = '' OR s.list_id = $2)
      AND s.removed_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $3)
    ORDER BY s.list_id = '' DESC, s.id
    LIMIT 1
) AS s`

// CheckSuppressions answers, for each address in order, whether it is
// suppressed globally or (listID not "") for that list, in one round trip.
// An address that is not an email address gets Invalid and no lookup.
func (db *DB) CheckSuppressions(ctx context.Context, addresses []string, listID string) ([]CheckResult, error) {
	out := make([]CheckResult, len(addresses))
	var norm []string
	var idx []int // idx[k] is the index in out of norm[k]
	for i, a := range addresses {
		addr, domain := NormalizeAddress(a)
		out[i] = CheckResult{Address: a, Normalized: addr}
		if !isAddress(addr, domain) {
			out[i].Invalid = fmt.Sprintf("%q is not an email address (want NAME@DOMAIN)", a)
			continue
		}
		norm, idx = append(norm, addr), append(idx, i)
	}
	if len(norm) == 0 {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, checkManySQL, norm, listID, db.clock())
	if err != nil {
		return nil, fmt.Errorf("store: check %d addresses: %w", len(norm), mapErr(err))
	}
	_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct{}, error) {
		var i int64
		s, err := scanSuppression(r, &i)
		if err == nil {
			out[idx[i-1]].Suppression = &s
		}
		return struct{}{}, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: check %d addresses: %w", len(norm), mapErr(err))
	}
	erased, err := db.erasedOf(ctx, db.pool, norm)
	if err != nil {
		return nil, fmt.Errorf("store: check %d addresses: %w", len(norm), mapErr(err))
	}
	for k, a := range norm {
		if at, ok := erased[a]; ok && out[idx[k]].Suppression == nil {
			e := erasedSuppression(a, at)
			out[idx[k]].Suppression = &e
		}
	}
	return out, nil
}

// PageFilter selects a page of suppressions, oldest record first (by id).
type PageFilter struct {
	ListID string // only this list's suppressions
	Global bool   // only global ones
	Reason Reason // only this reason
	Domain string // only addresses at this domain
	// Since and Until bound created_at (zero: unbounded); Until is
	// exclusive.
	Since, Until time.Time
	// All includes removed and expired records.
	All bool
	// After is the id the previous page ended with (0: from the start).
	After int64
	// Limit is the page's size, 1 to MaxPage.
	Limit int
}

// MaxPage is the largest page ListPage returns.
const MaxPage = 10000

// ListPage returns one page of suppressions after f.After, in id order,
// and whether more follow (keyset paging: a page costs the same however
// deep it is). Its WHERE clause is the suppressions page's (reviewWhere),
// of the filters given only.
func (db *DB) ListPage(ctx context.Context, f PageFilter) ([]Suppression, bool, error) {
	if f.Limit < 1 || f.Limit > MaxPage {
		return nil, false, fmt.Errorf("%w: limit %d (want 1 to %d)", ErrInvalid, f.Limit, MaxPage)
	}
	if f.ListID != "" && f.Global {
		return nil, false, fmt.Errorf("%w: a list and global scope contradict each other", ErrInvalid)
	}
	rf := ReviewFilter{ListID: f.ListID, Global: f.Global, Reason: f.Reason, From: f.Since, To: f.Until, State: StateActive}
	if f.All {
		rf.State = StateAll
	}
	rf.Query = strings.TrimPrefix(f.Domain, "@")
	w, err := db.reviewWhere(&rf)
	if err != nil {
		return nil, false, err
	}
	if f.After > 0 {
		w.add(`s.id > ?`, f.After)
	}
	rows, err := db.pool.Query(ctx, `SELECT `+suppressionCols+` FROM suppressions AS s`+w.String()+
		` ORDER BY s.id LIMIT `+strconv.Itoa(f.Limit+1), w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: list suppressions: %w", mapErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Suppression, error) { return scanSuppression(r) })
	if err != nil {
		return nil, false, fmt.Errorf("store: list suppressions: %w", mapErr(err))
	}
	more := len(out) > f.Limit
	if more {
		out = out[:f.Limit]
	}
	return out, more, nil
}

// ExportSuppressions calls fn for every suppression f selects (f.Limit
// and f.After are ignored), page by page, so an export of millions holds
// one page in memory and no transaction open.
func (db *DB) ExportSuppressions(ctx context.Context, f PageFilter, fn func(*Suppression) error) error {
	f.After, f.Limit = 0, 5000
	for {
		page, more, err := db.ListPage(ctx, f)
		if err != nil {
			return err
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
		f.After = page[len(page)-1].ID
	}
}

// ImportRow is one suppression of an import.
type ImportRow struct {
	Address string
	ListID  string // "" for global scope
	Reason  Reason // default ReasonManual
	Note    string
	By      string // who; the import's default when ""
	// ExpiresAt, when set, makes the suppression lapse then.
	ExpiresAt time.Time
}

// ImportResult counts what an import did (or, dry, would do).
type ImportResult struct {
	Read int `json:"read"`
	// Added counts suppressions created or strengthened (soft to hard...).
	Added int `json:"added"`
	// Unchanged counts rows already in force with as strong a reason (or
	// covered by a global one, or repeated in the input).
	Unchanged int  `json:"unchanged"`
	DryRun    bool `json:"dry_run"`
}

// importChunk is how many rows one import transaction writes.
const importChunk = 2000

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("dry run")

// importCandidate validates a row and returns its candidate; the error
// wraps ErrInvalid.
func (db *DB) importCandidate(r ImportRow, by string, now time.Time) (candidate, error) {
	addr, domain := NormalizeAddress(r.Address)
	if !ValidAddress(addr, domain) {
		return candidate{}, fmt.Errorf("%w: %q is not a valid email address (RFC 5321/6531)", ErrInvalid, r.Address)
	}
	reason := cmp.Or(r.Reason, ReasonManual)
	if reason.rank() == 0 || reason == ReasonErased {
		return candidate{}, fmt.Errorf("%w: reason %q (want hard, soft, complaint, unsubscribe or manual)", ErrInvalid, r.Reason)
	}
	if !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(now) {
		return candidate{}, fmt.Errorf("%w: expires_at %s is not in the future", ErrInvalid, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	c := candidate{
		address: addr, addressRaw: cleanText(r.Address, 512), domain: domain,
		listID: cleanText(strings.TrimSpace(r.ListID), 512), reason: reason, at: now,
		note: cleanText(r.Note, 2048), by: cleanText(cmp.Or(strings.TrimSpace(r.By), by), 256),
	}
	if !r.ExpiresAt.IsZero() {
		c.expires = r.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	return c, nil
}

// ImportSuppressions adds suppressions as `bouncer suppressions add` does
// (events, list memberships), importChunk rows per transaction. Every row
// is checked first: an invalid one writes nothing and its error names its
// index (from 0). A row already in force with as strong a reason changes
// nothing, so importing a file again adds nothing. dryRun runs the same
// in one transaction and rolls it back: the counts say what would change.
func (db *DB) ImportSuppressions(ctx context.Context, rows []ImportRow, by string, dryRun bool) (ImportResult, error) {
	if strings.TrimSpace(by) == "" {
		return ImportResult{}, fmt.Errorf("%w: import: say who (by)", ErrInvalid)
	}
	now := db.clock()
	cands := make([]candidate, len(rows))
	for i, r := range rows {
		c, err := db.importCandidate(r, by, now)
		if err != nil {
			return ImportResult{}, fmt.Errorf("row %d: %w", i, err)
		}
		cands[i] = c
	}
	res := ImportResult{Read: len(rows), DryRun: dryRun}
	chunk := importChunk
	if dryRun {
		chunk = max(1, len(cands))
	}
	for start := 0; start < len(cands); start += chunk {
		part := cands[start:min(start+chunk, len(cands))]
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			out, err := db.applySuppressions(ctx, tx, now, part, nil, nil)
			if err != nil {
				return err
			}
			res.Added += out.added
			if dryRun {
				return errDryRun
			}
			return nil
		})
		if err != nil && !errors.Is(err, errDryRun) {
			return res, fmt.Errorf("store: import suppressions (rows %d to %d): %w", start, start+len(part)-1, mapErr(err))
		}
	}
	res.Unchanged = res.Read - res.Added
	return res, nil
}

// CheckPlan returns PostgreSQL's plan of the batch check of CheckSuppressions
// for these addresses (EXPLAIN, not run): to see that it probes an index
// (suppressions_open_key) rather than scanning the table.
func (db *DB) CheckPlan(ctx context.Context, addresses []string, listID string) (string, error) {
	rows, err := db.pool.Query(ctx, "EXPLAIN "+checkManySQL, addresses, listID, db.clock())
	if err != nil {
		return "", fmt.Errorf("store: explain check: %w", mapErr(err))
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("store: explain check: %w", mapErr(err))
	}
	return strings.Join(lines, "\n"), nil
}
