package store

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/classify"
)

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

// removal asks to remove the open suppression of an address in one scope;
// with id set, only that suppression (none when another is open now).
type removal struct {
	address, listID, by, why string
	id                       int64
}

// applyOutcome is what applySuppressions did.
type applyOutcome struct {
	added    int // new suppressions and upgrades
	removed  int
	events   int
	byKey    map[suppKey]Suppression // the open suppression of each candidate's key after the run
	removals []Suppression           // the suppressions removed, expiry included
}

// lockBuckets is how many advisory locks the addresses share: an address
// is locked by locking its bucket, so that a transaction holds at most
// lockBuckets advisory locks whatever it touches. PostgreSQL keeps every
// advisory lock in its shared lock table, sized max_locks_per_transaction
// (64) times max_connections (100) by default: one lock per address made
// a single DSN of 75,000 recipients fail with "out of shared memory". 256
// leaves room for several savers at once; the price is that two savers
// touching addresses of one bucket wait for each other, never longer than
// a transaction.
const lockBuckets = 256

// lockKey maps an address to the key of its transaction-level advisory lock
// (its bucket's). Every change to an address's suppressions and list
// memberships happens under this lock, taken in ascending key order, which
// serialises the policy's read-count-decide-write per address (no lost
// update between two savers) and cannot deadlock.
func lockKey(addr string) int64 {
	h := fnv.New64a()
	h.Write([]byte("bouncer-address\x00"))
	h.Write([]byte(addr))
	return lockKeyBase + int64(h.Sum64()%lockBuckets)
}

// lockKeyBase keeps the buckets' keys apart from other users of advisory
// locks in the same database.
const lockKeyBase = 0x626f756e63657200 // "bouncer\0"

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

// removeSQL closes the open suppression of each (address, list_id), or
// only the suppression of id when it is not 0.
const removeSQL = `
WITH x AS (
    UPDATE suppressions AS s SET removed_at = $5, removed_by = r.by, removed_why = r.why
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::bigint[]) AS r(address, list_id, by, why, id)
    WHERE s.address = r.address AND s.list_id = r.list_id AND s.removed_at IS NULL
      AND (r.id = 0 OR s.id = r.id)
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

// insertSuppressionsSQL inserts new suppressions and returns their ids
// with their keys (one new suppression per address and list).
const insertSuppressionsSQL = `
INSERT INTO suppressions (address, address_raw, domain, list_id, reason, category, bounce_id, note,
    created_by, expires_at, created_at)
SELECT u.address, u.address_raw, u.domain, u.list_id, u.reason, u.category, nullif(u.bounce_id, 0), u.note,
    u.created_by, u.expires_at, $11
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[],
    $9::text[], $10::timestamptz[]) WITH ORDINALITY
    AS u(address, address_raw, domain, list_id, reason, category, bounce_id, note, created_by, expires_at, i)
