// Package chaos is `bouncer chaos`: a fault test a user can run. It
// generates bounces from a seed, has them worked by `bouncer run` child
// processes on a private Dovecot, Postgres cluster and NATS server, once
// without faults (the reference) and once while it SIGKILLs the workers,
// restarts Postgres, NATS and Dovecot and changes the mailbox's
// UIDVALIDITY (RFC 3501 §2.3.1.1), then compares: the messages per
// folder, the rows per (message, recipient), the suppressions, and the
// events in the stream against the outbox. Anything lost or duplicated
// fails the run.
package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/bouncer-mail/bouncer/store"
)

// Options are the run's settings; zero values take the defaults.
type Options struct {
	Messages  int    // bounces generated (default 5000)
	Kills     int    // SIGKILLs of a worker (default 10)
	Seed      uint64 // the input and the fault schedule follow from it
	Workers   int    // `bouncer run` processes on the mailbox (default 2)
	Keep      bool   // keep the directory (servers' data, worker logs)
	Bin       string // the bouncer binary the workers run (default: this one)
	BatchSize int    // BOUNCER_BATCH_SIZE of the workers (default 100, less for few messages)
	// Timeout bounds each run, clean and chaos (default 5 min plus 50 ms a
	// message).
	Timeout time.Duration
}

// ErrLoss is returned when the chaos run lost or duplicated anything.
var ErrLoss = errors.New("chaos: messages, rows or events lost or duplicated")

func (o *Options) defaults() error {
	if o.Messages == 0 {
		o.Messages = 5000
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.BatchSize == 0 {
		// Many commits between faults: at most 100, fewer for a short run.
		o.BatchSize = max(5, min(100, o.Messages/(2*(o.Kills+4))))
	}
	if o.Timeout == 0 {
		o.Timeout = 5*time.Minute + time.Duration(o.Messages)*50*time.Millisecond
	}
	if o.Bin == "" {
		bin, err := os.Executable()
		if err != nil {
			return fmt.Errorf("chaos: the bouncer binary: %w", err)
		}
		o.Bin = bin
	}
	return nil
}

// env is the private servers of a run.
type env struct {
	dir        string
	dovecot    *dovecot
	pg         *postgres
	natsClean  *natsServer
	natsChaos  *natsServer
	dovecotMu  sync.RWMutex // appends hold it for reading; a restart or UIDVALIDITY change for writing
	workersLog io.Writer
}

func (e *env) close() {
	if e.dovecot != nil {
		e.dovecot.stop()
	}
	if e.pg != nil {
		e.pg.stop()
	}
	for _, n := range []*natsServer{e.natsClean, e.natsChaos} {
		if n != nil {
			n.stop()
		}
	}
}

// startEnv starts the private servers in dir and creates the two databases.
func startEnv(ctx context.Context, dir string) (*env, error) {
	e := &env{dir: dir}
	var rnd [8]byte
	rand.Read(rnd[:])
	var err error
	if e.dovecot, err = startDovecot(dir, hex.EncodeToString(rnd[:])); err != nil {
		return e, err
	}
	if e.pg, err = startPostgres(ctx, dir); err != nil {
		return e, err
	}
	if e.natsClean, err = startNATS(dir, "clean"); err != nil {
		return e, err
	}
	if e.natsChaos, err = startNATS(dir, "chaos"); err != nil {
		return e, err
	}
	for _, db := range []string{"clean", "chaos"} {
		if err := store.Migrate(ctx, e.pg.url(db)); err != nil {
			return e, err
		}
	}
	f, err := os.Create(filepath.Join(dir, "workers.log"))
	if err != nil {
		return e, err
	}
	e.workersLog = f
	return e, nil
}

// Run runs the clean run and the chaos run and prints the comparison on
// out. It returns ErrLoss when anything was lost or duplicated, another
// error when the run itself could not be done.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if err := o.defaults(); err != nil {
		return err
	}
	started := time.Now()
	dir, err := os.MkdirTemp("", "bouncer-chaos-")
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	os.Chmod(dir, 0o755) // Dovecot's and Postgres's users read below it
	keep := o.Keep
	defer func() {
		if keep {
			fmt.Fprintf(out, "kept: %s (servers' data and logs, workers.log)\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	msgs, err := generate(o.Messages, o.Seed)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	fmt.Fprintf(out, "bouncer chaos: %d messages (seed %d), %d workers, %d kills, Postgres, NATS and Dovecot restarted once, UIDVALIDITY changed once\n",
		o.Messages, o.Seed, o.Workers, o.Kills)
	e, err := startEnv(ctx, dir)
	defer e.close()
	if err != nil {
		keep = true
		return fmt.Errorf("chaos: start servers: %w", err)
	}
	t0 := time.Now()
	appended, err := e.cleanRun(ctx, o, msgs)
	if err != nil {
		keep = true
		return fmt.Errorf("chaos: clean run: %w", err)
	}
	fmt.Fprintf(out, "clean run: %v (appending %v, then one worker, batches of %d)\n",
		time.Since(t0).Round(time.Second), appended.Round(time.Second), o.BatchSize)
	t0 = time.Now()
	if err := e.chaosRun(ctx, o, msgs, out); err != nil {
		keep = true
		return fmt.Errorf("chaos: chaos run: %w", err)
	}
	fmt.Fprintf(out, "chaos run: %v (%d workers, appending as they work)\n", time.Since(t0).Round(time.Second), o.Workers)
	r, err := e.check(ctx, msgs)
	if err != nil {
		keep = true
		return fmt.Errorf("chaos: check: %w", err)
	}
	r.print(out, time.Since(started))
	if r.bad() {
		keep = true
		return ErrLoss
	}
	return nil
}

// cleanRun appends every message, then one worker works them without
// faults. It returns how long the appending took.
func (e *env) cleanRun(ctx context.Context, o Options, msgs []message) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	t0 := time.Now()
	if err := e.appendAll(ctx, "clean", msgs, 500, nil); err != nil {
		return 0, err
	}
	appended := time.Since(t0)
	ws := &workerSet{bin: o.Bin, dbURL: e.pg.url("clean"), natsURL: e.natsClean.url(),
		imap: e.dovecot.url("clean"), log: e.workersLog, prefix: "clean", batchSize: o.BatchSize}
	defer ws.stop()
	if _, err := ws.start(); err != nil {
		return 0, err
	}
	return appended, e.waitSettled(ctx, "clean", len(msgs), ws)
}

