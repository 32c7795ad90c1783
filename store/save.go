package store

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/classify"
)

// Message is one message read from a bounce mailbox, with what the
// classifier made of it.
type Message struct {
	Mailbox     string // stable mailbox key, e.g. "bounces@127.0.0.1:1143/INBOX"
	UIDValidity uint32
	UID         uint32
	// SHA256 is the hash of the raw message with line ends normalised to
	// CRLF: the same message read from another mailbox, or again after a
	// UIDVALIDITY change, has the same one.
	SHA256       [32]byte
	Size         int
	MessageID    string    // the bounce's own Message-ID header
	InternalDate time.Time // arrival in the mailbox (IMAP INTERNALDATE); zero: now
	Report       *classify.Report
	// ParseError says why the message could not be classified; Report is
	// nil then.
	ParseError string
	// Trust, when set, holds the trust policy's verdict on each of
	// Report.Recipients (same index): an unverified recipient's row is
	// recorded with verified false and asks for no suppression. Empty:
	// no policy was applied (verified is NULL).
	Trust []Trust
}

// SaveResult counts what a SaveBatch call wrote.
type SaveResult struct {
	Messages     int // messages stored
	Duplicates   int // messages seen before (or twice in the batch): nothing written for them
	Bounces      int // bounce rows (failed recipients) stored
	Suppressions int // suppressions added or upgraded
	Removed      int // suppressions closed because they expired
	Events       int // outbox events written
}

// Text limits: what a report field may hold, in bytes. Longer text is cut.
const (
	maxShort      = 998  // a header line (RFC 5322 §2.1.1)
	maxDiagnostic = 8192 // a diagnostic or parse error
)

// insertMessagesSQL inserts the messages of a batch that are new and
// returns their ids; a message seen before (either unique key) is skipped,
// and one that a concurrent transaction is inserting is waited for.
const insertMessagesSQL = `
INSERT INTO source_messages (sha256, mailbox, uid_validity, uid, message_id, size, kind, from_header,
    subject, reporting_mta, arrival_date, feedback_type, received_at, parse_error, processed_at)
SELECT u.*, $15::timestamptz
FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::int[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::timestamptz[], $14::text[]) AS u
ON CONFLICT DO NOTHING
RETURNING id, sha256`

// bounceCopyColumns are the columns bounceRow fills, in order.
var bounceCopyColumns = []string{"id", "source_id", "address", "address_raw", "domain", "original_recipient",
	"kind", "action", "command", "status", "smtp_code", "diagnostic", "remote_mta", "last_attempt", "category",
	"severity", "suppress", "rule", "original_source", "original_message_id", "list_id", "campaign_id",
	"campaign", "original_from", "original_to", "original_subject", "original_auto_reply", "occurred_at",
	"created_at", "verified", "verified_by", "subscriber_id"}

// bounceIDsSQL takes ids for bounce rows from their sequence: COPY writes
// the ids given, so that suppressions can name their evidence without
// reading the rows back. The ids of rows not written (their message was
// seen before) are skipped.
const bounceIDsSQL = `
SELECT nextval('bounces_id_seq') FROM generate_series(1, $1)`

// expirySweep is how many addresses with lapsed suppressions a batch closes
// by the way.
const expirySweep = 100

// SaveBatch stores a batch of processed messages in one transaction: the
// messages, one bounce row per failed recipient, the suppressions the
// policy decides, the list memberships they change, and one outbox event
// per bounce row and per suppression change. A message seen before (same
// mailbox, UIDVALIDITY and UID, or the same SHA256 in any mailbox) writes
// nothing, so saving a batch again changes nothing. Safe to call
// concurrently with overlapping batches.
func (db *DB) SaveBatch(ctx context.Context, msgs []Message) (SaveResult, error) {
	return db.save(ctx, msgs, "", nil)
}

// SaveBatchCheckpoint is SaveBatch that also records mailbox's checkpoint
// in the same transaction, so the batch and the position after it are
// committed together.
func (db *DB) SaveBatchCheckpoint(ctx context.Context, msgs []Message, mailbox string, cp Checkpoint) (SaveResult, error) {
	if mailbox == "" {
		return SaveResult{}, fmt.Errorf("%w: empty mailbox", ErrInvalid)
	}
	return db.save(ctx, msgs, mailbox, &cp)
}

