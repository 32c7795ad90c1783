// Package worker runs bouncer's mailbox workers: for each bounce mailbox an
// IMAP session (RFC 3501, with IDLE RFC 2177, MOVE RFC 6851 and UIDPLUS
// RFC 4315 when the server has them) that fetches new mail in batches,
// classifies it, commits the results to Postgres in one transaction and only
// then moves the messages out of the mailbox; an outbox relay that publishes
// the committed events to the JetStream stream BOUNCES; the NATS service
// bouncer.suppression.check; and the health and metrics endpoints.
//
// Exactly one process works a mailbox at a time (a lease in Postgres);
// processing is idempotent, so a crash, a second worker or a UIDVALIDITY
// change (RFC 3501 §2.3.1.1) creates no duplicate rows or events.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker/webhook"
)

// Worker works the configured mailboxes. Build it with New, start it with
// Run.
type Worker struct {
	cfg     Config
	db      *store.DB
	nc      *nats.Conn
	log     *slog.Logger
	cls     *classify.Classifier
	metrics *metrics
	status  statusBoard
	relay   *relay
	trust   *trustPolicy
	hooks   *webhook.Handler
}

// New returns a Worker for cfg, which must have passed Validate. db and nc
// stay owned by the caller and must outlive Run.
func New(cfg Config, db *store.DB, nc *nats.Conn, log *slog.Logger) (*Worker, error) {
	if len(cfg.Mailboxes) == 0 {
		return nil, errors.New("worker: no mailbox (Config.Validate not called?)")
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(relayBatch))
	if err != nil {
		return nil, fmt.Errorf("worker: jetstream: %w", err)
	}
	w := &Worker{
		cfg:     cfg,
		db:      db,
		nc:      nc,
		log:     log,
		cls:     classify.New(cfg.Headers.Options(cfg.MaxMessageSize)),
		metrics: newMetrics(),
	}
	w.status = statusBoard{m: map[string]*status{}, ready: w.metrics.mailboxReady}
	w.trust = newTrustPolicy(cfg.Trust, w.metrics.reg)
	w.relay = &relay{w: w, js: js, wake: make(chan struct{}, 1), log: log.With("component", "relay")}
	w.hooks, err = webhook.New(cfg.Webhooks, db, webhook.Options{Log: log.With("component", "webhook"),
		Registerer: w.metrics.reg, Classifier: w.cls, Notify: w.relay.kick})
	if err != nil {
		return nil, err
	}
	for i := range cfg.Mailboxes {
		w.status.set(cfg.Mailboxes[i].Key, stateStarting, nil)
		w.metrics.reconnects.WithLabelValues(cfg.Mailboxes[i].Key) // a series from the start
	}
	return w, nil
}

