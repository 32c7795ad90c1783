package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/sync/errgroup"
)

// shutdownGrace is how long a batch under way may still take after the
// worker is told to stop before its connection is closed under it.
const shutdownGrace = 15 * time.Second

// session is one IMAP connection working one mailbox.
type session struct {
	w       *Worker
	m       *Mailbox
	log     *slog.Logger
	healthy func() // called once the session works, to reset the backoff
	strikes *saveStrikes

	c       *imapclient.Client
	guard   connGuard
	wake    chan struct{} // capacity 1: new mail may have arrived
	canIdle bool

	uidValidity uint32
	lastUID     imap.UID
}

// connGuard closes the connection when the worker stops, but lets the
// batches under way finish first (for up to shutdownGrace): nothing is
// moved before its commit, and a committed batch is best moved too.
type connGuard struct {
	mu       sync.Mutex
	c        *imapclient.Client
	inFlight int
	stopping bool
}

// begin counts a batch under way; it reports false once stopping.
func (g *connGuard) begin() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return false
	}
	g.inFlight++
	return true
}

func (g *connGuard) end() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	if g.stopping && g.inFlight == 0 {
		g.c.Close()
	}
}

func (g *connGuard) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopping = true
	if g.inFlight == 0 {
		g.c.Close()
		return
	}
	time.AfterFunc(shutdownGrace, func() { g.c.Close() })
}

// run connects, selects the mailbox, catches up and then waits for new
// mail, until ctx ends (nil) or something fails (the error).
func (s *session) run(ctx context.Context) error {
	s.wake = make(chan struct{}, 1)
	handler := &imapclient.UnilateralDataHandler{
		// Runs on the client's reader goroutine: only signal.
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
		},
	}
	c, err := Dial(ctx, s.m, s.w.cfg.IMAPTimeout, handler)
	if err != nil {
		return err
	}
	s.c = c
	s.guard.c = c
	stop := context.AfterFunc(ctx, s.guard.stop)
	defer func() {
		if stop() {
			c.Close()
		}
	}()
	if err := s.setup(); err != nil {
		return s.fail(ctx, err)
	}
	s.log.Info("imap session ready", "uidvalidity", s.uidValidity, "last_uid", s.lastUID, "idle", s.canIdle)
	s.healthy()
	for {
		s.w.status.set(s.m.Key, stateCatchingUp, nil)
		if err := s.catchUp(ctx); err != nil {
			return s.fail(ctx, err)
		}
		if err := s.waitForMail(ctx); err != nil {
			return s.fail(ctx, err)
		}
	}
}

