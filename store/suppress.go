package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/classify"
)

// Suppression is one suppression record: in force from CreatedAt until it
// is removed or expires.
type Suppression struct {
	ID         int64
	Address    string // normalised
	AddressRaw string // as first reported or typed
	Domain     string
	// ListID is the list of a list-scope suppression, "" for global scope.
	ListID   string
	Reason   Reason
	Category classify.Category // of the evidence bounce; "" for manual ones
	// BounceID is the bounce that is the evidence (0: none, manual).
	BounceID  int64
	Note      string
	CreatedAt time.Time
	CreatedBy string    // "bouncer" for the policy, else who added it
	ExpiresAt time.Time // zero: never
	// UpgradedFrom is the weaker reason this suppression had before
	// UpgradedAt (soft, then hard: one suppression, reason hard).
	UpgradedFrom Reason
	UpgradedAt   time.Time
	RemovedAt    time.Time // zero: not removed
	RemovedBy    string    // "bouncer" when it expired
	RemovedWhy   string
}

// Scope returns the suppression's scope.
func (s *Suppression) Scope() Scope {
	if s.ListID == "" {
		return ScopeGlobal
	}
	return ScopeList
}

// Active reports whether s is in force at t: not removed and not expired.
func (s *Suppression) Active(t time.Time) bool {
	return s.RemovedAt.IsZero() && (s.ExpiresAt.IsZero() || s.ExpiresAt.After(t))
}

// policyActor is the created_by / removed_by of what the policy does.
const policyActor = "bouncer"

// suppressionCols are the columns scanSuppression reads, table alias s.
const suppressionCols = `s.id, s.address, s.address_raw, s.domain, s.list_id, s.reason, s.category,
	coalesce(s.bounce_id, 0), s.note, s.created_at, s.created_by, s.expires_at, s.upgraded_at,
	coalesce(s.upgraded_from, ''), s.removed_at, coalesce(s.removed_by, ''), coalesce(s.removed_why, '')`

// evidenceCols are the evidence bounce's fields for an event, aliases b
// (bounces) and m (source_messages), both LEFT JOINed.
const evidenceCols = `coalesce(b.status, ''), coalesce(b.smtp_code, 0), coalesce(b.severity, ''),
	coalesce(b.suppress, false), coalesce(b.campaign_id, ''), coalesce(b.original_message_id, ''),
	coalesce(b.diagnostic, ''), coalesce(m.mailbox, ''), coalesce(b.subscriber_id, '')`

const evidenceJoin = `LEFT JOIN bounces b ON b.id = s.bounce_id LEFT JOIN source_messages m ON m.id = b.source_id`

