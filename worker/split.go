package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/bouncer-mail/bouncer/store"
)

// maxSaveAttempts is how many times in a row a batch may fail to save
// with an error that looks transient (a timeout, a lost connection) before
// the worker stops believing it and splits the batch as it does at once
// for any other error: a message whose save always times out must not
// stall the mailbox any more than one Postgres rejects.
const maxSaveAttempts = 3

// saveTimeout bounds one save transaction.
const saveTimeout = 30 * time.Second

// saveStrikes counts the consecutive failed saves of the batch starting at
// one UID. It outlives a session (a failed save ends the session, and the
// next one fetches the same batch again), but not the lease.
type saveStrikes struct {
	uidValidity uint32
	first       uint32
	n           int
}

// fail counts a failed save of the batch starting at first, and reports
// whether the batch has now failed maxSaveAttempts times.
func (st *saveStrikes) fail(uidValidity, first uint32) bool {
	if st.uidValidity != uidValidity || st.first != first {
		*st = saveStrikes{uidValidity: uidValidity, first: first}
	}
	st.n++
	return st.n >= maxSaveAttempts
}

// saveAll saves msgs in one transaction when it can. When the save fails
// for a reason that is not transient (or when forced, after
// maxSaveAttempts failures), it splits msgs in halves and saves each,
// down to the single message at fault, which saveAlone records as
// quarantined; under force, a transient-looking error splits the batch
// only while Postgres answers a ping. Saves that succeed stay saved: the
// store is idempotent, so a transient error part way through only means
// the next attempt finds some messages recorded already. msgs is changed in place: a quarantined
// message gets its ParseError, so that finish moves it to Quarantine.
func (s *session) saveAll(ctx context.Context, msgs []store.Message, forced bool) (store.SaveResult, error) {
	res, err := s.saveOnce(ctx, msgs)
	if err == nil {
		return res, nil
	}
	if store.IsTransient(err) {
		if !forced {
			return store.SaveResult{}, err
		}
		// An outage is nobody's fault: no message is blamed for it, and
		// the batch is retried as a whole.
		if perr := s.ping(ctx); perr != nil {
			return store.SaveResult{}, fmt.Errorf("%w (and Postgres does not answer: %v)", err, perr)
		}
	}
	if len(msgs) == 1 {
		return s.saveAlone(ctx, &msgs[0], err)
	}
	s.w.metrics.batchSplits.Inc()
	s.log.Info("batch save failed; splitting it to find the message at fault",
		"messages", len(msgs), "uid_first", msgs[0].UID, "uid_last", msgs[len(msgs)-1].UID, "err", err)
	mid := len(msgs) / 2
	a, err := s.saveAll(ctx, msgs[:mid], forced)
	if err != nil {
		return store.SaveResult{}, err
	}
	b, err := s.saveAll(ctx, msgs[mid:], forced)
	if err != nil {
		return store.SaveResult{}, err
	}
	return addResults(a, b), nil
}

// saveOnce is one save transaction, bounded by saveTimeout. It runs to its
// end even when ctx ends meanwhile (connGuard bounds that).
func (s *session) saveOnce(ctx context.Context, msgs []store.Message) (store.SaveResult, error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	return s.w.db.SaveBatch(sctx, msgs)
}

// saveAlone handles the one message whose save failed with cause: it is
// recorded as a message that could not be saved (its error where parse
// errors go, source_messages.parse_error) and marked for Quarantine.
func (s *session) saveAlone(ctx context.Context, m *store.Message, cause error) (store.SaveResult, error) {
	m.Report = nil
	m.ParseError = "save failed: " + cause.Error()
	s.w.metrics.saveQuarantined.Inc()
	s.log.Warn("message could not be saved; quarantined", "uid", m.UID, "err", cause)
	res, err := s.saveOnce(ctx, []store.Message{*m})
	if err != nil && store.IsTransient(err) {
		return store.SaveResult{}, fmt.Errorf("record quarantined uid %d: %w", m.UID, err)
	}
	if err != nil {
		// Not even the bare record can be written: the message still goes
		// to Quarantine (nothing is lost), and this line is its record.
		s.log.Error("quarantined message has no record in Postgres", "uid", m.UID, "err", err)
		return store.SaveResult{}, nil
	}
	return res, nil
}

// ping checks that Postgres answers.
func (s *session) ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.w.db.Ping(pctx)
}

func addResults(a, b store.SaveResult) store.SaveResult {
	return store.SaveResult{
		Messages: a.Messages + b.Messages, Duplicates: a.Duplicates + b.Duplicates,
		Bounces: a.Bounces + b.Bounces, Suppressions: a.Suppressions + b.Suppressions,
		Removed: a.Removed + b.Removed, Events: a.Events + b.Events,
	}
}
