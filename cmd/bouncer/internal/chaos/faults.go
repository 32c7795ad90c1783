package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"
)

// fault is one thing done to the run once `at` messages are stored.
type fault struct {
	at   int
	kind string // kill, postgres, nats, dovecot, uidvalidity
}

// schedule places the kills and the one restart of each server and the
// UIDVALIDITY change at random points (by the seed) between 5% and 90%
// of the messages stored, in a random order.
func schedule(n, kills int, rng *rand.Rand) []fault {
	kinds := []string{"postgres", "nats", "dovecot", "uidvalidity"}
	for range kills {
		kinds = append(kinds, "kill")
	}
	lo, hi := n/20, n*9/10
	out := make([]fault, len(kinds))
	for i, k := range kinds {
		out[i] = fault{at: lo + rng.IntN(max(hi-lo, 1)), kind: k}
	}
	slices.SortStableFunc(out, func(a, b fault) int { return a.at - b.at })
	return out
}

// chaosRun starts the workers and the appends at once, and does the
// faults of the schedule as the messages are stored; then it waits until
// everything is settled.
func (e *env) chaosRun(ctx context.Context, o Options, msgs []message, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ws := &workerSet{bin: o.Bin, dbURL: e.pg.url("chaos"), natsURL: e.natsChaos.url(),
		imap: e.dovecot.url("chaos"), log: e.workersLog, prefix: "w", batchSize: o.BatchSize}
	defer ws.stop()
	for range o.Workers {
		if _, err := ws.start(); err != nil {
			return err
		}
	}
	appended := make(chan error, 1)
	go func() { appended <- e.appendAll(ctx, "chaos", msgs, o.BatchSize, e.trickle("chaos", 2*o.BatchSize)) }()
	rng := rand.New(rand.NewPCG(o.Seed, 0x6661756c7473)) // "faults"
	plan := schedule(len(msgs), o.Kills, rng)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	after := -1 // messages stored when the last fault was done
	for len(plan) > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out with %d faults to do", len(plan))
		case err := <-appended:
			if err != nil {
				return err
			}
			appended = nil
		case <-tick.C:
		}
		if w := ws.died(); w != nil {
			return fmt.Errorf("worker %s exited on its own (%v); see workers.log", w.name, w.cmd.ProcessState)
		}
		stored, _, err := progress(ctx, e.pg.url("chaos"))
		// Each fault waits for a commit after the one before (or for the
		// end of the work): it then strikes a run that had recovered.
		if err != nil || stored < min(max(plan[0].at, after+1), len(msgs)) {
			continue
		}
		// A random moment: up to 300 ms past the point.
		select {
		case <-time.After(time.Duration(rng.IntN(300)) * time.Millisecond):
		case <-ctx.Done():
			continue
		}
		what, err := e.do(ctx, plan[0], ws)
		if err != nil {
			return fmt.Errorf("%s: %w", plan[0].kind, err)
		}
		fmt.Fprintf(out, "  %6.1fs  at %d/%d stored: %s\n", time.Since(start).Seconds(), stored, len(msgs), what)
		plan = plan[1:]
		after = stored
	}
	if appended != nil {
		if err := <-appended; err != nil {
			return err
		}
	}
	return e.waitSettled(ctx, "chaos", len(msgs), ws)
}

// do does one fault and says what it did.
func (e *env) do(ctx context.Context, f fault, ws *workerSet) (string, error) {
	t := time.Now()
	took := func() string { return time.Since(t).Round(time.Millisecond).String() }
	switch f.kind {
	case "kill":
		holder := e.runningHolder(ctx, ws)
		killed := ws.kill(holder)
		w, err := ws.start()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("SIGKILL worker %s (the lease holder: %v), started %s", killed, killed == holder, w.name), nil
	case "postgres":
		if err := e.pg.restart(ctx); err != nil {
			return "", err
		}
		return "Postgres stopped (-m immediate) and started in " + took(), nil
	case "nats":
		if err := e.natsChaos.restart(); err != nil {
			return "", err
		}
		return "NATS restarted in " + took(), nil
	case "dovecot":
		e.dovecotMu.Lock()
		defer e.dovecotMu.Unlock()
		if err := e.dovecot.restart(); err != nil {
			return "", err
		}
		return "Dovecot restarted in " + took(), nil
	case "uidvalidity":
		e.dovecotMu.Lock()
		defer e.dovecotMu.Unlock()
		old, err := e.uidValidity("chaos")
		if err != nil {
			return "", err
		}
		if err := e.dovecot.changeUIDValidity(ctx, "chaos", old+1); err != nil {
			return "", err
		}
		now, err := e.uidValidity("chaos")
		if err != nil {
			return "", err
		}
		if now == old {
			return "", fmt.Errorf("UIDVALIDITY still %d after doveadm changed it", now)
		}
		return fmt.Sprintf("INBOX UIDVALIDITY changed from %d to %d", old, now), nil
	}
	return "", fmt.Errorf("unknown fault %q", f.kind)
}

// trickle makes mail arrive as it is worked, not all at once: a chunk is
// appended only when at most backlog messages wait in the mailbox. Every
// fault then strikes while there is work under way, however fast the
// workers are.
func (e *env) trickle(user string, backlog int) func(ctx context.Context, appended int) error {
	return func(ctx context.Context, appended int) error {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if stored, _, err := progress(ctx, e.pg.url(user)); err == nil && appended-stored <= backlog {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
	}
}

// runningHolder returns the running worker that holds the mailbox's
// lease. Right after a kill the dead worker's lease has not lapsed yet
// (BOUNCER_LEASE_TTL): it waits for a standby to take over, up to 10 s,
// so that a kill strikes the worker at work; else it returns "".
func (e *env) runningHolder(ctx context.Context, ws *workerSet) string {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(10 * time.Second)
	for {
		holder := leaseHolder(ctx, e.pg.url("chaos"))
		for _, w := range ws.running {
			if w.name == holder {
				return holder
			}
		}
		select {
		case <-ctx.Done():
			return ""
		case <-limit:
			return ""
		case <-tick.C:
		}
	}
}