// appendAll APPENDs msgs to user's INBOX, chunk at a time pipelined, each
// chunk on a fresh connection while holding dovecotMu for reading: a
// Dovecot restart never cuts an APPEND in two, so nothing is stored twice
// or lost by the test itself.
//
// gate, when not nil, is asked before each chunk with the number of
// messages appended so far and may wait (it returns ctx's error).
func (e *env) appendAll(ctx context.Context, user string, msgs []message, chunk int, gate func(ctx context.Context, appended int) error) error {
	for i := 0; i < len(msgs); i += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		if gate != nil {
			if err := gate(ctx, i); err != nil {
				return err
			}
		}
		e.dovecotMu.RLock()
		err := e.appendChunk(user, msgs[i:min(i+chunk, len(msgs))])
		e.dovecotMu.RUnlock()
		if err != nil {
			return fmt.Errorf("append messages %d-%d: %w", i, min(i+chunk, len(msgs))-1, err)
		}
	}
	return nil
}

func (e *env) appendChunk(user string, msgs []message) error {
	c, err := imapclient.DialInsecure(e.dovecot.addr(), nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(user, e.dovecot.password).Wait(); err != nil {
		return err
	}
	var cmds []*imapclient.AppendCommand
	for _, m := range msgs {
		cmd := c.Append("INBOX", int64(len(m.raw)), nil)
		cmd.Write(m.raw)
		if err := cmd.Close(); err != nil {
			return err
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if _, err := cmd.Wait(); err != nil {
			return err
		}
	}
	return c.Logout().Wait()
}

// settled is true when the database holds every message, every event is
// published, the workers' checkpoint has the mailbox's UIDVALIDITY (a
// worker saw the change), and the mailbox holds every message once, with only the
// mail the worker leaves in place (a person's reply) in INBOX.
func (e *env) settled(ctx context.Context, user string, n int) (bool, string) {
	got, pending, err := progress(ctx, e.pg.url(user))
	if err != nil {
		return false, err.Error()
	}
	if got < n || pending > 0 {
		return false, fmt.Sprintf("%d of %d messages stored, %d events unpublished", got, n, pending)
	}
	if v, cp, err := e.uidValidities(ctx, user); err != nil || v != cp {
		return false, fmt.Sprintf("UIDVALIDITY %d, the workers' checkpoint %d (%v)", v, cp, err)
	}
	counts, err := e.folderCounts(user)
	if err != nil {
		return false, err.Error()
	}
	left, err := notBounces(ctx, e.pg.url(user))
	if err != nil {
		return false, err.Error()
	}
	if counts["INBOX"] != left || counts["INBOX"]+counts["Processed"]+counts["Quarantine"] != n {
		return false, fmt.Sprintf("folders %v, want INBOX %d and %d in all", counts, left, n)
	}
	return true, ""
}

// waitSettled waits until the run is settled, checking twice a second
// (nothing tells the harness that a child committed and moved a batch).
// A worker that dies on its own fails the run.
func (e *env) waitSettled(ctx context.Context, user string, n int, ws *workerSet) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		if w := ws.died(); w != nil {
			return fmt.Errorf("worker %s exited on its own (%v); see workers.log", w.name, w.cmd.ProcessState)
		}
		ok, why := e.settled(ctx, user, n)
		if ok {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("not settled in time: %s", last)
		case <-tick.C:
		}
	}
}

// folderCounts returns how many messages each of user's folders holds.
func (e *env) folderCounts(user string) (map[string]int, error) {
	c, err := imapclient.DialInsecure(e.dovecot.addr(), nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(user, e.dovecot.password).Wait(); err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, f := range folders {
		st, err := c.Status(f, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			var ie *imap.Error
			if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
				continue
			}
			return nil, err
		}
		counts[f] = int(*st.NumMessages)
	}
	return counts, nil
}

// uidValidity returns user's INBOX's UIDVALIDITY.
func (e *env) uidValidity(user string) (uint32, error) {
	c, err := imapclient.DialInsecure(e.dovecot.addr(), nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Login(user, e.dovecot.password).Wait(); err != nil {
		return 0, err
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		return 0, err
	}
	return st.UIDValidity, nil
}

// uidValidities returns user's INBOX's UIDVALIDITY and the one of the
// workers' checkpoint.
func (e *env) uidValidities(ctx context.Context, user string) (mailbox, checkpoint int64, err error) {
	v, err := e.uidValidity(user)
	if err != nil {
		return 0, 0, err
	}
	cp, err := checkpointUIDValidity(ctx, e.pg.url(user))
	return int64(v), cp, err
}