func scanSuppression(row pgx.Row, extra ...any) (Suppression, error) {
	var s Suppression
	var expires, upgraded, removed *time.Time
	dst := append([]any{&s.ID, &s.Address, &s.AddressRaw, &s.Domain, &s.ListID, &s.Reason, &s.Category,
		&s.BounceID, &s.Note, &s.CreatedAt, &s.CreatedBy, &expires, &upgraded,
		&s.UpgradedFrom, &removed, &s.RemovedBy, &s.RemovedWhy}, extra...)
	if err := row.Scan(dst...); err != nil {
		return s, err
	}
	for _, p := range []struct {
		src *time.Time
		dst *time.Time
	}{{expires, &s.ExpiresAt}, {upgraded, &s.UpgradedAt}, {removed, &s.RemovedAt}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
	return s, nil
}

// evidence is what an event says about the bounce behind a suppression.
type evidence struct {
	Status            string
	SMTPCode          int
	Severity          string
	Suppress          bool
	CampaignID        string
	OriginalMessageID string
	Diagnostic        string
	Mailbox           string
	SubscriberID      string
}

func (e *evidence) dst() []any {
	return []any{&e.Status, &e.SMTPCode, &e.Severity, &e.Suppress, &e.CampaignID,
		&e.OriginalMessageID, &e.Diagnostic, &e.Mailbox, &e.SubscriberID}
}

func suppressionPayload(s *Suppression, ev *evidence, typ string, at time.Time) *Payload {
	p := &Payload{
		Type: typ, Time: at,
		Recipient: s.Address, Domain: s.Domain, Category: string(s.Category), ListID: s.ListID,
		Status: ev.Status, SMTPCode: ev.SMTPCode, Severity: ev.Severity, Suppress: ev.Suppress,
		CampaignID: ev.CampaignID, SubscriberID: ev.SubscriberID, OriginalMessageID: ev.OriginalMessageID,
		Diagnostic: ev.Diagnostic, Mailbox: ev.Mailbox,
		Suppression: &PayloadSuppression{
			ID: s.ID, Scope: s.Scope(), ListID: s.ListID, Reason: s.Reason, BounceID: s.BounceID,
			CreatedBy: s.CreatedBy, ExpiresAt: s.ExpiresAt,
			RemovedBy: s.RemovedBy, RemovedWhy: s.RemovedWhy,
		},
	}
	if typ == SubjectSuppressionRemoved {
		p.EventID = suppressionRemovedMsgID(s.ID)
	} else {
		p.EventID = suppressionAddedMsgID(s.ID, s.Reason)
	}
	return p
}

// SuppressRequest is a suppression a person asks for.
type SuppressRequest struct {
	Address string
	ListID  string // "" for global scope
	Reason  Reason // default ReasonManual
	Note    string // free text: why
	By      string // who; required
	// Expires, when positive, makes the suppression lapse after it.
	Expires time.Duration
}

// Suppress adds a suppression by hand, updates the list memberships it
// covers and writes a suppression.added event, in one transaction. When a
// suppression of the address in that scope is already in force with an
// equal or stronger reason it returns that one and false; with a weaker
// reason it upgrades it.
func (db *DB) Suppress(ctx context.Context, req SuppressRequest) (Suppression, bool, error) {
	addr, domain := NormalizeAddress(req.Address)
	if !ValidAddress(addr, domain) {
		return Suppression{}, false, fmt.Errorf("%w: %q is not a valid email address (RFC 5321/6531)", ErrInvalid, req.Address)
	}
	if req.By == "" {
		return Suppression{}, false, fmt.Errorf("%w: suppress %s: say who (By)", ErrInvalid, addr)
	}
	reason := cmp.Or(req.Reason, ReasonManual)
	if reason.rank() == 0 || reason == ReasonErased {
		return Suppression{}, false, fmt.Errorf("%w: reason %q", ErrInvalid, req.Reason)
	}
	now := db.clock()
	c := candidate{
		address: addr, addressRaw: cleanText(req.Address, 512), domain: domain,
		listID: cleanText(req.ListID, 512), reason: reason, at: now,
		note: cleanText(req.Note, 2048), by: cleanText(req.By, 256),
	}
	if req.Expires > 0 {
		c.expires = now.Add(req.Expires)
	}
	var out applyOutcome
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		out, err = db.applySuppressions(ctx, tx, now, []candidate{c}, nil, nil)
		return err
	})
	if err != nil {
		return Suppression{}, false, fmt.Errorf("store: suppress %s: %w", addr, mapErr(err))
	}
	s, ok := out.byKey[suppKey{addr, c.listID}]
	if !ok {
		// A global suppression as strong already covers the list.
		g, err := db.CheckSuppression(ctx, addr, c.listID)
		if err != nil || g == nil {
			return Suppression{}, false, cmp.Or(err, fmt.Errorf("store: suppress %s: not recorded", addr))
		}
		return *g, false, nil
	}
	return s, out.added > 0, nil
}

// Unsuppress removes the suppression in force for address in one scope
// (listID "" for global): it records who removed it and why, puts back the
// list memberships it changed, and writes a suppression.removed event. It
// returns ErrNotSuppressed when there is none.
func (db *DB) Unsuppress(ctx context.Context, address, listID, by, why string) (Suppression, error) {
	addr, _ := NormalizeAddress(address)
	if by == "" || why == "" {
		return Suppression{}, fmt.Errorf("%w: unsuppress %s: say who and why", ErrInvalid, addr)
	}
	r := removal{address: addr, listID: listID, by: cleanText(by, 256), why: cleanText(why, 2048)}
	var removed []Suppression
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		removed, err = db.remove(ctx, tx, []removal{r})
		return err
	})
	if err != nil {
		return Suppression{}, fmt.Errorf("store: unsuppress %s: %w", addr, mapErr(err))
	}
	if len(removed) == 0 {
		return Suppression{}, fmt.Errorf("%w: %s in %s scope", ErrNotSuppressed, addr, scopeName(listID))
	}
	return removed[0], nil
}

