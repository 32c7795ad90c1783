package chaos

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"
)

// result is the comparison of the chaos run with the clean run.
type result struct {
	messages                     int
	clean, chaos                 map[string]int // messages per folder
	folders                      diff           // per folder, by content, against the clean run
	unaccounted, twice           int            // generated messages in no folder, in more than one
	cleanRows, chaosRows         int
	rows                         diff
	differ                       int // rows whose category, severity or suppress differ
	cleanStored, chaosStored     int
	outbox, stream               int
	events                       diff // stream against outbox
	pending                      int
	bounceEvents                 diff // bounce events against the clean run's
	cleanSuppress, chaosSuppress int
	suppressions                 diff
	uidValidity, checkpoint      int64 // the chaos mailbox's at the end, the workers' checkpoint's
}

func (r *result) bad() bool {
	return r.folders.bad() || r.unaccounted+r.twice+r.differ+r.pending > 0 || r.rows.bad() ||
		r.events.bad() || r.bounceEvents.bad() || r.suppressions.bad() || r.cleanStored != r.chaosStored
}

// check reads both mailboxes, both databases and the chaos run's stream.
func (e *env) check(ctx context.Context, msgs []message) (*result, error) {
	r := &result{messages: len(msgs), clean: map[string]int{}, chaos: map[string]int{}}
	cleanBox, err := readMailbox(e.dovecot.addr(), "clean", e.dovecot.password)
	if err != nil {
		return nil, err
	}
	chaosBox, err := readMailbox(e.dovecot.addr(), "chaos", e.dovecot.password)
	if err != nil {
		return nil, err
	}
	where := map[[32]byte]int{}
	for _, f := range folders {
		r.clean[f], r.chaos[f] = total(cleanBox[f]), total(chaosBox[f])
		d := compare(cleanBox[f], chaosBox[f])
		r.folders.missing += d.missing
		r.folders.duplicate += d.duplicate
		r.folders.extra += d.extra
		for sum, n := range chaosBox[f] {
			where[sum] += n
		}
	}
	for _, m := range msgs {
		switch n := where[m.sum]; {
		case n == 0:
			r.unaccounted++
		case n > 1:
			r.twice++
		}
	}
	clean, err := readDB(ctx, e.pg.url("clean"))
	if err != nil {
		return nil, fmt.Errorf("clean database: %w", err)
	}
	chaos, err := readDB(ctx, e.pg.url("chaos"))
	if err != nil {
		return nil, fmt.Errorf("chaos database: %w", err)
	}
	stream, n, err := streamIDs(ctx, e.natsChaos.url())
	if err != nil {
		return nil, err
	}
	r.compareDB(clean, chaos, stream, n)
	v, err := e.uidValidity("chaos")
	if err != nil {
		return nil, err
	}
	r.uidValidity, r.checkpoint = int64(v), chaos.checkpoint
	return r, nil
}

func (r *result) compareDB(clean, chaos *dbState, stream map[string]int, n int) {
	r.cleanStored, r.chaosStored = clean.messages, chaos.messages
	want, got := map[rowKey]int{}, map[rowKey]int{}
	for k, v := range clean.rows {
		want[k] = len(v)
		r.cleanRows += len(v)
	}
	for k, v := range chaos.rows {
		got[k] = len(v)
		r.chaosRows += len(v)
		if w, ok := clean.rows[k]; ok && !slices.Equal(w, v) {
			r.differ++
		}
	}
	r.rows = compare(want, got)
	r.outbox, r.stream, r.pending = len(chaos.outbox), n, chaos.pending
	r.events = compare(chaos.outbox, stream)
	r.bounceEvents = compare(set(clean.bounceEvents), set(chaos.bounceEvents))
	r.suppressions = compare(clean.suppressions, chaos.suppressions)
	r.cleanSuppress, r.chaosSuppress = total(clean.suppressions), total(chaos.suppressions)
}

func (r *result) print(w io.Writer, took time.Duration) {
	fmt.Fprintf(w, "\n%-34s %8s %8s\n", "", "clean", "chaos")
	for _, f := range folders {
		fmt.Fprintf(w, "%-34s %8d %8d\n", "messages in "+f, r.clean[f], r.chaos[f])
	}
	fmt.Fprintf(w, "%-34s %8d %8d\n", "messages stored (source_messages)", r.cleanStored, r.chaosStored)
	fmt.Fprintf(w, "%-34s %8d %8d\n", "rows (message, recipient)", r.cleanRows, r.chaosRows)
	fmt.Fprintf(w, "%-34s %8d %8d\n", "open suppressions", r.cleanSuppress, r.chaosSuppress)
	fmt.Fprintf(w, "%-34s %8s %8d\n", "events in the outbox", "", r.outbox)
	fmt.Fprintf(w, "%-34s %8s %8d\n\n", "messages in the stream", "", r.stream)
	fmt.Fprintf(w, "mailbox, by content, per folder:   %v; in no folder %d, in two %d\n", r.folders, r.unaccounted, r.twice)
	fmt.Fprintf(w, "rows against the clean run:        %v; different %d\n", r.rows, r.differ)
	fmt.Fprintf(w, "suppressions against the clean run: %v\n", r.suppressions)
	fmt.Fprintf(w, "bounce events against the clean run: %v\n", r.bounceEvents)
	fmt.Fprintf(w, "stream against the outbox:         %v; unpublished %d\n", r.events, r.pending)
	fmt.Fprintf(w, "UIDVALIDITY of the chaos INBOX %d, of the workers' checkpoint %d\n", r.uidValidity, r.checkpoint)
	lost := r.folders.missing + r.unaccounted + r.rows.missing + r.suppressions.missing + r.bounceEvents.missing + r.events.missing + r.pending
	dup := r.folders.duplicate + r.twice + r.rows.duplicate + r.suppressions.duplicate + r.bounceEvents.duplicate + r.events.duplicate
	verdict := "OK"
	if r.bad() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "%s: %d lost, %d duplicated, %d extra, %d different, in %v\n", verdict, lost, dup,
		r.folders.extra+r.rows.extra+r.suppressions.extra+r.bounceEvents.extra+r.events.extra, r.differ, took.Round(time.Second))
}

func total[K comparable](m map[K]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func set[K comparable](m map[K]bool) map[K]int {
	out := make(map[K]int, len(m))
	for k := range m {
		out[k] = 1
	}
	return out
}
