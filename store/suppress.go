package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

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
	coalesce(b.diagnostic, ''), coalesce(m.mailbox, '')`

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
}

func (e *evidence) dst() []any {
	return []any{&e.Status, &e.SMTPCode, &e.Severity, &e.Suppress, &e.CampaignID,
		&e.OriginalMessageID, &e.Diagnostic, &e.Mailbox}
}

func suppressionPayload(s *Suppression, ev *evidence, typ string, at time.Time) *Payload {
	p := &Payload{
		Type: typ, Time: at,
		Recipient: s.Address, Domain: s.Domain, Category: string(s.Category), ListID: s.ListID,
		Status: ev.Status, SMTPCode: ev.SMTPCode, Severity: ev.Severity, Suppress: ev.Suppress,
		CampaignID: ev.CampaignID, OriginalMessageID: ev.OriginalMessageID,
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

// candidate is a suppression the policy (or a person) asks for.
type candidate struct {
	address, addressRaw, domain string
	listID                      string // "" = global
	reason                      Reason
	category                    classify.Category
	bounceID                    int64
	bounceIDp                   *int64    // when set, bounceID is read from here after the first round trip
	dropped                     bool      // its bounce row was not written (a message seen before): ignore
	soft                        bool      // only if the soft threshold is met at `at`
	at                          time.Time // when the bounce arrived
	expires                     time.Time // zero: never
	note, by                    string
	ev                          evidence
}

type suppKey struct{ address, listID string }

// removal asks to remove the open suppression of an address in one scope.
type removal struct {
	address, listID, by, why string
}

// applyOutcome is what applySuppressions did.
type applyOutcome struct {
	added    int // new suppressions and upgrades
	removed  int
	events   int
	byKey    map[suppKey]Suppression // the open suppression of each candidate's key after the run
	removals []Suppression           // the suppressions removed, expiry included
}

// lockKey maps an address to the key of its transaction-level advisory lock.
// Every change to an address's suppressions and list memberships happens
// under this lock, taken in ascending key order, which serialises the
// policy's read-count-decide-write per address (no lost update between two
// savers) and cannot deadlock.
func lockKey(addr string) int64 {
	h := fnv.New64a()
	h.Write([]byte("bouncer-address\x00"))
	h.Write([]byte(addr))
	return int64(h.Sum64())
}

const lockAddressesSQL = `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k`

// expireSQL closes the suppressions of these addresses that expired by $2.
const expireSQL = `
WITH x AS (
    UPDATE suppressions SET removed_at = $2, removed_by = '` + policyActor + `', removed_why = 'expired'
    WHERE address = ANY($1) AND removed_at IS NULL AND expires_at <= $2
    RETURNING *
)
SELECT ` + suppressionCols + `, ` + evidenceCols + `
FROM x AS s ` + evidenceJoin + `
ORDER BY s.id`

// removeSQL closes the open suppression of each (address, list_id).
const removeSQL = `
WITH x AS (
    UPDATE suppressions AS s SET removed_at = $5, removed_by = r.by, removed_why = r.why
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS r(address, list_id, by, why)
    WHERE s.address = r.address AND s.list_id = r.list_id AND s.removed_at IS NULL
    RETURNING s.*
)
SELECT ` + suppressionCols + `, ` + evidenceCols + `
FROM x AS s ` + evidenceJoin + `
ORDER BY s.id`

const openSuppressionsSQL = `
SELECT ` + suppressionCols + `
FROM suppressions AS s
WHERE s.address = ANY($1) AND s.removed_at IS NULL`

// softDaysSQL lists, for each soft candidate, the distinct UTC days with a
// counted soft bounce of the address (in the candidate's list, for list
// scope) less than a window (of $4 days) away from the candidate's day. It
// sees the rows this transaction wrote and, thanks to the address lock,
// every committed one; SaveBatch runs it before it writes its bounce rows
// and adds their days itself (addBatchSoftDays).
const softDaysSQL = `
SELECT c.i, array_agg(DISTINCT (b.occurred_at AT TIME ZONE 'UTC')::date)
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS c(address, list_id, at, i)
JOIN bounces b ON b.address = c.address
    AND b.occurred_at > c.at - ($4::int + 1) * interval '1 day'
    AND b.occurred_at < c.at + ($4::int + 1) * interval '1 day'
    AND abs((b.occurred_at AT TIME ZONE 'UTC')::date - (c.at AT TIME ZONE 'UTC')::date) < $4::int
    AND b.category = ANY($5::text[])
    AND NOT b.original_auto_reply
    AND (c.list_id = '' OR b.list_id = c.list_id)
