package worker

import (
	"context"
	"time"
)

// maintain keeps the store tidy, once at start and then every
// maintenanceInterval, until ctx ends: it closes the suppressions whose
// time is up and deletes the outbox rows published more than
// OutboxRetention ago. Both are idempotent, so every process may run
// them; a failed round is logged and tried again at the next.
func (w *Worker) maintain(ctx context.Context) error {
	every := w.cfg.maintenanceEvery
	if every <= 0 {
		every = maintenanceInterval
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		w.maintenance(ctx)
		t.Reset(every)
	}
}

// maintenance runs one round and returns what it did.
func (w *Worker) maintenance(ctx context.Context) (expired int, pruned int64) {
	log := w.log.With("component", "maintenance")
	ectx, cancel := context.WithTimeout(ctx, time.Minute)
	expired, err := w.db.ExpireSuppressions(ectx)
	cancel()
	if err != nil && ctx.Err() == nil {
		log.Warn("expire suppressions", "err", err, "expired", expired)
	}
	if expired > 0 {
		// Their suppression.removed events are in the outbox now.
		select {
		case w.relay.wake <- struct{}{}:
		default:
		}
	}
	if w.cfg.OutboxRetention > 0 {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		pruned, err = w.db.PruneOutbox(pctx, w.db.Now().Add(-w.cfg.OutboxRetention))
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("prune outbox", "err", err)
		}
	}
	if ctx.Err() == nil {
		log.Info("maintenance done", "suppressions_expired", expired, "outbox_rows_pruned", pruned,
			"outbox_retention", w.cfg.OutboxRetention.String())
	}
	return expired, pruned
}
