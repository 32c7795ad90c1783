package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

const insertMessagesSQL = `
INSERT INTO source_messages (sha256, mailbox, uid_validity, uid, message_id, size, kind, from_header,
    subject, reporting_mta, arrival_date, feedback_type, received_at, parse_error, processed_at)
SELECT u.*, $15::timestamptz
FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::int[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::timestamptz[], $14::text[]) AS u
ON CONFLICT DO NOTHING
RETURNING id, sha256`

// seenMessagesSQL returns the (1-based) indexes of the messages of a batch
// (messageKeys) that were saved before: two index lookups each (an OR of
// EXISTS makes the planner read the whole table).
const seenMessagesSQL = `
SELECT u.i FROM unnest($1::bytea[]) WITH ORDINALITY AS u(sha256, i)
JOIN source_messages m ON m.sha256 = u.sha256
UNION
SELECT u.i FROM unnest($2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS u(mailbox, uid_validity, uid, i)
JOIN source_messages m ON m.mailbox = u.mailbox AND m.uid_validity = u.uid_validity AND m.uid = u.uid`

const allocMessageIDsSQL = `
SELECT nextval('source_messages_id_seq') FROM generate_series(1, $1)`

// errMessageRace says that another transaction inserted a message of the
// batch after this one looked.
var errMessageRace = errors.New("a message of the batch was saved concurrently")

// messageCopyColumns are the columns appendMessage fills, in order.
var messageCopyColumns = []string{"id", "sha256", "mailbox", "uid_validity", "uid", "message_id", "size", "kind",
	"from_header", "subject", "reporting_mta", "arrival_date", "feedback_type", "received_at", "parse_error",
	"processed_at"}

// bounceCopyColumns are the columns bounceValues fills, in order.
var bounceCopyColumns = []string{"id", "source_id", "address", "address_raw", "domain", "original_recipient",
	"kind", "action", "command", "status", "smtp_code", "diagnostic", "remote_mta", "last_attempt", "category",
	"severity", "suppress", "rule", "original_source", "original_message_id", "list_id", "campaign_id",
	"campaign", "original_from", "original_to", "original_subject", "original_auto_reply", "occurred_at",
	"created_at"}