GROUP BY c.i`

// softThresholdMet reports whether some window of `window` consecutive days
// that includes day `at` holds at least n of the given days. Looking at
// every window through the new bounce, not only the one ending at it, keeps
// the decision right when bounces are saved out of order (a backlog, two
// workers).
func softThresholdMet(days []time.Time, at time.Time, window, n int) bool {
	dayNum := func(t time.Time) int64 { return t.UTC().Unix() / 86400 }
	a := dayNum(at)
	nums := make([]int64, 0, len(days))
	for _, d := range days {
		nums = append(nums, dayNum(d))
	}
	slices.Sort(nums)
	nums = slices.Compact(nums)
	for end := a; end < a+int64(window); end++ {
		count := 0
		for _, d := range nums {
			if d > end-int64(window) && d <= end {
				count++
			}
		}
		if count >= n {
			return true
		}
	}
	return false
}

// suppressionCopyColumns are the columns of a new suppression. COPY writes
// the ids given (reserved with allocSuppressionIDsSQL, so that the events,
// built in Go, can name them) even into an identity column.
var suppressionCopyColumns = []string{"id", "address", "address_raw", "domain", "list_id", "reason",
	"category", "bounce_id", "note", "created_by", "expires_at", "created_at"}

const upgradeSuppressionsSQL = `
UPDATE suppressions AS s SET
    upgraded_from = s.reason, upgraded_at = $6,
    reason = u.reason, category = u.category, bounce_id = nullif(u.bounce_id, 0),
    expires_at = u.expires
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[]) AS u(id, reason, category, bounce_id, expires)
WHERE s.id = u.id`

// restoreMembersSQL puts back the list memberships that removed
// suppressions changed, unless someone changed them since.
const restoreMembersSQL = `
UPDATE list_members AS m SET
    status = coalesce(m.previous_status, 'subscribed'),
    previous_status = NULL, suppression_id = NULL, updated_at = $2
FROM suppressions AS s
WHERE m.suppression_id = ANY($1) AND s.id = m.suppression_id
  AND m.status = CASE s.reason WHEN 'complaint' THEN 'complained' WHEN 'manual' THEN 'unsubscribed'
      WHEN 'unsubscribe' THEN 'unsubscribed' ELSE 'bounced' END`

// applyMembersSQL sets the list memberships open suppressions cover (global:
// every list of the address; list scope: that list). Only subscribed
// members change, and bounced ones become complained; unsubscribed ones
// stay. Where two suppressions cover one membership, the strongest wins.
const applyMembersSQL = `
WITH a AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[])
        AS a(id, address, list_id, status, rank)
), t AS (
    SELECT DISTINCT ON (m.list_id, m.address) m.list_id, m.address, a.id, a.status
    FROM list_members m
    JOIN a ON m.address = a.address AND (a.list_id = '' OR m.list_id = a.list_id)
    WHERE m.status = 'subscribed' OR (a.status = 'complained' AND m.status = 'bounced')
    ORDER BY m.list_id, m.address, a.rank DESC, a.id
)
UPDATE list_members AS m SET
    status = t.status,
    previous_status = CASE WHEN m.status = 'subscribed' OR m.previous_status IS NULL THEN m.status ELSE m.previous_status END,
    suppression_id = t.id,
    updated_at = $6
