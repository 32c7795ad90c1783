package worker

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus series of one Worker, on its own registry
// (no global state).
type metrics struct {
	reg *prometheus.Registry

	messages        *prometheus.CounterVec // by kind
	recipients      *prometheus.CounterVec // by category, severity
	suppressions    prometheus.Counter
	duplicates      prometheus.Counter
	commitLatency   prometheus.Histogram
	outboxPending   prometheus.Gauge
	outboxOldest    prometheus.Gauge
	eventsPublished prometheus.Counter
	reconnects      *prometheus.CounterVec // by mailbox
	batches         prometheus.Counter
	batchSplits     prometheus.Counter
	saveQuarantined prometheus.Counter
	mailboxReady    *prometheus.GaugeVec // by mailbox
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bouncer_messages_total",
			Help: "Messages committed, by kind (dsn, mta_text, delayed, auto_reply, complaint, not_bounce, quarantined).",
		}, []string{"kind"}),
		recipients: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bouncer_recipients_total",
			Help: "Failed recipients committed, by category and severity.",
		}, []string{"category", "severity"}),
		suppressions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bouncer_suppressions_total",
			Help: "Suppressions added.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bouncer_duplicate_messages_total",
			Help: "Messages that were already recorded (re-read after a crash, a copy, a UIDVALIDITY change).",
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bouncer_arrival_to_commit_seconds",
			Help:    "From the message's arrival in the mailbox (INTERNALDATE) to its commit in Postgres.",
			Buckets: []float64{.1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 86400},
		}),
		outboxPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bouncer_outbox_pending",
			Help: "Events committed but not yet acknowledged by JetStream.",
		}),
		outboxOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bouncer_outbox_lag_seconds",
			Help: "Age of the oldest unpublished event (0 when none).",
		}),
		eventsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bouncer_events_published_total",
			Help: "Events acknowledged by JetStream and marked published.",
		}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bouncer_imap_reconnects_total",
			Help: "IMAP sessions that ended in an error and were retried, by mailbox.",
		}, []string{"mailbox"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bouncer_batches_total",
			Help: "Batches committed.",
		}),
		batchSplits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bouncer_batch_splits_total",
			Help: "Batches split in two because their save failed for a reason that is not transient (or failed too often).",
		}),
		saveQuarantined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bouncer_save_quarantined_total",
			Help: "Messages quarantined because their results could not be saved (found by splitting their batch).",
		}),
		mailboxReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bouncer_mailbox_ready",
			Help: "1 while the mailbox is worked (catching up or idle) or another worker holds it (standby), as /readyz says; 0 while starting, connecting or backing off, or stopped.",
		}, []string{"mailbox"}),
	}
	m.reg.MustRegister(m.messages, m.recipients, m.suppressions, m.duplicates, m.commitLatency,
		m.outboxPending, m.outboxOldest, m.eventsPublished, m.reconnects, m.batches, m.batchSplits, m.saveQuarantined, m.mailboxReady,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// updateOutboxLag refreshes the outbox gauges.
func (w *Worker) updateOutboxLag(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, oldest, err := w.db.OutboxLag(ctx)
	if err != nil {
		return // the relay reports the outage
	}
	w.metrics.outboxPending.Set(float64(n))
	if n == 0 || oldest.IsZero() {
		w.metrics.outboxOldest.Set(0)
	} else {
		w.metrics.outboxOldest.Set(time.Since(oldest).Seconds())
	}
}

// Mailbox states, as /readyz reports them.
const (
	stateStarting   = "starting"
	stateStandby    = "standby"    // another worker holds the lease
	stateConnecting = "connecting" // (re)connecting, or backing off after an error
	stateCatchingUp = "catching_up"
	stateIdle       = "idle" // waiting for new mail
	stateStopped    = "stopped"
)

// status is what /readyz says about one mailbox.
type status struct {
	State     string    `json:"state"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	Processed int64     `json:"processed"`
}

// statusBoard holds each mailbox's status for /readyz, and mirrors its
// readiness in the bouncer_mailbox_ready gauge.
type statusBoard struct {
	mu    sync.Mutex
	m     map[string]*status
	ready *prometheus.GaugeVec // by mailbox; may be nil
}

// readyState reports whether a mailbox in state counts as ready: worked,
// or in another worker's hands.
func readyState(state string) bool {
	switch state {
	case stateIdle, stateCatchingUp, stateStandby:
		return true
	}
	return false
}

func (b *statusBoard) set(key, state string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.m[key]
	if s == nil {
		s = &status{}
		b.m[key] = s
	}
	if s.State != state {
		s.State, s.Since = state, time.Now()
		if b.ready != nil {
			v := 0.0
			if readyState(state) {
				v = 1
			}
			b.ready.WithLabelValues(key).Set(v)
		}
	}
	if err != nil {
		s.LastError = err.Error()
	} else if state == stateIdle || state == stateCatchingUp {
		s.LastError = ""
	}
}

func (b *statusBoard) addProcessed(key string, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.m[key]; s != nil {
		s.Processed += int64(n)
	}
}

func (b *statusBoard) snapshot() (map[string]status, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]status, len(b.m))
	ready := true
	for k, s := range b.m {
		out[k] = *s
		if !readyState(s.State) {
			ready = false
		}
	}
	return out, ready
}

// Gatherer returns the worker's Prometheus registry, what /metrics serves.
// A program embedding the worker may read its counters from it (`bouncer
// demo` shows its progress with bouncer_messages_total).
func (w *Worker) Gatherer() prometheus.Gatherer { return w.metrics.reg }

// Routes registers /healthz, /readyz, /metrics and the configured
// webhook endpoints (/webhooks/<provider>, package webhook) on mux. The caller may
// mount more handlers (the explain page) on the same mux.
func (w *Worker) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		snap, ready := w.status.snapshot()
		keys := make([]string, 0, len(snap))
		for k := range snap {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		type mbox struct {
			Mailbox string `json:"mailbox"`
			status
		}
		body := struct {
			Ready     bool   `json:"ready"`
			Mailboxes []mbox `json:"mailboxes"`
		}{Ready: ready}
		for _, k := range keys {
			body.Mailboxes = append(body.Mailboxes, mbox{k, snap[k]})
		}
		rw.Header().Set("Content-Type", "application/json")
		if !ready {
			rw.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(rw).Encode(body)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.metrics.reg, promhttp.HandlerOpts{}))
	w.hooks.Register(mux)
}

// backoff is a capped exponential backoff with "equal jitter": each wait
// is between half and all of the current step.
type backoff struct {
	min, max, cur time.Duration
}

func (w *Worker) newBackoff() *backoff {
	return &backoff{min: w.cfg.BackoffMin, max: w.cfg.BackoffMax}
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
