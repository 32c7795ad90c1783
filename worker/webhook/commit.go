package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/bouncer-mail/bouncer/store"
)

// maxGroup is how many events one transaction saves at most.
const maxGroup = 500

// maxInFlight is how many transactions run at once: while they wait for
// Postgres, the next requests gather into the next groups.
const maxInFlight = 4

// saveTimeout bounds one transaction: a request whose provider gave up
// waiting is still saved, and its retry finds it.
const saveTimeout = 15 * time.Second

// committer saves the events of concurrent requests in shared
// transactions (group commit): while maxInFlight transactions run, the
// requests that arrive wait, and the next transaction takes them all. One
// transaction per event reaches a few hundred events a second on a small
// machine; grouped, the intake keeps up with providers' bursts. A request
// is answered only after its events are committed.
type committer struct {
	save func(ctx context.Context, evs []store.WebhookEvent) ([]bool, error)

	mu      sync.Mutex
	pending []*commitReq
	running int // drain goroutines at work
}

type commitReq struct {
	evs    []store.WebhookEvent
	stored []bool
	err    error
	done   chan struct{}
}

// commit saves evs, in a transaction it may share with other requests'
// events, and reports which were new. When ctx ends first it returns
// ctx's error; the events may still be saved.
func (c *committer) commit(ctx context.Context, evs []store.WebhookEvent) ([]bool, error) {
	req := &commitReq{evs: evs, done: make(chan struct{})}
	c.mu.Lock()
	c.pending = append(c.pending, req)
	if c.running < maxInFlight {
		c.running++
		go c.drain()
	}
	c.mu.Unlock()
	select {
	case <-req.done:
		return req.stored, req.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// drain saves pending requests, a group at a time, until none is left.
func (c *committer) drain() {
	for {
		c.mu.Lock()
		n, size := 0, 0
		for n < len(c.pending) && (n == 0 || size+len(c.pending[n].evs) <= maxGroup) {
			size += len(c.pending[n].evs)
			n++
		}
		group := c.pending[:n:n]
		c.pending = c.pending[n:]
		if n == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.saveGroup(group)
	}
}

// saveGroup saves group in one transaction. When that fails and the group
// has several requests, each is saved alone: one request's bad event
// must not fail the others.
func (c *committer) saveGroup(group []*commitReq) {
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	if len(group) == 1 {
		r := group[0]
		r.stored, r.err = c.save(ctx, r.evs)
		close(r.done)
		return
	}
	var all []store.WebhookEvent
	for _, r := range group {
		all = append(all, r.evs...)
	}
	stored, err := c.save(ctx, all)
	if err != nil {
		cancel()
		for _, r := range group {
			c.saveGroup([]*commitReq{r})
		}
		return
	}
	for _, r := range group {
		r.stored, stored = stored[:len(r.evs)], stored[len(r.evs):]
		close(r.done)
	}
}
