package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bouncer-mail/bouncer/store"
)

// StreamName and StreamSubjects are fixed by DESIGN.md.
const StreamName = "BOUNCES"

// StreamSubjects are the subjects of the BOUNCES stream.
var StreamSubjects = []string{"bounce.>", "suppression.>"}

// dedupWindow is how long JetStream remembers a Nats-Msg-Id. It is longer
// than the server's default (2 min) so that a relay that crashed between
// the ack and marking its rows published still has its replay dropped
// after a slow restart.
const dedupWindow = 10 * time.Minute

// EnsureStream creates the BOUNCES stream or updates it to sc.
func EnsureStream(ctx context.Context, js jetstream.JetStream, sc StreamConfig) (jetstream.Stream, error) {
	cfg := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "bouncer: classified bounces and suppression changes",
		Subjects:    StreamSubjects,
		Storage:     jetstream.FileStorage,
		Replicas:    sc.Replicas,
		MaxAge:      sc.MaxAge,
		Duplicates:  dedupWindow,
	}
	switch sc.Retention {
	case "interest":
		cfg.Retention = jetstream.InterestPolicy
	case "workqueue":
		cfg.Retention = jetstream.WorkQueuePolicy
	default:
		cfg.Retention = jetstream.LimitsPolicy
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("worker: stream %s: %w", StreamName, err)
	}
	return s, nil
}

// relayBatch is how many outbox rows are published per round.
const relayBatch = 500

// relayTick is how often the relay looks at the outbox without being woken:
// for rows committed by other processes and after NATS comes back. The
// store offers no LISTEN/NOTIFY, so this is the fallback.
const relayTick = time.Second

// relay publishes outbox rows, oldest first, to JetStream with their
// Nats-Msg-Id, and marks them published once acknowledged. Only the holder
// of the outbox lease relays, so rows drain in order.
type relay struct {
	w    *Worker
	js   jetstream.JetStream
	wake chan struct{} // capacity 1, signalled after a commit with events
	log  *slog.Logger
}

// kick wakes the relay without blocking: events were committed.
func (r *relay) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run relays until ctx ends. NATS or Postgres being away only delays it.
func (r *relay) run(ctx context.Context) error {
	const lease = "outbox"
	// NATS coming back should be noticed soon: the relay's backoff is
	// capped lower than the IMAP sessions'.
	bo := &backoff{min: r.w.cfg.BackoffMin, max: min(r.w.cfg.BackoffMax, 5*time.Second)}
	streamReady := false
	held := false
	defer func() {
		if held {
			r.w.releaseLease([]string{lease})
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-r.wake:
		}
		next := relayTick
		ok, err := r.w.acquireLease(ctx, []string{lease})
		switch {
		case err != nil:
			r.log.Warn("outbox lease", "err", err)
			next = bo.next()
		case !ok:
			held = false
			next = r.w.cfg.LeaseTTL / 3
		default:
			held = true
			if !streamReady {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err = EnsureStream(sctx, r.js, r.w.cfg.Stream)
				cancel()
				streamReady = err == nil
			}
			if err == nil {
				err = r.drain(ctx)
			}
			if err != nil && ctx.Err() == nil {
				r.log.Warn("events relay paused", "err", err)
				next = bo.next()
			} else {
				bo.reset()
			}
		}
		r.w.updateOutboxLag(ctx)
		timer.Reset(next)
	}
}

// drain publishes pending rows until none is left.
func (r *relay) drain(ctx context.Context) error {
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		evs, err := r.w.db.PendingEvents(qctx, relayBatch)
		cancel()
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if len(evs) == 0 {
			return nil
		}
		n, perr := r.publish(ctx, evs)
		if n > 0 {
			ids := make([]int64, n)
			for i := range ids {
				ids[i] = evs[i].ID
			}
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err := r.w.db.MarkPublished(mctx, ids)
			cancel()
			if err != nil {
				return fmt.Errorf("mark %d events published: %w", n, err)
			}
			r.w.metrics.eventsPublished.Add(float64(n))
		}
		if perr != nil {
			return perr
		}
		if len(evs) < relayBatch {
			return nil
		}
	}
	return nil
}

// publish sends evs asynchronously and waits for the acks. It returns how
// many of the first events were acknowledged in a row: only those are
// marked published, so a failed event and everything after it are sent
// again (the stream drops the repeats by Nats-Msg-Id).
func (r *relay) publish(ctx context.Context, evs []store.Event) (int, error) {
	futs := make([]jetstream.PubAckFuture, 0, len(evs))
	var err error
	for i := range evs {
		ev := &evs[i]
		msg := &nats.Msg{Subject: ev.Subject, Data: ev.Payload, Header: nats.Header{}}
		var f jetstream.PubAckFuture
		f, err = r.js.PublishMsgAsync(msg, jetstream.WithMsgID(ev.MsgID))
		if err != nil {
			err = fmt.Errorf("publish event %d: %w", ev.ID, err)
			break
		}
		futs = append(futs, f)
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	acked := 0
	for i, f := range futs {
		select {
		case <-f.Ok():
			if acked == i {
				acked++
			}
		case e := <-f.Err():
			if err == nil {
				err = fmt.Errorf("publish event %d: %w", evs[i].ID, e)
			}
		case <-timeout.C:
			if err == nil {
				err = errors.New("publish: no ack within 10s")
			}
			return acked, err
		case <-ctx.Done():
			return acked, ctx.Err()
		}
	}
	return acked, err
}