// fail turns an error caused by the shutdown into nil.
func (s *session) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// do runs an IMAP exchange under the command timeout: past it the
// connection is closed, which makes the exchange fail. go-imap has no
// read timeout while waiting for a response, so this is what notices a
// server that stopped answering.
func (s *session) do(what string, f func() error) error {
	t := time.AfterFunc(s.w.cfg.IMAPTimeout, func() { s.c.Close() })
	err := f()
	if !t.Stop() {
		return fmt.Errorf("%s: no answer within %v: %w", what, s.w.cfg.IMAPTimeout, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// setup checks capabilities, creates the folders, selects the mailbox
// and reads the checkpoint.
func (s *session) setup() error {
	var caps imap.CapSet
	if err := s.do("capability", func() error { caps = s.c.Caps(); return nil }); err != nil {
		return err
	}
	s.canIdle = (caps.Has(imap.CapIdle) || caps.Has(imap.CapIMAP4rev2)) && !s.w.cfg.noIdle
	if !caps.Has(imap.CapMove) && !caps.Has(imap.CapIMAP4rev2) {
		s.log.Info("server has no MOVE; using COPY, STORE \\Deleted and EXPUNGE")
	}
	for _, f := range []string{s.m.Processed, s.m.Quarantine, s.m.NotBounce} {
		if f == "" {
			continue
		}
		if err := s.ensureFolder(f); err != nil {
			return err
		}
	}
	var sel *imap.SelectData
	err := s.do("select "+s.m.Folder, func() (err error) {
		sel, err = s.c.Select(s.m.Folder, nil).Wait()
		return err
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cp, ok, err := s.w.db.Checkpoint(ctx, s.m.Key)
	if err == nil && !ok && s.m.LegacyKey != s.m.Key {
		// Saved by a version that keyed the mailbox by its URL as
		// written: carry on from it (the next batch saves it under Key).
		cp, ok, err = s.w.db.Checkpoint(ctx, s.m.LegacyKey)
	}
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	s.uidValidity = sel.UIDValidity
	switch {
	case !ok:
		s.lastUID = 0
	case cp.UIDValidity != sel.UIDValidity:
		// RFC 3501 §2.3.1.1: the old UIDs mean nothing now. Rescan from
		// the start; the store recognises what it has already seen.
		s.log.Info("UIDVALIDITY changed; rescanning the mailbox", "old", cp.UIDValidity, "new", sel.UIDValidity)
		s.lastUID = 0
	default:
		s.lastUID = imap.UID(cp.LastUID)
	}
	return nil
}

// ensureFolder creates folder f unless it exists.
func (s *session) ensureFolder(f string) error {
	var list []*imap.ListData
	err := s.do("list "+f, func() (err error) {
		list, err = s.c.List("", f, nil).Collect()
		return err
	})
	if err != nil {
		return err
	}
	if len(list) > 0 {
		return nil
	}
	err = s.do("create "+f, func() error { return s.c.Create(f, nil).Wait() })
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists {
		return nil // another worker was faster
	}
	if err == nil {
		s.log.Info("created folder", "folder", f)
	}
	return err
}

// waitForMail IDLEs (RFC 2177) until the server reports new mail, the
// refresh interval passes or ctx ends; without IDLE it waits for the poll
// interval. The mailbox is reported idle only once the server has
// accepted IDLE, so that a test (or an operator) who sees "idle" knows new
// mail will be noticed.
func (s *session) waitForMail(ctx context.Context) error {
	if !s.canIdle {
		s.w.status.set(s.m.Key, stateIdle, nil)
		t := time.NewTimer(s.w.cfg.PollInterval)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-s.c.Closed():
			return errors.New("connection closed")
		}
		return nil
	}
	select {
	case <-s.wake: // mail arrived while catching up
		return nil
	default:
	}
	var idle *imapclient.IdleCommand
	if err := s.do("idle", func() (err error) { idle, err = s.c.Idle(); return err }); err != nil {
		return err
	}
	s.w.status.set(s.m.Key, stateIdle, nil)
	// Restarting IDLE now and then also proves the server still answers:
	// a dead connection is noticed within IdleRefresh + IMAPTimeout.
	t := time.NewTimer(s.w.cfg.IdleRefresh)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-s.wake:
	case <-t.C:
	case <-s.c.Closed():
	}
	return s.do("idle done", func() error {
		if err := idle.Close(); err != nil {
			return err
		}
		return idle.Wait()
	})
}

// catchUp processes every message above lastUID. Three stages overlap:
// one fetches and classifies batch n+2 while the next saves batch n+1 in
// Postgres and the last moves batch n's messages and advances the
// checkpoint; batches go through each stage in UID order.
func (s *session) catchUp(ctx context.Context) error {
	batches := make(chan *batch, 1)
	pctx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var g errgroup.Group
	g.Go(func() error {
		defer close(batches)
		err := s.produce(pctx, batches)
		if pctx.Err() != nil && ctx.Err() == nil {
			return nil // stopped by a later stage, which reports why
		}
		return err
	})
	// A batch is saved, then moved: two stages, so that the next batch's
	// transaction runs while the server moves this one's messages. The
	// mover takes batches in order, so the checkpoint only advances.
	saved := make(chan *batch, 1)
	var moveFailed atomic.Bool
	// drop ends the batches a stage will not handle after a failure:
	// they stay in the mailbox for the next attempt.
	drop := func(ch <-chan *batch) {
		for range ch {
			s.guard.end()
		}
	}
	g.Go(func() error {
		defer close(saved)
		for b := range batches {
			if moveFailed.Load() {
				s.guard.end() // dropped, as drop does
				continue
			}
			if err := s.save(ctx, b); err != nil {
				s.guard.end()
				// Stop the producer and drop what it fetched meanwhile.
				stopProducing()
				drop(batches)
				return err
			}
			saved <- b
		}
		return nil
	})
	g.Go(func() error {
		for b := range saved {
			err := s.finish(ctx, b)
			s.guard.end()
			if err != nil {
				// Stop the producer and the saver; what they hold is
				// dropped (saved batches stay in the mailbox, recorded).
				moveFailed.Store(true)
				stopProducing()
				drop(saved)
				return err
			}
		}
		return nil
	})
	return g.Wait()
}

// produce searches for new UIDs and sends them, fetched and classified, in
// batches bounded by count and bytes, until none is left or ctx ends.
func (s *session) produce(ctx context.Context, out chan<- *batch) error {
	cfg := &s.w.cfg
	cursor := s.lastUID
	for ctx.Err() == nil {
		var data *imap.SearchData
		crit := &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: cursor + 1, Stop: 0}}}}
		err := s.do("search", func() (err error) {
			data, err = s.c.UIDSearch(crit, nil).Wait()
			return err
		})
		if err != nil {
			return err
		}
		// "n:*" includes the highest UID even when it is below n
		// (RFC 3501 §6.4.8): drop what was seen.
		uids := slices.DeleteFunc(data.AllUIDs(), func(u imap.UID) bool { return u <= cursor })
		if len(uids) == 0 {
			return nil
		}
		slices.Sort(uids)
		// A search result can be huge after a campaign: work a bounded
		// slice of it, then search again.
		uids = uids[:min(len(uids), 5000)]
		for len(uids) > 0 && ctx.Err() == nil {
			n := min(len(uids), cfg.BatchSize)
			heads, err := s.fetchHeads(uids[:n], cursor)
			if err != nil {
				return err
			}
			heads = cutBatch(heads, cfg.BatchBytes, cfg.MaxMessageSize)
			if len(heads) == 0 { // all expunged meanwhile
				cursor = uids[n-1]
				uids = uids[n:]
				continue
			}
			last := heads[len(heads)-1].uid
			if !s.guard.begin() {
				return ctx.Err()
			}
			msgs, err := s.fetchAndClassify(heads)
			if err != nil {
				s.guard.end()
				return err
			}
			select {
			case out <- &batch{heads: heads, msgs: msgs}:
			case <-ctx.Done():
				s.guard.end()
				return ctx.Err()
			}
			cursor = last
			i, _ := slices.BinarySearch(uids, last)
			uids = uids[i+1:]
		}
	}
	return ctx.Err()
}