// Run works every mailbox, relays events, answers suppression checks and
// keeps the store tidy (expired suppressions, old outbox rows) until ctx
// ends or one of them fails for good. It returns nil after a
// clean shutdown.
func (w *Worker) Run(ctx context.Context) error {
	// Decide the trust policy now, to log it; when the database is not
	// there yet, the first batch decides it.
	if _, err := w.trustMode(ctx); err != nil {
		w.log.Warn("trust policy not decided yet", "err", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	for i := range w.cfg.Mailboxes {
		m := &w.cfg.Mailboxes[i]
		g.Go(func() error { return w.runMailbox(ctx, m) })
	}
	g.Go(func() error { return w.relay.run(ctx) })
	g.Go(func() error { return w.serveSuppressionCheck(ctx) })
	g.Go(func() error { return w.maintain(ctx) })
	return g.Wait()
}

// acquireLease takes or renews the lease on names (one mailbox's, see
// leaseNames) for this process.
func (w *Worker) acquireLease(ctx context.Context, names []string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return w.db.AcquireLeases(ctx, names, w.cfg.Owner, w.cfg.LeaseTTL)
}

// leaseNames are the names m's lease covers: its key, the key an older
// version used, and, unless the operator named the mailbox, its identity
// at each address its host resolves to now. So a worker given the server
// as a name and one given it as one of that name's addresses cannot both
// hold it. A name that does not resolve adds nothing (the IMAP dial will
// fail and say why). An operator-given name leases only itself: it is the
// way out when two mailboxes share an address, port, user and folder
// (hosting that routes by TLS server name).
func (w *Worker) leaseNames(ctx context.Context, m *Mailbox) []string {
	names := []string{m.Key}
	if m.LegacyKey != "" && m.LegacyKey != m.Key {
		names = append(names, m.LegacyKey)
	}
	host := canonicalHost(m.Host)
	if m.Name != "" || host == "localhost" || net.ParseIP(host) != nil {
		return names
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(rctx, m.Host)
	if err != nil {
		return names
	}
	for _, a := range addrs {
		if k := m.identity(canonicalHost(a.IP.String())); !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	return names
}

// releaseLease gives the lease up so another process can take over at
// once; it runs during shutdown, so it does not take the ended ctx.
func (w *Worker) releaseLease(names []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.db.ReleaseLeases(ctx, names, w.cfg.Owner); err != nil {
		w.log.Warn("release lease", "lease", names[0], "err", err)
	}
}

var errLeaseLost = errors.New("lease lost")

// runMailbox works m whenever this process holds its lease, until ctx
// ends.
func (w *Worker) runMailbox(ctx context.Context, m *Mailbox) error {
	log := w.log.With("mailbox", m.Key)
	bo := w.newBackoff()
	defer w.status.set(m.Key, stateStopped, nil)
	for ctx.Err() == nil {
		names := w.leaseNames(ctx, m)
		ok, err := w.acquireLease(ctx, names)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.status.set(m.Key, stateConnecting, err)
			d := bo.next()
			log.Warn("mailbox lease", "err", err, "retry_in", d.Round(time.Millisecond))
			sleep(ctx, d)
			continue
		}
		bo.reset()
		if !ok {
			w.status.set(m.Key, stateStandby, nil)
			sleep(ctx, w.cfg.LeaseTTL/3)
			continue
		}
		log.Info("mailbox lease acquired", "owner", w.cfg.Owner, "names", names)
		err = w.holdLease(ctx, m, names, log)
		log.Info("mailbox lease ended", "reason", err)
	}
	return nil
}

// holdLease keeps renewing m's lease while sessions work the mailbox. It
// returns when ctx ends or the lease is lost.
func (w *Worker) holdLease(ctx context.Context, m *Mailbox, names []string, log *slog.Logger) error {
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.renewLease(lctx, names, cancel, log)
	}()
	w.sessions(lctx, m, log)
	cancel(nil)
	<-done
	w.releaseLease(names)
	if err := context.Cause(lctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// renewLease renews the lease every third of its TTL. It cancels the work
// when another owner holds it, or when it could not be renewed for two
// thirds of the TTL (the lease may be about to expire).
func (w *Worker) renewLease(ctx context.Context, names []string, cancel context.CancelCauseFunc, log *slog.Logger) {
	ttl := w.cfg.LeaseTTL
	last := time.Now()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := w.acquireLease(ctx, names)
		switch {
		case err == nil && ok:
			last = time.Now()
		case err == nil && !ok:
			cancel(errLeaseLost)
			return
		case time.Since(last) > ttl*2/3:
			log.Warn("lease not renewed in time; stopping work", "err", err)
			cancel(fmt.Errorf("%w: %v", errLeaseLost, err))
			return
		}
	}
}

// sessions runs IMAP sessions on m one after another, backing off after
// each failure, until ctx ends.
func (w *Worker) sessions(ctx context.Context, m *Mailbox, log *slog.Logger) {
	bo := w.newBackoff()
	strikes := &saveStrikes{}
	for ctx.Err() == nil {
		w.status.set(m.Key, stateConnecting, nil)
		s := &session{w: w, m: m, log: log, healthy: bo.reset, strikes: strikes}
		err := s.run(ctx)
		if ctx.Err() != nil {
			return
		}
		w.metrics.reconnects.WithLabelValues(m.Key).Inc()
		w.status.set(m.Key, stateConnecting, err)
		d := bo.next()
		log.Warn("imap session ended; reconnecting", "err", err, "retry_in", d.Round(time.Millisecond))
		sleep(ctx, d)
	}
}