FROM t
WHERE m.list_id = t.list_id AND m.address = t.address`

const allocSuppressionIDsSQL = `
SELECT nextval('suppressions_id_seq') FROM generate_series(1, $1)`

// applySuppressions runs the policy's writes for one transaction: it locks
// the addresses involved, closes their expired suppressions and the
// requested removals, decides the candidates against what is open, inserts
// or upgrades suppressions, moves list memberships both ways, and writes
// one event per change. sweep names more addresses whose expired
// suppressions to close. Statements already queued in b (may be nil) are
// sent first, in the same round trip. The events of the changes are added
// to ev (may hold events already), and ev is written as the transaction's
// outbox row.
//
// Round trips: one to lock and read (and reserve suppression ids), a COPY
// of new suppressions, one to write the rest.
func (db *DB) applySuppressions(ctx context.Context, tx *txn, now time.Time, b *pgx.Batch, ev *outboxRows, cands []candidate, removals []removal, sweep []string) (applyOutcome, error) {
	if b == nil {
		b = &pgx.Batch{}
	}
	if ev == nil {
		ev = &outboxRows{}
	}
	run := db.newPolicyRun(now, cands, removals)
	addrSet := map[string]bool{}
	for i := range cands {
		addrSet[cands[i].address] = true
	}
	for _, r := range removals {
		addrSet[r.address] = true
	}
	for _, a := range sweep {
		addrSet[a] = true
	}
	if len(addrSet) > 0 {
		addrs := make([]string, 0, len(addrSet))
		for a := range addrSet {
			addrs = append(addrs, a)
		}
		queueLock(b, addrs)
		run.queueRead(b, addrs)
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return applyOutcome{}, fmt.Errorf("apply policy to %d addresses: %w", len(addrSet), err)
		}
	}
	return run.write(ctx, tx, ev)
}

// queueLock queues the advisory locks of addrs, in key order.
func queueLock(b *pgx.Batch, addrs []string) {
	keys := make([]int64, 0, len(addrs))
	for _, a := range addrs {
		keys = append(keys, lockKey(a))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	b.Queue(lockAddressesSQL, keys)
}

// policyRun is one transaction's run of the policy: queueRead queues the
// reads (after the addresses are locked), the caller sends them, and write
// decides and writes.
type policyRun struct {
	db         *DB
	now        time.Time
	cands      []candidate
	removals   []removal
	windowDays int

	closed   []Suppression // expired or removed by this run
	closedEv []evidence
	open     map[suppKey]Suppression
	// softDays[i] are the days with a counted soft bounce near soft
	// candidate i; a caller adds the days of rows it has not written yet.
	softDays map[int][]time.Time
	ids      []int64 // reserved suppression ids
}

func (db *DB) newPolicyRun(now time.Time, cands []candidate, removals []removal) *policyRun {
	return &policyRun{
		db: db, now: now, cands: cands, removals: removals,
		windowDays: max(1, int((db.policy.SoftWindow+24*time.Hour-1)/(24*time.Hour))),
		open:       map[suppKey]Suppression{},
		softDays:   map[int][]time.Time{},
	}
}

func (r *policyRun) scanClosed(rows pgx.Rows) error {
	for rows.Next() {
		var ev evidence
		s, err := scanSuppression(rows, ev.dst()...)
		if err != nil {
			return err
		}
		r.closed = append(r.closed, s)
		r.closedEv = append(r.closedEv, ev)
	}
	return rows.Err()
}

func (r *policyRun) scanOpen(rows pgx.Rows) error {
	for rows.Next() {
		s, err := scanSuppression(rows)
		if err != nil {
			return err
		}
		r.open[suppKey{s.Address, s.ListID}] = s
	}
	return rows.Err()
}

// queueRead queues, for addresses the transaction has locked: closing
// their expired suppressions and the removals, reading what is open,
// counting soft days, reserving suppression ids.
func (r *policyRun) queueRead(b *pgx.Batch, addrs []string) {
	b.Queue(expireSQL, addrs, r.now).Query(r.scanClosed)
	if len(r.removals) > 0 {
		n := len(r.removals)
		ra, rl, rb, rw := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		for i, x := range r.removals {
			ra[i], rl[i], rb[i], rw[i] = x.address, x.listID, x.by, x.why
		}
		b.Queue(removeSQL, ra, rl, rb, rw, r.now).Query(r.scanClosed)
	}
	b.Queue(openSuppressionsSQL, addrs).Query(r.scanOpen)
	if pol := &r.db.policy; pol.SoftThreshold > 0 {
		var softIdx []int // softIdx[k] is the index in cands of the soft query's row k+1
		var sa, sl []string
		var st []time.Time
		for i := range r.cands {
			if c := &r.cands[i]; c.soft && !c.dropped {
				softIdx = append(softIdx, i)
				sa, sl, st = append(sa, c.address), append(sl, c.listID), append(st, c.at)
			}
		}
		if len(softIdx) > 0 {
			cats := make([]string, len(pol.SoftCategories))
			for i, c := range pol.SoftCategories {
				cats[i] = string(c)
			}
			b.Queue(softDaysSQL, sa, sl, st, r.windowDays, cats).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var ord int64
					var days []time.Time
					if err := rows.Scan(&ord, &days); err != nil {
						return err
					}
					i := softIdx[ord-1]
					r.softDays[i] = append(r.softDays[i], days...)
				}
				return rows.Err()
			})
		}
	}
	if len(r.cands) > 0 {
		b.Queue(allocSuppressionIDsSQL, len(r.cands)).Query(func(rows pgx.Rows) error {
			var err error
			r.ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
			return err
		})
	}
}

// expireLockedSQL is expireSQL for addresses whose locks the transaction
// may take out of key order: it closes the expired suppressions only of
// those whose lock it gets without waiting ($3 are the lock keys).
const expireLockedSQL = `
WITH l AS (
    SELECT u.address FROM unnest($1::text[], $3::bigint[]) AS u(address, k)
    WHERE pg_try_advisory_xact_lock(u.k)
), x AS (
    UPDATE suppressions SET removed_at = $2, removed_by = '` + policyActor + `', removed_why = 'expired'
    WHERE address IN (SELECT address FROM l) AND removed_at IS NULL AND expires_at <= $2
    RETURNING *
)
SELECT ` + suppressionCols + `, ` + evidenceCols + `
FROM x AS s ` + evidenceJoin + `
ORDER BY s.id`

// queueSweep queues closing the expired suppressions of addresses besides
// those locked in order: an address whose lock another transaction holds
// is left for later (waiting could deadlock).
func (r *policyRun) queueSweep(b *pgx.Batch, addrs []string) {
	keys := make([]int64, len(addrs))
	for i, a := range addrs {
		keys[i] = lockKey(a)
	}
	b.Queue(expireLockedSQL, addrs, r.now, keys).Query(r.scanClosed)
	// What is open matters only for an address with a closed suppression,
	// whose lock the statement above took.
	b.Queue(openSuppressionsSQL, addrs).Query(r.scanOpen)
}

// write decides the candidates against what queueRead read, writes new
// suppressions (a COPY), then upgrades, list memberships and ev with the
// events of the changes as the outbox row, in one round trip.
func (r *policyRun) write(ctx context.Context, tx *txn, ev *outboxRows) (applyOutcome, error) {
	return r.exec(ctx, tx, r.plan(ev))
}

// policyPlan is what the policy decided, ready to write.
type policyPlan struct {
	out   applyOutcome
	supps *copyData // new suppressions (nil: none)
	nSupp int
	b     *pgx.Batch // restores, upgrades, list members
	ev    *outboxRows
	err   error
}

// plan decides the candidates against what queueRead read and prepares
// the writes; it does no I/O, so it may run while the transaction's
// connection does other work (not ev's: the events go there).
func (r *policyRun) plan(ev *outboxRows) *policyPlan {
	now, cands, open, closed := r.now, r.cands, r.open, r.closed
	p := &policyPlan{ev: ev, b: &pgx.Batch{}}
	p.out = applyOutcome{byKey: map[suppKey]Suppression{}, removed: len(closed), removals: closed}
	out := &p.out

	// Decide. Strongest reason first per key, global before list scope.
	var live []*candidate
	for i := range cands {
		c := &cands[i]
		if c.dropped {
			continue
		}
		if c.soft && !softThresholdMet(r.softDays[i], c.at, r.windowDays, r.db.policy.SoftThreshold) {
			continue
		}
		live = append(live, c)
	}
	slices.SortStableFunc(live, func(a, b *candidate) int {
		return cmp.Or(
			cmp.Compare(a.address, b.address),
			cmp.Compare(a.listID, b.listID),
			cmp.Compare(b.reason.rank(), a.reason.rank()),
			a.at.Compare(b.at),
		)
	})
	changed := make([]Suppression, 0, len(live)) // inserted and upgraded
	changedEv := make([]*evidence, 0, len(live))
	var inserts, upgrades []int // indexes in changed
	decided := make(map[suppKey]Reason, len(live))
	for _, c := range live {
		key := suppKey{c.address, c.listID}
		if _, done := decided[key]; done {
			continue
		}
		if c.listID != "" {
			g := suppKey{c.address, ""}
			if r, ok := decided[g]; ok && r.rank() >= c.reason.rank() {
				decided[key] = ""
				continue
			}
			if s, ok := open[g]; ok && s.Reason.rank() >= c.reason.rank() {
				decided[key] = ""
				continue
			}
		}
		decided[key] = c.reason
		bounceID := c.bounceID
		if c.bounceIDp != nil {
			bounceID = *c.bounceIDp
		}
		if s, ok := open[key]; ok {
			if s.Reason.rank() >= c.reason.rank() {
				decided[key] = s.Reason
				continue
			}
			s.UpgradedFrom, s.UpgradedAt = s.Reason, now
			s.Reason, s.Category, s.BounceID, s.ExpiresAt = c.reason, c.category, bounceID, c.expires
			upgrades = append(upgrades, len(changed))
			changed = append(changed, s)
		} else {
			inserts = append(inserts, len(changed))
			changed = append(changed, Suppression{
				ID: r.ids[len(inserts)-1], Address: c.address, AddressRaw: c.addressRaw, Domain: c.domain,
				ListID: c.listID, Reason: c.reason, Category: c.category, BounceID: bounceID,
				Note: c.note, CreatedAt: now, CreatedBy: cmp.Or(c.by, policyActor), ExpiresAt: c.expires,
			})
		}
		changedEv = append(changedEv, &c.ev)
	}
	out.added = len(changed)
	for _, s := range changed {
		open[suppKey{s.Address, s.ListID}] = s
	}
	for _, c := range cands {
		k := suppKey{c.address, c.listID}
		if s, ok := open[k]; ok && !c.dropped {
			out.byKey[k] = s
		}
	}

	// Then: write new suppressions, restore what removals changed, upgrade,
	// list memberships, events.
	if len(inserts) > 0 {
		c := newCopyData(len(inserts) * 200)
		for _, k := range inserts {
			x := &changed[k]
			c.row(len(suppressionCopyColumns))
			c.int8(x.ID)
			c.text(x.Address)
			c.text(x.AddressRaw)
			c.text(x.Domain)
			c.text(x.ListID)
			c.text(string(x.Reason))
			c.text(string(x.Category))
			c.optInt8(x.BounceID)
			c.text(x.Note)
			c.text(x.CreatedBy)
			c.optTimestamptz(x.ExpiresAt)
			c.timestamptz(now)
		}
		p.supps, p.nSupp = c, len(inserts)
	}
	b := p.b
	if len(closed) > 0 {
		removedIDs := make([]int64, len(closed))
		for i, s := range closed {
			removedIDs[i] = s.ID
		}
		b.Queue(restoreMembersSQL, removedIDs, now)
	}
	if len(upgrades) > 0 {
		n := len(upgrades)
		id, bi := make([]int64, n), make([]int64, n)
		re, c := make([]string, n), make([]string, n)
		ex := make([]*time.Time, n)
		for i, k := range upgrades {
			x := &changed[k]
			id[i], re[i], c[i], bi[i], ex[i] = x.ID, string(x.Reason), string(x.Category), x.BounceID, optTime(x.ExpiresAt)
		}
		b.Queue(upgradeSuppressionsSQL, id, re, c, bi, ex, now)
	}
	apply := changed
	if len(closed) > 0 {
		// What is still open for an address whose suppression went away
		// may cover the memberships just restored.
		affected := map[string]bool{}
		for _, s := range closed {
			affected[s.Address] = true
		}
		for _, s := range open {
			if affected[s.Address] {
				apply = append(apply, s)
			}
		}
	}
	if len(apply) > 0 {
		n := len(apply)
		ids, a, l, st, rk := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]int32, n)
		for i, s := range apply {
			ids[i], a[i], l[i], st[i], rk[i] = s.ID, s.Address, s.ListID, s.Reason.memberStatus(), int32(s.Reason.rank())
		}
		b.Queue(applyMembersSQL, ids, a, l, st, rk, now)
	}
	for i := range closed {
		if err := ev.add(SubjectSuppressionRemoved, suppressionPayload(&closed[i], &r.closedEv[i], SubjectSuppressionRemoved, now)); err != nil {
			p.err = err
			return p
		}
	}
	for i := range changed {
		if err := ev.add(SubjectSuppressionAdded, suppressionPayload(&changed[i], changedEv[i], SubjectSuppressionAdded, now)); err != nil {
			p.err = err
			return p
		}
	}
	return p
}

// exec writes what plan prepared: a COPY of new suppressions, then one
// round trip for the rest, the outbox row included.
func (r *policyRun) exec(ctx context.Context, tx *txn, p *policyPlan) (applyOutcome, error) {
	out := p.out
	if p.err != nil {
		return out, p.err
	}
	if c := p.supps; c != nil {
		_, err := copyIn(ctx, tx, "suppressions", suppressionCopyColumns, c.bytes())
		putBuf(c.b)
		if err != nil {
			return out, fmt.Errorf("write %d suppressions: %w", p.nSupp, err)
		}
	}
	out.events = queueOutbox(p.b, p.ev, r.now)
	if p.b.Len() > 0 {
		if err := tx.SendBatch(ctx, p.b).Close(); err != nil {
			return out, fmt.Errorf("update suppressions and list members: %w", err)
		}
	}
	return out, nil
}

// txn is a transaction of the store. Its BEGIN goes to the server with
// its first batch of statements rather than in a round trip of its own;
// a first statement that is not a batch (a query, a COPY) begins it
// alone.
type txn struct {
	c     *pgxpool.Conn
	begun bool
}

// SendBatch sends b, with BEGIN at its head when it is the first.
func (t *txn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if !t.begun {
		t.begun = true
		first := &pgx.Batch{}
		first.Queue("BEGIN")
		first.QueuedQueries = append(first.QueuedQueries, b.QueuedQueries...)
		b = first
	}
	return t.c.SendBatch(ctx, b)
}

// begin sends BEGIN alone unless the transaction has begun.
func (t *txn) begin(ctx context.Context) error {
	if t.begun {
		return nil
	}
	t.begun = true
	_, err := t.c.Exec(ctx, "BEGIN")
	return err
}

// Query runs one query in the transaction.
func (t *txn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.c.Query(ctx, sql, args...)
}

// copyFrom runs a COPY ... FROM STDIN in the transaction.
func (t *txn) copyFrom(ctx context.Context, r io.Reader, sql string) (pgconn.CommandTag, error) {
	if err := t.begin(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.c.Conn().PgConn().CopyFrom(ctx, r, sql)
}

// inTx runs f in a transaction and commits it.
func (db *DB) inTx(ctx context.Context, f func(*txn) error) error {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// A connection left in a transaction (an error, a cancelled ctx) is
	// closed by Release rather than pooled.
	defer c.Release()
	t := &txn{c: c}
	if err := f(t); err != nil {
		if t.begun {
			c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
		return err
	}
	if !t.begun {
		return nil // nothing was sent: nothing to commit
	}
	tag, err := c.Exec(ctx, "COMMIT")
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if tag.String() != "COMMIT" {
		return fmt.Errorf("commit: %w", pgx.ErrTxCommitRollback)
	}
	return nil
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
	if !isAddress(addr, domain) {
		return Suppression{}, false, fmt.Errorf("%w: %q is not an email address", ErrInvalid, req.Address)
	}
	if req.By == "" {
		return Suppression{}, false, fmt.Errorf("%w: suppress %s: say who (By)", ErrInvalid, addr)
	}
	reason := cmp.Or(req.Reason, ReasonManual)
	if reason.rank() == 0 {
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
	err := db.inTx(ctx, func(tx *txn) error {
		var err error
		out, err = db.applySuppressions(ctx, tx, now, nil, nil, []candidate{c}, nil, nil)
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
	now := db.clock()
	r := removal{address: addr, listID: listID, by: cleanText(by, 256), why: cleanText(why, 2048)}
	var out applyOutcome
	err := db.inTx(ctx, func(tx *txn) error {
		var err error
		out, err = db.applySuppressions(ctx, tx, now, nil, nil, nil, []removal{r}, nil)
		return err
	})
	if err != nil {
		return Suppression{}, fmt.Errorf("store: unsuppress %s: %w", addr, mapErr(err))
	}
	for _, s := range out.removals {
		if s.Address == addr && s.ListID == listID && s.RemovedBy == r.by {
			return s, nil
		}
	}
	return Suppression{}, fmt.Errorf("%w: %s in %s scope", ErrNotSuppressed, addr, scopeName(listID))
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
		err := db.inTx(ctx, func(tx *txn) error {
			rows, err := tx.Query(ctx, expiredAddressesSQL, now, 500)
			if err != nil {
				return err
			}
			addrs, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			out, err := db.applySuppressions(ctx, tx, now, nil, nil, nil, nil, addrs)
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