// allocBounceIDsSQL reserves ids for bounce rows: COPY writes the ids
// given, so that suppressions and events can name their rows without
// reading them back.
const allocBounceIDsSQL = `
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
	sourceID int64
	bounceID int64 // set when inserted
}

func (db *DB) save(ctx context.Context, msgs []Message, cpMailbox string, cp *Checkpoint) (SaveResult, error) {
	var res SaveResult
	now := db.clock()

	// Validate, drop repeats within the batch, and sort by hash: savers of
	// overlapping batches then meet on the unique indexes in one order, and
	// cannot deadlock there.
	batch := make([]*Message, 0, len(msgs))
	seenSum := map[[32]byte]bool{}
	type uidKey struct {
		mailbox string
		v, uid  uint32
	}
	seenUID := map[uidKey]bool{}
	for i := range msgs {
		m := &msgs[i]
		if m.Mailbox == "" || m.SHA256 == ([32]byte{}) {
			return res, fmt.Errorf("%w: message %d of the batch (uid %d): mailbox and SHA256 are required", ErrInvalid, i, m.UID)
		}
		if m.Report == nil && m.ParseError == "" {
			return res, fmt.Errorf("%w: message uid %d in %s: neither report nor parse error", ErrInvalid, m.UID, m.Mailbox)
		}
		k := uidKey{m.Mailbox, m.UIDValidity, m.UID}
		if seenSum[m.SHA256] || seenUID[k] {
			res.Duplicates++
			continue
		}
		seenSum[m.SHA256], seenUID[k] = true, true
		batch = append(batch, m)
	}
	slices.SortFunc(batch, func(a, b *Message) int { return bytes.Compare(a.SHA256[:], b.SHA256[:]) })

	// Before any I/O: the bounce rows the messages would add and what the
	// policy asks of them. Which messages are new (the others add nothing)
	// is known after the first round trip.
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
			pend = append(pend, pendingBounce{msg: m, rcpt: r, address: addr, domain: domain, at: at})
		}
	}
	// Each bounce row makes at most two events; expiry adds a few.
	if 2*len(pend)+expirySweep >= maxOutboxRow {
		return res, fmt.Errorf("%w: %d failed recipients in one batch, split it", ErrInvalid, len(pend))
	}
	cands, candPend := db.candidates(pend, now)
	lockSet := map[string]bool{}
	var addrs []string
	for i := range cands {
		if a := cands[i].address; !lockSet[a] {
			lockSet[a] = true
			addrs = append(addrs, a)
		}
	}

	dupsInBatch := res.Duplicates
	// Meanwhile (from here to the first round trip's end), the rows and
	// events as they are when every message is new.
	var pre *batchRows
	built := make(chan struct{})
	go func() {
		defer close(built)
		pre = buildBatchRows(batch, pend, now)
	}()
	defer func() {
		<-built
		pre.release()
	}()
	// The messages go in by COPY, with ids reserved in the first round
	// trip. Most batches are all new (a worker reads past its
	// checkpoint), so the round trip looks up which were seen before only
	// when the last batch saved met some (db.lookFirst). A message seen
	// before that was not looked up, or that a concurrent saver inserted
	// in between, makes the COPY fail on a unique index: the batch is then
	// saved again the slow way, INSERT ... ON CONFLICT DO NOTHING.
	fast, look := true, db.lookFirst.Load()
	var err error
	for {
		err = db.inTx(ctx, func(tx *txn) error {
			// Round trip 1: the checkpoint, lock the addresses the policy
			// may change (before any message or row, so that no saver
			// waits for a lock while holding rows another may wait for),
			// which messages are new (or insert them), reserve ids, and
			// the policy's reads. Addresses whose soft suppressions lapsed
			// come too (closed below, a few per batch).
			res = SaveResult{Duplicates: dupsInBatch}
			run := db.newPolicyRun(now, cands, nil)
			bySum := map[[32]byte]int64{}
			var seen []int64
			var sweep []string
			var msgIDs, bounceIDs []int64
			b := &pgx.Batch{}
			// The checkpoint's row first: a saver that waits for it
			// holds nothing another may wait for.
			if cp != nil {
				b.Queue(saveCheckpointSQL, cpMailbox, int64(cp.UIDValidity), int64(cp.LastUID), now)
			}
			if len(addrs) > 0 {
				queueLock(b, addrs)
			}
			if len(batch) > 0 && fast {
				if look {
					b.Queue(seenMessagesSQL, messageKeys(batch)...).Query(func(rows pgx.Rows) error {
						var err error
						seen, err = pgx.CollectRows(rows, pgx.RowTo[int64])
						return err
					})
				}
				b.Queue(allocMessageIDsSQL, len(batch)).Query(func(rows pgx.Rows) error {
					var err error
					msgIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
					return err
				})
			} else if len(batch) > 0 {
				b.Queue(insertMessagesSQL, messageColumns(batch, now)...).Query(func(rows pgx.Rows) error {
					for rows.Next() {
						var id int64
						var sum []byte
						if err := rows.Scan(&id, &sum); err != nil {
							return err
						}
						bySum[[32]byte(sum)] = id
					}
					return rows.Err()
				})
			}
			b.Queue(expiredAddressesSQL, now, expirySweep).Query(func(rows pgx.Rows) error {
				var err error
				sweep, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			if len(pend) > 0 {
				b.Queue(allocBounceIDsSQL, len(pend)).Query(func(rows pgx.Rows) error {
					var err error
					bounceIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
					return err
				})
			}
			if len(addrs) > 0 {
				run.queueRead(b, addrs)
			}
			err := tx.SendBatch(ctx, b).Close()
			<-built
			pre.ev.reset(pre.evMark) // the events of an attempt before go
			if err != nil {
				return fmt.Errorf("insert %d messages: %w", len(batch), err)
			}
			if pre.err != nil {
				return pre.err
			}
			// Which messages are new, with their reserved ids.
			var msgData *copyData
			if len(batch) > 0 && fast {
				old := make([]bool, len(batch))
				for _, i := range seen {
					old[i-1] = true
				}
				msgData = pre.msgs
				if len(seen) > 0 {
					msgData = newCopyData(len(batch) * 300)
					defer putBuf(msgData.b)
				}
				for k, m := range batch {
					if old[k] {
						continue
					}
					bySum[m.SHA256] = msgIDs[k]
					if len(seen) > 0 {
						appendMessage(msgData, m, msgIDs[k], now)
					} else {
						msgData.setInt8(pre.msgIDAt[k], msgIDs[k])
					}
				}
			}
			res.Messages = len(bySum)
			res.Duplicates += len(batch) - len(bySum)

			// The rows of new messages get the reserved ids; the policy
			// forgets the others.
			var rows []int // indexes in pend
			for i := range pend {
				p := &pend[i]
				p.sourceID, p.bounceID = 0, 0
				id, ok := bySum[p.msg.SHA256]
				if !ok {
					continue
				}
				p.sourceID, p.bounceID = id, bounceIDs[len(rows)]
				rows = append(rows, i)
			}
			for k, i := range candPend {
				cands[k].dropped = pend[i].sourceID == 0
			}
			db.addBatchSoftDays(run, pend, rows)

			// Expired suppressions of addresses not locked above, if their
			// locks are free.
			var extra []string
			for _, a := range sweep {
				if !lockSet[a] {
					extra = append(extra, a)
				}
			}
			if len(extra) > 0 {
				b := &pgx.Batch{}
				run.queueSweep(b, extra)
				if err := tx.SendBatch(ctx, b).Close(); err != nil {
					return fmt.Errorf("expire suppressions of %d addresses: %w", len(extra), err)
				}
			}

			// The bounce rows, whose events join those of the policy in
			// the transaction's one outbox row.
			ev := &pre.ev
			bounceData := pre.bounces
			if len(rows) < len(pend) {
				bounceData = newCopyData(len(rows) * 600)
				defer putBuf(bounceData.b)
				ev = &outboxRows{}
				defer ev.release()
				for _, i := range rows {
					appendBounce(bounceData, &pend[i], now)
					if err := ev.add(bounceSubject(pend[i].rcpt), bouncePayload(&pend[i])); err != nil {
						return err
					}
				}
			} else {
				for i := range pend {
					bounceData.setInt8(pre.bounceAt[i][0], pend[i].bounceID)
					bounceData.setInt8(pre.bounceAt[i][1], pend[i].sourceID)
				}
			}

			// The policy decides while the messages and bounce rows go in
			// by COPY.
			var plan *policyPlan
			planned := make(chan struct{})
			go func() {
				defer close(planned)
				plan = run.plan(ev)
				ev.seal() // compressed while the rows go in
			}()
			defer func() { <-planned }()
			if msgData != nil && len(bySum) > 0 {
				if _, err := copyIn(ctx, tx, "source_messages", messageCopyColumns, msgData.bytes()); err != nil {
					if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23505" {
						return fmt.Errorf("%w: %w", errMessageRace, err)
					}
					return fmt.Errorf("insert %d messages: %w", len(bySum), err)
				}
			}
			if len(rows) > 0 {
				n, err := copyIn(ctx, tx, "bounces", bounceCopyColumns, bounceData.bytes())
				if err != nil {
					return fmt.Errorf("insert %d bounces: %w", len(rows), err)
				}
				res.Bounces = int(n)
			}
			<-planned
			out, err := run.exec(ctx, tx, plan)
			if err != nil {
				return fmt.Errorf("apply the policy to %d bounces: %w", len(rows), err)
			}
			res.Suppressions, res.Removed, res.Events = out.added, out.removed, out.events
			return nil
		})
		if fast && errors.Is(err, errMessageRace) {
			fast = false
			continue
		}
		break
	}
	if err != nil {
		return SaveResult{}, fmt.Errorf("store: save batch of %d messages: %w", len(msgs), mapErr(err))
	}
	// Messages saved before come in runs (a replay after a crash or a
	// UIDVALIDITY change, a second worker): look them up first while they
	// do.
	db.lookFirst.Store(res.Duplicates > dupsInBatch)
	return res, nil
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

// batchRows are the COPY data of a batch's messages and bounce rows, and
// the events of the rows, built while the first round trip is under way
// for the case where every message is new: the ids that round trip
// reserves are then written into place.
type batchRows struct {
	msgs     *copyData // nil unless asked for
	msgIDAt  []int     // where batch[k]'s id goes in msgs
	bounces  *copyData
	bounceAt [][2]int // where pend[i]'s id and source_id go in bounces
	ev       outboxRows
	evMark   outboxMark // ev holds the bounce events up to here
	err      error
}

func buildBatchRows(batch []*Message, pend []pendingBounce, now time.Time) *batchRows {
	r := &batchRows{}
	if len(batch) > 0 {
		r.msgs = newCopyData(len(batch) * 300)
		r.msgIDAt = make([]int, len(batch))
		for k, m := range batch {
			r.msgIDAt[k] = appendMessage(r.msgs, m, 0, now)
		}
	}
	if len(pend) > 0 {
		r.bounces = newCopyData(len(pend) * 600)
		r.bounceAt = make([][2]int, len(pend))
		// Each row makes a bounce event, and maybe a suppression event.
		r.ev.reserve(2*len(pend), bouncePayloadSize)
		for i := range pend {
			idAt, srcAt := appendBounce(r.bounces, &pend[i], now)
			r.bounceAt[i] = [2]int{idAt, srcAt}
			if err := r.ev.add(bounceSubject(pend[i].rcpt), bouncePayload(&pend[i])); err != nil {
				r.err = err
				break
			}
		}
	}
	r.evMark = r.ev.mark()
	return r
}

// release gives r's buffers back to bufPool.
func (r *batchRows) release() {
	if r.msgs != nil {
		putBuf(r.msgs.b)
	}
	if r.bounces != nil {
		putBuf(r.bounces.b)
	}
	r.ev.release()
}

// messageKeys returns the arrays of seenMessagesSQL.
func messageKeys(batch []*Message) []any {
	n := len(batch)
	sums, mailbox := make([][]byte, n), make([]string, n)
	uidv, uid := make([]int64, n), make([]int64, n)
	for i, m := range batch {
		sums[i] = m.SHA256[:]
		mailbox[i] = cleanText(m.Mailbox, maxShort)
		uidv[i], uid[i] = int64(m.UIDValidity), int64(m.UID)
	}
	return []any{sums, mailbox, uidv, uid}
}

// appendMessage appends m's row of messageCopyColumns to c; it holds what
// messageColumns gives insertMessagesSQL.
func appendMessage(c *copyData, m *Message, id int64, now time.Time) (idAt int) {
	c.row(len(messageCopyColumns))
	idAt = c.int8At()
	c.int8(id)
	c.bytea(m.SHA256[:])
	c.text(cleanText(m.Mailbox, maxShort))
	c.int8(int64(m.UIDValidity))
	c.int8(int64(m.UID))
	msgID := cleanText(m.MessageID, maxShort)
	r := m.Report
	if msgID == "" && r != nil {
		msgID = cleanText(r.MessageID, maxShort)
	}
	c.text(msgID)
	c.int4(int32(min(m.Size, 1<<31-1)))
	if r == nil {
		c.null()
		c.text("")
		c.text("")
		c.text("")
		c.null()
		c.text("")
	} else {
		c.text(string(r.Kind))
		c.text(cleanText(r.From, maxShort))
		c.text(cleanText(r.Subject, maxShort))
		c.text(cleanText(r.ReportingMTA, maxShort))
		c.optTimestamptz(r.ArrivalDate)
		c.text(cleanText(r.FeedbackType, maxShort))
	}
	c.optTimestamptz(m.InternalDate)
	c.text(cleanText(m.ParseError, maxDiagnostic))
	c.timestamptz(now)
	return idAt
}

// appendBounce appends p's row of bounceCopyColumns to c and returns where
// its id and source_id are (for copyData.setInt8).
func appendBounce(c *copyData, p *pendingBounce, now time.Time) (idAt, sourceAt int) {
	r, rep := p.rcpt, p.msg.Report
	o := &rep.Original
	c.row(len(bounceCopyColumns))
	idAt = c.int8At()
	c.int8(p.bounceID)
	sourceAt = c.int8At()
	c.int8(p.sourceID)
	c.text(p.address)
	c.text(cleanText(r.Address, maxShort))
	c.text(p.domain)
	c.text(cleanText(r.OriginalAddress, maxShort))
	c.text(string(rep.Kind))
	c.text(cleanText(r.Action, maxShort))
	c.text(cleanText(r.Command, maxShort))
	c.text(cleanText(r.Status, maxShort))
	c.int4(int32(r.SMTPCode))
	c.text(cleanText(r.Diagnostic, maxDiagnostic))
	c.text(cleanText(r.RemoteMTA, maxShort))
	c.optTimestamptz(r.LastAttempt)
	c.text(string(r.Category))
	c.text(string(cmp.Or(r.Severity, classify.None)))
	c.boolean(r.Suppress)
	c.text(cleanText(r.Rule, maxShort))
	c.text(cleanText(o.Source, maxShort))
	c.text(cleanText(o.MessageID, maxShort))
	c.text(cleanText(o.ListID, maxShort))
	c.text(cleanText(o.CampaignID, maxShort))
	if len(o.Campaign) > 0 {
		c.jsonb(campaignJSON(o.Campaign))
	} else {
		c.null()
	}
	c.text(cleanText(o.From, maxShort))
	c.text(cleanText(o.To, maxShort))
	c.text(cleanText(o.Subject, maxShort))
	c.boolean(o.AutoReply)
	c.timestamptz(p.at)
	c.timestamptz(now)
	return idAt, sourceAt
}

// campaignJSON is the campaign headers as a JSON object, keys and values
// cleaned.
func campaignJSON(m map[string]string) []byte {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[cleanText(k, maxShort)] = cleanText(v, maxShort)
	}
	keys := slices.Sorted(maps.Keys(c))
	j := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			j = append(j, ',')
		}
		j = appendJSONString(j, k)
		j = append(j, ':')
		j = appendJSONString(j, c[k])
	}
	return append(j, '}')
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
		OriginalMessageID: cleanText(rep.Original.MessageID, maxShort),
		Diagnostic:        cleanText(r.Diagnostic, maxDiagnostic),
		Mailbox:           p.msg.Mailbox,
		Kind:              string(rep.Kind),
		Action:            cleanText(r.Action, maxShort),
		Rule:              cleanText(r.Rule, maxShort),
	}
}

// candidates returns the suppressions the policy asks for the bounce rows
// in pend (each naming its row's id, filled in later), and for each the
// index of its row.
func (db *DB) candidates(pend []pendingBounce, now time.Time) ([]candidate, []int) {
	var cands []candidate
	var candPend []int
	for i := range pend {
		p := &pend[i]
		orig := &p.msg.Report.Original
		kind, reason, listID := db.policy.judge(p.rcpt, p.msg.Report)
		if kind == candNone || p.domain == "" { // no address to suppress: the row is the record
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
