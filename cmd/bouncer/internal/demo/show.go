package demo

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker"
)

// Seed appends the samples to the server's INBOX, each arrived AgeDays
// before now, and returns their content hashes (worker.MessageSHA256, what
// the store keys messages by) and the last UID.
func (s *IMAP) Seed(samples []Sample, now time.Time) (sums [][32]byte, lastUID uint32, err error) {
	sums = make([][32]byte, len(samples))
	for i, smp := range samples {
		uid, err := s.Append("INBOX", smp.Raw, now.Add(-time.Duration(smp.AgeDays)*24*time.Hour))
		if err != nil {
			return nil, 0, err
		}
		sums[i], lastUID = worker.MessageSHA256(smp.Raw), uint32(uid)
	}
	return sums, lastUID, nil
}

// Show is what the demo prints while the worker runs: the progress on the
// samples, what this run did, the summary, how to go on, and then the new
// mail as it is processed.
type Show struct {
	Out io.Writer
	// TTY redraws the progress line in place; otherwise it prints lines.
	TTY bool

	DB     *store.DB
	Worker *worker.Worker
	NATS   *nats.Conn
	IMAP   *IMAP

	// Mailbox is the worker's key of the demo mailbox: its checkpoint says
	// how far the worker is. LastUID is the last sample's UID.
	Mailbox string
	LastUID uint32
	// Sums are the samples' content hashes (Seed).
	Sums [][32]byte

	// Web is the base URL of the explain page, /readyz and /metrics;
	// DatabaseURL and NATSURL are shown without their passwords.
	Web, DatabaseURL, NATSURL string
}

// Run shows the demo until ctx ends; it returns nil then.
func (s *Show) Run(ctx context.Context) error {
	// The worker has no "done" to signal (it never is: it IDLEs), so the
	// demo looks at its counters, the mailbox's checkpoint and the outbox
	// on a ticker, which also paces the progress line.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	n := len(s.Sums)
	lastLine, lastPrint := "", time.Time{}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		processed := Counter(s.Worker.Gatherer(), "bouncer_messages_total")
		done = processed >= n && s.settled(ctx)
		// Read after settled: the relay counts events once it has marked
		// them, so a count read before could miss the last ones.
		published := Counter(s.Worker.Gatherer(), "bouncer_events_published_total")
		line := fmt.Sprintf("processed %d/%d messages, %d events published", min(processed, n), n, published)
		switch {
		case s.TTY && done:
			fmt.Fprintf(s.Out, "\r\033[K%s\n", line)
		case s.TTY:
			fmt.Fprintf(s.Out, "\r\033[K%s…", line)
		case done || (line != lastLine && time.Since(lastPrint) >= time.Second):
			fmt.Fprintln(s.Out, line)
			lastLine, lastPrint = line, time.Now()
		}
	}
	if err := s.report(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// Mail added since (bouncer inject) is processed as it comes.
	// A message whose content was recorded before (the same SHA-256) is
	// processed and moved but not new: it is counted apart.
	seen := Counter(s.Worker.Gatherer(), "bouncer_messages_total")
	seenDup := Counter(s.Worker.Gatherer(), "bouncer_duplicate_messages_total")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if m := Counter(s.Worker.Gatherer(), "bouncer_messages_total"); m > seen {
			dup := Counter(s.Worker.Gatherer(), "bouncer_duplicate_messages_total")
			fmt.Fprintf(s.Out, "processed %d more message(s): %d new, %d already recorded (same content); INBOX %d, Processed %d, Quarantine %d\n",
				m-seen, max(m-seen-(dup-seenDup), 0), dup-seenDup, s.IMAP.Count("INBOX"), s.IMAP.Count("Processed"), s.IMAP.Count("Quarantine"))
			seen, seenDup = m, dup
		}
	}
}

// settled reports whether the worker is past every sample (its checkpoint
// is saved after a batch is committed and moved) and the outbox is empty.
func (s *Show) settled(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cp, ok, err := s.DB.Checkpoint(ctx, s.Mailbox)
	if err != nil || !ok || cp.LastUID < s.LastUID {
		return false
	}
	pending, _, err := s.DB.OutboxLag(ctx)
	return err == nil && pending == 0
}

// report prints what this run did, the summary, and how to go on.
func (s *Show) report(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n := len(s.Sums)
	rec, err := s.DB.RecordsOf(ctx, s.Sums)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	sum := Summarize(n, rec, Folders{
		Inbox: s.IMAP.Count("INBOX"), Processed: s.IMAP.Count("Processed"), Quarantine: s.IMAP.Count("Quarantine"),
	})
	dups := Counter(s.Worker.Gatherer(), "bouncer_duplicate_messages_total")
	published := Counter(s.Worker.Gatherer(), "bouncer_events_published_total")
	held := "?"
	if js, err := jetstream.New(s.NATS); err == nil {
		if st, err := js.Stream(ctx, worker.StreamName); err == nil {
			if info, err := st.Info(ctx); err == nil {
				held = fmt.Sprint(info.State.Msgs)
			}
		}
	}
	w := s.Out
	fmt.Fprintln(w)
	switch {
	case dups == 0:
		fmt.Fprintf(w, "This run recorded all %d messages and published %d events to the JetStream stream %s (it holds %s).\n",
			n, published, worker.StreamName, held)
	case dups < n:
		fmt.Fprintf(w, "This run recorded %d new messages (%d were in the database already) and published %d events to the stream %s (it holds %s).\n",
			n-dups, dups, published, worker.StreamName, held)
	default:
		fmt.Fprintf(w, "This run recorded nothing new: an earlier run recorded these %d messages (same content, same SHA-256),\n", n)
		fmt.Fprintf(w, "so no row and no event was written twice (%d events published now). The summary is what the database holds.\n", published)
	}
	fmt.Fprintln(w)
	sum.Write(w)

	fmt.Fprintln(w, "The worker keeps IDLEing on the mailbox. To try more:")
	fmt.Fprintf(w, "  add mail       bouncer inject --imap '%s' FILE.eml...\n", s.IMAP.URL("INBOX", true))
	fmt.Fprintln(w, "                 (from a checkout: go run ./cmd/bouncer inject ..., e.g. with classify/testdata/*.eml)")
	fmt.Fprintf(w, "  explain page   %s/\n", s.Web)
	fmt.Fprintf(w, "  readiness      %s/readyz\n", s.Web)
	fmt.Fprintf(w, "  metrics        %s/metrics\n", s.Web)
	fmt.Fprintf(w, "  database       psql '%s'  (bounces, suppressions, bounce_daily)\n", s.DatabaseURL)
	fmt.Fprintf(w, "  events         %s, stream %s (subjects bounce.> and suppression.>)\n", s.NATSURL, worker.StreamName)
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
	return nil
}