// pendingBounce is a bounce row to insert and what the policy needs of it.
type pendingBounce struct {
	msg      *Message
	rcpt     *classify.Recipient
	address  string
	domain   string
	at       time.Time
	sourceID int64 // set when its message is inserted
	bounceID int64
	trust    *Trust // the trust policy's verdict, or nil
}

// save is SaveBatch and SaveBatchCheckpoint (cp nil for the former): what
// can be worked out before talking to the server, then one transaction
// (batchSave.run).
func (db *DB) save(ctx context.Context, msgs []Message, cpMailbox string, cp *Checkpoint) (SaveResult, error) {
	batch, dups, err := uniqueMessages(msgs)
	if err != nil {
		return SaveResult{}, err
	}
	s := db.newBatchSave(batch, db.clock())
	s.cpMailbox, s.cp = cpMailbox, cp
	var res SaveResult
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		res, err = s.run(ctx, tx)
		return err
	})
	if err != nil {
		return SaveResult{}, fmt.Errorf("store: save batch of %d messages: %w", len(msgs), mapErr(err))
	}
	res.Duplicates += dups
	return res, nil
}

// uniqueMessages validates msgs and returns them without repeats (same
// hash, or same mailbox, UIDVALIDITY and UID), sorted by hash: savers of
// overlapping batches then meet on the unique indexes in one order, and
// cannot deadlock there. dups counts the repeats.
func uniqueMessages(msgs []Message) (batch []*Message, dups int, err error) {
	type uidKey struct {
		mailbox string
		v, uid  uint32
	}
	seenSum := map[[32]byte]bool{}
	seenUID := map[uidKey]bool{}
	batch = make([]*Message, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.Mailbox == "" || m.SHA256 == ([32]byte{}) {
			return nil, 0, fmt.Errorf("%w: message %d of the batch (uid %d): mailbox and SHA256 are required", ErrInvalid, i, m.UID)
		}
		if m.Report == nil && m.ParseError == "" {
			return nil, 0, fmt.Errorf("%w: message uid %d in %s: neither report nor parse error", ErrInvalid, m.UID, m.Mailbox)
		}
		k := uidKey{m.Mailbox, m.UIDValidity, m.UID}
		if seenSum[m.SHA256] || seenUID[k] {
			dups++
			continue
		}
		seenSum[m.SHA256], seenUID[k] = true, true
		batch = append(batch, m)
	}
	slices.SortFunc(batch, func(a, b *Message) int { return bytes.Compare(a.SHA256[:], b.SHA256[:]) })
	return batch, dups, nil
}

// batchSave is one SaveBatch transaction: what it writes, and what its
// first round trip read.
type batchSave struct {
	db        *DB
	now       time.Time
	batch     []*Message
	pend      []pendingBounce // the bounce rows the messages would add
	cands     []candidate     // the suppressions the policy asks for them
	candPend  []int           // cands[k] is for pend[candPend[k]]
	addrs     []string        // the addresses of cands, locked
	cpMailbox string
	cp        *Checkpoint // also saved when set

	policy    *policyRun
	sourceIDs map[[32]byte]int64 // the messages inserted, by hash
	bounceIDs []int64            // reserved, one per pend
	sweep     []string           // addresses with lapsed suppressions
}

// newBatchSave prepares the rows of batch and what the policy asks of
// them; which messages are new (the others add nothing) is known after
// the first round trip.
func (db *DB) newBatchSave(batch []*Message, now time.Time) *batchSave {
	s := &batchSave{db: db, now: now, batch: batch, pend: pendingBounces(batch, now)}
	s.cands, s.candPend = db.candidates(s.pend, now)
	seen := map[string]bool{}
	for i := range s.cands {
		if a := s.cands[i].address; !seen[a] {
			seen[a] = true
			s.addrs = append(s.addrs, a)
		}
	}
	s.policy = db.newPolicyRun(now, s.cands, nil)
	return s
}