// remove is the one path every undo takes (Unsuppress, UnsuppressID,
// BulkUndo): in tx, under the addresses' locks, it closes the requested
// suppressions recording who and why, puts back the list memberships they
// changed and writes their suppression.removed events. It returns the
// suppressions it closed at the request, in id order; expired ones it
// closed on the way are not among them.
func (db *DB) remove(ctx context.Context, tx pgx.Tx, rs []removal) ([]Suppression, error) {
	out, err := db.applySuppressions(ctx, tx, db.clock(), nil, rs, nil)
	if err != nil {
		return nil, err
	}
	want := make(map[suppKey]removal, len(rs))
	for _, r := range rs {
		want[suppKey{r.address, r.listID}] = r
	}
	var removed []Suppression
	for _, s := range out.removals {
		r, ok := want[suppKey{s.Address, s.ListID}]
		if ok && s.RemovedBy == r.by && s.RemovedWhy == r.why && (r.id == 0 || r.id == s.ID) {
			removed = append(removed, s)
		}
	}
	return removed, nil
}

func scopeName(listID string) string {
	if listID == "" {
		return "global"
	}
	return "list " + listID
}

const expiredAddressesSQL = `
SELECT address FROM suppressions
WHERE removed_at IS NULL AND expires_at <= $1
ORDER BY expires_at
LIMIT $2`

// ExpireSuppressions closes the suppressions whose time is up, puts back
// the list memberships they changed and writes their suppression.removed
// events, a bounded number per transaction; it returns how many it closed.
// SaveBatch does a little of this on every batch; call it from a timer to
// keep events timely when no bounces come.
func (db *DB) ExpireSuppressions(ctx context.Context) (int, error) {
	total := 0
	for {
		now := db.clock()
		var n int
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, expiredAddressesSQL, now, 500)
			if err != nil {
				return err
			}
			addrs, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			out, err := db.applySuppressions(ctx, tx, now, nil, nil, addrs)
			n = out.removed
			return err
		})
		if err != nil {
			return total, fmt.Errorf("store: expire suppressions: %w", mapErr(err))
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

const checkSuppressionSQL = `
SELECT ` + suppressionCols + `
FROM suppressions AS s
WHERE s.address = $1 AND (s.list_id = '' OR s.list_id = $2)
  AND s.removed_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $3)
ORDER BY s.list_id = '' DESC, s.id
LIMIT 1`

// CheckSuppression returns the suppression in force for address: the
// global one, or, when listID is given, one for that list. It returns nil
// when the address may be mailed, and an error wrapping ErrInvalid when
// address is not an email address.
func (db *DB) CheckSuppression(ctx context.Context, address, listID string) (*Suppression, error) {
	addr, domain := NormalizeAddress(address)
	if !isAddress(addr, domain) {
		return nil, fmt.Errorf("%w: %q is not an email address", ErrInvalid, address)
	}
	s, err := scanSuppression(db.pool.QueryRow(ctx, checkSuppressionSQL, addr, listID, db.clock()))
	if errors.Is(err, pgx.ErrNoRows) {
		erased, err := db.erasedOf(ctx, db.pool, []string{addr})
		if err != nil {
			return nil, fmt.Errorf("store: check suppression of %s: %w", addr, mapErr(err))
		}
		if at, ok := erased[addr]; ok {
			e := erasedSuppression(addr, at)
			return &e, nil
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: check suppression of %s: %w", addr, mapErr(err))
	}
	return &s, nil
}

// SuppressionFilter selects suppressions for ListSuppressions.
type SuppressionFilter struct {
	ListID string // only this list's (list scope) suppressions
	Global bool   // only global ones
	// All includes removed and expired suppressions.
	All bool
	// Limit caps the result (0: no limit).
	Limit int
}

const listSuppressionsSQL = `
SELECT ` + suppressionCols + `
FROM suppressions AS s
WHERE ($1 = '' OR s.list_id = $1)
  AND (NOT $2 OR s.list_id = '')
  AND ($3 OR (s.removed_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $4)))
ORDER BY s.created_at, s.id
LIMIT nullif($5, 0)`

// ListSuppressions returns suppressions, oldest first: those in force, or
// every record with All. It reads the whole table (for an export); the
// suppressions of one address come from AddressHistory.
func (db *DB) ListSuppressions(ctx context.Context, f SuppressionFilter) ([]Suppression, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("%w: limit %d (want 0 for all, or more)", ErrInvalid, f.Limit)
	}
	rows, err := db.pool.Query(ctx, listSuppressionsSQL, f.ListID, f.Global, f.All, db.clock(), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: list suppressions: %w", mapErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Suppression, error) { return scanSuppression(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list suppressions: %w", mapErr(err))
	}
	return out, nil
}