ORDER BY u.i
RETURNING id, address, list_id`

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

// applySuppressions runs the policy for one transaction: it locks the
// addresses involved, closes their expired suppressions (and those of
// sweep) and the requested removals, decides the candidates against what
// is open, inserts or upgrades suppressions, moves list memberships both
// ways, and writes one event per change to the outbox.
func (db *DB) applySuppressions(ctx context.Context, tx pgx.Tx, now time.Time, cands []candidate, removals []removal, sweep []string) (applyOutcome, error) {
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
		addrs := slices.Collect(maps.Keys(addrSet))
		b := &pgx.Batch{}
		queueLock(b, addrs)
		run.queueRead(b, addrs)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return applyOutcome{}, fmt.Errorf("apply policy to %d addresses: %w", len(addrSet), err)
		}
	}
	return run.write(ctx, tx, &outboxEvents{})
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
// counting soft days.
func (r *policyRun) queueRead(b *pgx.Batch, addrs []string) {
	b.Queue(expireSQL, addrs, r.now).Query(r.scanClosed)
	if len(r.removals) > 0 {
		n := len(r.removals)
		ra, rl, rb, rw := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ri := make([]int64, n)
		for i, x := range r.removals {
			ra[i], rl[i], rb[i], rw[i], ri[i] = x.address, x.listID, x.by, x.why, x.id
		}
		b.Queue(removeSQL, ra, rl, rb, rw, r.now, ri).Query(r.scanClosed)
	}
	b.Queue(openSuppressionsSQL, addrs).Query(r.scanOpen)
	r.queueErased(b, addrs)
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
}

// queueErased queues the lookup of the erased addresses among addrs (with
// an erasure key): each counts as held by a global suppression of reason
// ReasonErased, which outranks every candidate, so an erased address is
// never suppressed (nor named in a suppression event) again.
func (r *policyRun) queueErased(b *pgx.Batch, addrs []string) {
	key := r.db.erasureKey
	if len(key) == 0 {
		return
	}
	byHash := make(map[string]string, len(addrs))
	hashes := make([][]byte, len(addrs))
	for i, a := range addrs {
		hashes[i] = subjectHash(key, a)
		byHash[string(hashes[i])] = a
	}
	b.Queue(erasedSQL, hashes).Query(func(rows pgx.Rows) error {
		var h []byte
		var at time.Time
		_, err := pgx.ForEachRow(rows, []any{&h, &at}, func() error {
			if a := byHash[string(h)]; a != "" {
				r.open[suppKey{a, ""}] = erasedSuppression(a, at)
			}
			return nil
		})
		return err
	})
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

// policyChanges are the suppressions a run inserts or upgrades, in the
// order it decided them.
type policyChanges struct {
	changed  []Suppression
	evidence []*evidence // of changed[i], for its event
	inserts  []int       // indexes in changed of new suppressions (no ID until inserted)
	upgrades []int       // indexes in changed of upgraded ones
}

// live returns the candidates to decide: not dropped, soft ones only when
// their threshold is met; strongest reason first per address and list,
// global scope before list scope.
func (r *policyRun) live() []*candidate {
	var live []*candidate
	for i := range r.cands {
		c := &r.cands[i]
		if c.dropped || !ValidAddress(c.address, c.domain) {
			continue // an invalid address is recorded, never acted on
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
	return live
}

// decide decides the live candidates against what is open: one decision
// per address and list; a list-scope candidate is dropped when a global
// suppression as strong covers it, and an open suppression is upgraded
// only by a stronger reason.
func (r *policyRun) decide() *policyChanges {
	ch := &policyChanges{}
	decided := map[suppKey]Reason{}
	covered := func(c *candidate) bool {
		g := suppKey{c.address, ""}
		if rs, ok := decided[g]; ok && rs.rank() >= c.reason.rank() {
			return true
		}
		s, ok := r.open[g]
		return ok && s.Reason.rank() >= c.reason.rank()
	}
	for _, c := range r.live() {
		key := suppKey{c.address, c.listID}
		if _, done := decided[key]; done {
			continue
		}
		if c.listID != "" && covered(c) {
			decided[key] = ""
			continue
		}
		decided[key] = c.reason
		bounceID := c.bounceID
		if c.bounceIDp != nil {
			bounceID = *c.bounceIDp
		}
		s, ok := r.open[key]
		switch {
		case ok && s.Reason.rank() >= c.reason.rank():
			decided[key] = s.Reason
			continue
		case ok:
			s.UpgradedFrom, s.UpgradedAt = s.Reason, r.now
			s.Reason, s.Category, s.BounceID, s.ExpiresAt = c.reason, c.category, bounceID, c.expires
			ch.upgrades = append(ch.upgrades, len(ch.changed))
		default:
			ch.inserts = append(ch.inserts, len(ch.changed))
			s = Suppression{
				Address: c.address, AddressRaw: c.addressRaw, Domain: c.domain,
				ListID: c.listID, Reason: c.reason, Category: c.category, BounceID: bounceID,
				Note: c.note, CreatedAt: r.now, CreatedBy: cmp.Or(c.by, policyActor), ExpiresAt: c.expires,
			}
		}
		ch.changed = append(ch.changed, s)
		ch.evidence = append(ch.evidence, &c.ev)
	}
	return ch
}

// write decides the candidates against what queueRead read and writes
// the outcome: suppressions closed, inserted and upgraded, the list
// memberships they change, and ev with the events of the changes added.
func (r *policyRun) write(ctx context.Context, tx pgx.Tx, ev *outboxEvents) (applyOutcome, error) {
	ch := r.decide()
	if err := r.writeSuppressions(ctx, tx, ch); err != nil {
		return applyOutcome{}, err
	}
	out := applyOutcome{added: len(ch.changed), removed: len(r.closed), removals: r.closed, byKey: map[suppKey]Suppression{}}
	for _, s := range ch.changed {
		r.open[suppKey{s.Address, s.ListID}] = s
	}
	for _, c := range r.cands {
		k := suppKey{c.address, c.listID}
		if s, ok := r.open[k]; ok && !c.dropped {
			out.byKey[k] = s
		}
	}
	if err := r.writeMembers(ctx, tx, ch.changed); err != nil {
		return applyOutcome{}, err
	}
	for i := range r.closed {
		if err := ev.add(SubjectSuppressionRemoved, suppressionPayload(&r.closed[i], &r.closedEv[i], SubjectSuppressionRemoved, r.now), r.now); err != nil {
			return applyOutcome{}, err
		}
	}
	for i := range ch.changed {
		if err := ev.add(SubjectSuppressionAdded, suppressionPayload(&ch.changed[i], ch.evidence[i], SubjectSuppressionAdded, r.now), r.now); err != nil {
			return applyOutcome{}, err
		}
	}
	n, err := ev.write(ctx, tx)
	out.events = n
	return out, err
}

// writeSuppressions restores the list memberships the closed suppressions
// had changed, upgrades, and inserts the new suppressions, setting their
// IDs, in one round trip.
func (r *policyRun) writeSuppressions(ctx context.Context, tx pgx.Tx, ch *policyChanges) error {
	b := &pgx.Batch{}
	if len(r.closed) > 0 {
		ids := make([]int64, len(r.closed))
		for i, s := range r.closed {
			ids[i] = s.ID
		}
		b.Queue(restoreMembersSQL, ids, r.now)
	}
	if n := len(ch.upgrades); n > 0 {
		id, bi := make([]int64, n), make([]int64, n)
		re, c := make([]string, n), make([]string, n)
		ex := make([]*time.Time, n)
		for i, k := range ch.upgrades {
			x := &ch.changed[k]
			id[i], re[i], c[i], bi[i], ex[i] = x.ID, string(x.Reason), string(x.Category), x.BounceID, optTime(x.ExpiresAt)
		}
		b.Queue(upgradeSuppressionsSQL, id, re, c, bi, ex, r.now)
	}
	if len(ch.inserts) > 0 {
		r.queueInsert(b, ch)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write %d suppressions: %w", len(ch.changed), err)
	}
	return nil
}

// queueInsert queues the insert of the new suppressions of ch, which sets
// their IDs.
func (r *policyRun) queueInsert(b *pgx.Batch, ch *policyChanges) {
	n := len(ch.inserts)
	addr, raw, dom, list, reason := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	cat, note, by := make([]string, n), make([]string, n), make([]string, n)
	bounce := make([]int64, n)
	expires := make([]*time.Time, n)
	byKey := make(map[suppKey]*Suppression, n)
	for i, k := range ch.inserts {
		x := &ch.changed[k]
		addr[i], raw[i], dom[i], list[i], reason[i] = x.Address, x.AddressRaw, x.Domain, x.ListID, string(x.Reason)
		cat[i], note[i], by[i], bounce[i], expires[i] = string(x.Category), x.Note, x.CreatedBy, x.BounceID, optTime(x.ExpiresAt)
		byKey[suppKey{x.Address, x.ListID}] = x
	}
	b.Queue(insertSuppressionsSQL, addr, raw, dom, list, reason, cat, bounce, note, by, expires, r.now).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id int64
			var k suppKey
			if err := rows.Scan(&id, &k.address, &k.listID); err != nil {
				return err
			}
			x := byKey[k]
			if x == nil {
				return fmt.Errorf("inserted suppression %d (%s, list %q) was not asked for", id, k.address, k.listID)
			}
			x.ID = id
		}
		return rows.Err()
	})
}

// writeMembers moves the list memberships that changed suppressions
// cover, and, for an address whose suppression was closed, those that
// what is still open covers (restoreMembersSQL has just put them back).
func (r *policyRun) writeMembers(ctx context.Context, tx pgx.Tx, changed []Suppression) error {
	apply := changed
	if len(r.closed) > 0 {
		affected := map[string]bool{}
		for _, s := range r.closed {
			affected[s.Address] = true
		}
		for _, s := range r.open {
			if affected[s.Address] && s.ID != 0 { // 0: an erasure, no record
				apply = append(apply, s)
			}
		}
	}
	if len(apply) == 0 {
		return nil
	}
	n := len(apply)
	ids, a, l, st, rk := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]int32, n)
	for i, s := range apply {
		ids[i], a[i], l[i], st[i], rk[i] = s.ID, s.Address, s.ListID, s.Reason.memberStatus(), int32(s.Reason.rank())
	}
	if _, err := tx.Exec(ctx, applyMembersSQL, ids, a, l, st, rk, r.now); err != nil {
		return fmt.Errorf("update list members of %d suppressions: %w", n, err)
	}
	return nil
}