// pendingBounces returns the bounce rows of batch: one per failed
// recipient of each message.
func pendingBounces(batch []*Message, now time.Time) []pendingBounce {
	var pend []pendingBounce
	for _, m := range batch {
		if m.Report == nil {
			continue
		}
		at := now
		if !m.InternalDate.IsZero() {
			at = m.InternalDate.UTC().Truncate(time.Microsecond)
		}
		seen := map[string]bool{}
		for i := range m.Report.Recipients {
			r := &m.Report.Recipients[i]
			if !r.Failed() {
				continue
			}
			addr, domain := NormalizeAddress(r.Address)
			if seen[addr] {
				continue // one row per message and recipient
			}
			seen[addr] = true
			pend = append(pend, pendingBounce{msg: m, rcpt: r, address: addr, domain: domain, at: at, trust: m.trustOf(i)})
		}
	}
	return pend
}

// run writes the batch in tx.
func (s *batchSave) run(ctx context.Context, tx pgx.Tx) (SaveResult, error) {
	if err := s.readFirst(ctx, tx); err != nil {
		return SaveResult{}, err
	}
	rows := s.newRows()
	if err := s.sweepOthers(ctx, tx); err != nil {
		return SaveResult{}, err
	}
	res := SaveResult{Messages: len(s.sourceIDs), Duplicates: len(s.batch) - len(s.sourceIDs)}
	if len(rows) > 0 {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"bounces"}, bounceCopyColumns,
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) { return bounceRow(&s.pend[rows[i]], s.now), nil }))
		if err != nil {
			return SaveResult{}, fmt.Errorf("insert %d bounces: %w", len(rows), err)
		}
		res.Bounces = int(n)
	}
	// The bounce events come first in the outbox, then the policy's.
	ev := &outboxEvents{}
	for _, i := range rows {
		if err := ev.add(bounceSubject(s.pend[i].rcpt), bouncePayload(&s.pend[i]), s.now); err != nil {
			return SaveResult{}, err
		}
	}
	out, err := s.policy.write(ctx, tx, ev)
	if err != nil {
		return SaveResult{}, fmt.Errorf("apply the policy to %d bounces: %w", len(rows), err)
	}
	res.Suppressions, res.Removed, res.Events = out.added, out.removed, out.events
	return res, nil
}