// cutBatch keeps the longest prefix of heads within the byte budget (at
// least one). Over-size messages weigh nothing: their bodies are not kept.
func cutBatch(heads []head, budget, maxSize int) []head {
	total := 0
	for i, h := range heads {
		if h.size > maxSize {
			continue
		}
		if total+h.size > budget && i > 0 {
			return heads[:i]
		}
		total += h.size
	}
	return heads
}

// head is what is known of a message before its body is fetched.
type head struct {
	uid  imap.UID
	size int
	date time.Time
}

// fetchHeads fetches the size and arrival time of uids above cursor.
func (s *session) fetchHeads(uids []imap.UID, cursor imap.UID) ([]head, error) {
	var bufs []*imapclient.FetchMessageBuffer
	opts := &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}
	err := s.do("fetch sizes", func() (err error) {
		bufs, err = s.c.Fetch(imap.UIDSetNum(uids...), opts).Collect()
		return err
	})
	if err != nil {
		return nil, err
	}
	heads := make([]head, 0, len(bufs))
	for _, b := range bufs {
		if b.UID > cursor {
			heads = append(heads, head{uid: b.UID, size: int(b.RFC822Size), date: b.InternalDate})
		}
	}
	slices.SortFunc(heads, func(a, b head) int { return int(a.uid) - int(b.uid) })
	return heads, nil
}