// readFirst is the transaction's first round trip: the checkpoint, the
// locks of the addresses the policy may change (before any message or
// row, so that no saver waits for a lock while holding rows another may
// wait for), the new messages, ids for the bounce rows, the addresses
// whose soft suppressions lapsed (closed a few per batch), and the
// policy's reads.
func (s *batchSave) readFirst(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	// The checkpoint's row first: a saver that waits for it holds
	// nothing another may wait for.
	if s.cp != nil {
		b.Queue(saveCheckpointSQL, s.cpMailbox, int64(s.cp.UIDValidity), int64(s.cp.LastUID), s.now)
	}
	if len(s.addrs) > 0 {
		queueLock(b, s.addrs)
	}
	s.sourceIDs = map[[32]byte]int64{}
	if len(s.batch) > 0 {
		b.Queue(insertMessagesSQL, messageColumns(s.batch, s.now)...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id int64
				var sum []byte
				if err := rows.Scan(&id, &sum); err != nil {
					return err
				}
				s.sourceIDs[[32]byte(sum)] = id
			}
			return rows.Err()
		})
	}
	b.Queue(expiredAddressesSQL, s.now, expirySweep).Query(func(rows pgx.Rows) error {
		var err error
		s.sweep, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if len(s.pend) > 0 {
		b.Queue(bounceIDsSQL, len(s.pend)).Query(func(rows pgx.Rows) error {
			var err error
			s.bounceIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
			return err
		})
	}
	if len(s.addrs) > 0 {
		s.policy.queueRead(b, s.addrs)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("insert %d messages: %w", len(s.batch), err)
	}
	return nil
}

// newRows gives the bounce rows of new messages their ids and returns
// their indexes in pend; the policy forgets the others.
func (s *batchSave) newRows() []int {
	var rows []int
	for i := range s.pend {
		p := &s.pend[i]
		id, ok := s.sourceIDs[p.msg.SHA256]
		if !ok {
			continue
		}
		p.sourceID, p.bounceID = id, s.bounceIDs[i]
		rows = append(rows, i)
	}
	for k, i := range s.candPend {
		s.cands[k].dropped = s.pend[i].sourceID == 0
	}
	s.db.addBatchSoftDays(s.policy, s.pend, rows)
	return rows
}

// sweepOthers closes the expired suppressions of the lapsed addresses
// that the batch did not lock, if their locks are free.
func (s *batchSave) sweepOthers(ctx context.Context, tx pgx.Tx) error {
	locked := map[string]bool{}
	for _, a := range s.addrs {
		locked[a] = true
	}
	var extra []string
	for _, a := range s.sweep {
		if !locked[a] {
			extra = append(extra, a)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	s.policy.queueSweep(b, extra)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("expire suppressions of %d addresses: %w", len(extra), err)
	}
	return nil
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	return &t
}

// messageColumns returns the arrays of insertMessagesSQL.
func messageColumns(batch []*Message, now time.Time) []any {
	n := len(batch)
	sums := make([][]byte, n)
	mailbox, msgID, from, subject, rmta, fbt, perr := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	uidv, uid := make([]int64, n), make([]int64, n)
	size := make([]int32, n)
	kind := make([]*string, n)
	arrival, received := make([]*time.Time, n), make([]*time.Time, n)
	for i, m := range batch {
		sums[i] = m.SHA256[:]
		mailbox[i] = cleanText(m.Mailbox, maxShort)
		uidv[i], uid[i] = int64(m.UIDValidity), int64(m.UID)
		msgID[i] = cleanText(m.MessageID, maxShort)
		size[i] = int32(min(m.Size, 1<<31-1))
		received[i] = optTime(m.InternalDate)
		perr[i] = cleanText(m.ParseError, maxDiagnostic)
		if r := m.Report; r != nil {
			k := string(r.Kind)
			kind[i] = &k
			from[i], subject[i] = cleanText(r.From, maxShort), cleanText(r.Subject, maxShort)
			rmta[i], fbt[i] = cleanText(r.ReportingMTA, maxShort), cleanText(r.FeedbackType, maxShort)
			arrival[i] = optTime(r.ArrivalDate)
			if msgID[i] == "" {
				msgID[i] = cleanText(r.MessageID, maxShort)
			}
		}
	}
	return []any{sums, mailbox, uidv, uid, msgID, size, kind, from, subject, rmta, arrival, fbt, received, perr, now}
}

// bounceRow is p's row of bounceCopyColumns.
func bounceRow(p *pendingBounce, now time.Time) []any {
	r, rep := p.rcpt, p.msg.Report
	o := &rep.Original
	var campaign map[string]string // NULL when there is none
	if len(o.Campaign) > 0 {
		campaign = make(map[string]string, len(o.Campaign))
		for k, v := range o.Campaign {
			campaign[cleanText(k, maxShort)] = cleanText(v, maxShort)
		}
	}
	return []any{p.bounceID, p.sourceID, p.address, cleanText(r.Address, maxShort), p.domain,
		cleanText(r.OriginalAddress, maxShort), string(rep.Kind), cleanText(r.Action, maxShort),
		cleanText(r.Command, maxShort), cleanText(r.Status, maxShort), int32(r.SMTPCode),
		cleanText(r.Diagnostic, maxDiagnostic), cleanText(r.RemoteMTA, maxShort), optTime(r.LastAttempt),
		string(r.Category), string(cmp.Or(r.Severity, classify.None)), r.Suppress, cleanText(r.Rule, maxShort),
		cleanText(o.Source, maxShort), cleanText(o.MessageID, maxShort), cleanText(o.ListID, maxShort),
		cleanText(o.CampaignID, maxShort), campaign, cleanText(o.From, maxShort), cleanText(o.To, maxShort),
		cleanText(o.Subject, maxShort), o.AutoReply, p.at, now, p.verified(), p.verifiedBy(),
		cleanText(o.SubscriberID, maxShort)}
}

// bounceSubject is bounce.<severity>.<category>.
func bounceSubject(r *classify.Recipient) string {
	return SubjectBouncePrefix + string(cmp.Or(r.Severity, classify.None)) + "." + string(cmp.Or(r.Category, classify.Unknown))
}

func bouncePayload(p *pendingBounce) *Payload {
	r, rep := p.rcpt, p.msg.Report
	return &Payload{
		EventID:           bounceMsgID(p.msg.SHA256, p.address),
		Type:              "bounce",
		Time:              p.at,
		Recipient:         p.address,
		Domain:            p.domain,
		Status:            cleanText(r.Status, maxShort),
		SMTPCode:          r.SMTPCode,
		Category:          string(r.Category),
		Severity:          string(cmp.Or(r.Severity, classify.None)),
		Suppress:          r.Suppress,
		ListID:            cleanText(rep.Original.ListID, maxShort),
		CampaignID:        cleanText(rep.Original.CampaignID, maxShort),
		SubscriberID:      cleanText(rep.Original.SubscriberID, maxShort),
		OriginalMessageID: cleanText(rep.Original.MessageID, maxShort),
		Diagnostic:        cleanText(r.Diagnostic, maxDiagnostic),
		Mailbox:           p.msg.Mailbox,
		Kind:              string(rep.Kind),
		Action:            cleanText(r.Action, maxShort),
		Rule:              cleanText(r.Rule, maxShort),
		Verified:          p.verified(),
		VerifiedBy:        p.verifiedBy(),
	}
}

// candidates returns the suppressions the policy asks for the bounce rows
// in pend (each naming its row's id, filled in later), and for each the
// index of its row.
func (db *DB) candidates(pend []pendingBounce, now time.Time) ([]candidate, []int) {
	var cands []candidate
	var candPend []int
	failed := map[*Message]int{} // failed recipients per message
	for i := range pend {
		failed[pend[i].msg]++
	}
	for i := range pend {
		p := &pend[i]
		if failed[p.msg] > db.policy.MaxRecipients {
			continue // recorded, never acted on (Policy.MaxRecipients)
		}
		orig := &p.msg.Report.Original
		kind, reason, listID := db.policy.judge(p.rcpt, p.msg.Report)
		if kind == candNone || p.domain == "" || p.untrusted() { // no address to suppress, or not proven ours: the row is the record
			continue
		}
		c := candidate{
			address: p.address, addressRaw: cleanText(p.rcpt.Address, maxShort), domain: p.domain,
			listID: listID, reason: reason, category: p.rcpt.Category,
			bounceIDp: &p.bounceID,
			soft:      kind == candSoft, at: p.at,
			ev: evidence{
				Status: cleanText(p.rcpt.Status, maxShort), SMTPCode: p.rcpt.SMTPCode,
				Severity: string(p.rcpt.Severity), Suppress: p.rcpt.Suppress,
				CampaignID:        cleanText(orig.CampaignID, maxShort),
				SubscriberID:      cleanText(orig.SubscriberID, maxShort),
				OriginalMessageID: cleanText(orig.MessageID, maxShort),
				Diagnostic:        cleanText(p.rcpt.Diagnostic, maxDiagnostic),
				Mailbox:           p.msg.Mailbox,
			},
		}
		if c.soft {
			c.expires = now.Add(db.policy.SoftExpiry)
		}
		cands = append(cands, c)
		candPend = append(candPend, i)
	}
	return cands, candPend
}

// addBatchSoftDays adds to run's soft-day counts the days of the bounce
// rows about to be written (pend[i] for i in rows): softDaysSQL read only
// rows already there. It counts what softDaysSQL counts.
func (db *DB) addBatchSoftDays(run *policyRun, pend []pendingBounce, rows []int) {
	if db.policy.SoftThreshold <= 0 {
		return
	}
	var byAddr map[string][]int
	for k := range run.cands {
		c := &run.cands[k]
		if !c.soft || c.dropped {
			continue
		}
		if byAddr == nil {
			byAddr = map[string][]int{}
			for _, i := range rows {
				p := &pend[i]
				if db.policy.isSoft(p.rcpt.Category) && !p.msg.Report.Original.AutoReply {
					byAddr[p.address] = append(byAddr[p.address], i)
				}
			}
		}
		for _, i := range byAddr[c.address] {
			p := &pend[i]
			if c.listID == "" || cleanText(p.msg.Report.Original.ListID, maxShort) == c.listID {
				run.softDays[k] = append(run.softDays[k], p.at)
			}
		}
	}
}
