package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/api"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/explain"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker"
)

// processConfig is the settings of the process that no package takes
// itself: cmd opens the pool, connects to NATS, listens and builds the
// logger with them, and hands each package what it uses.
type processConfig struct {
	databaseURL, natsURL, httpAddr, logLevel string
}

// readProcessConfig reads DATABASE_URL, NATS_URL, BOUNCER_HTTP_ADDR and
// BOUNCER_LOG_LEVEL over the defaults that worker.EnvVars documents.
func readProcessConfig(getenv func(string) string) processConfig {
	return processConfig{
		databaseURL: cmp.Or(getenv("DATABASE_URL"), worker.DefaultDatabaseURL),
		natsURL:     cmp.Or(getenv("NATS_URL"), worker.DefaultNATSURL),
		httpAddr:    cmp.Or(getenv("BOUNCER_HTTP_ADDR"), worker.DefaultHTTPAddr),
		logLevel:    cmp.Or(getenv("BOUNCER_LOG_LEVEL"), "info"),
	}
}

// check refuses settings that cannot work, naming the variable or flag.
func (p processConfig) check() error {
	var level slog.Level
	switch {
	case p.databaseURL == "":
		return errors.New("--database-url is empty (want postgres://USER@HOST:PORT/DATABASE)")
	case p.natsURL == "":
		return errors.New("--nats-url is empty (want nats://HOST:PORT)")
	case level.UnmarshalText([]byte(p.logLevel)) != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, p.logLevel):
		return fmt.Errorf("log level %q (want debug, info, warn or error)", p.logLevel)
	}
	if _, err := pgconn.ParseConfig(p.databaseURL); err != nil {
		return fmt.Errorf("database URL %q is not a PostgreSQL URL (want postgres://USER:PASSWORD@HOST:PORT/DATABASE)", redactDB(p.databaseURL))
	}
	return nil
}

// logger is the process's JSON log on w at the configured level.
func (p processConfig) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(p.logLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func runRun(ctx context.Context, e *env, args []string) error {
	tuneGC(e.getenv)
	proc := readProcessConfig(e.getenv)
	cfg := worker.DefaultConfig()
	if err := cfg.FromEnv(e.getenv); err != nil {
		return fmt.Errorf("%w: run: %v", errUsage, err)
	}
	fl := flag.NewFlagSet("run", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	imapURLs := fl.String("imap", "", "bounce mailbox URL(s), comma-separated (default $BOUNCER_IMAP_URL)")
	fl.StringVar(&proc.databaseURL, "database-url", proc.databaseURL, "Postgres URL ($DATABASE_URL)")
	fl.StringVar(&proc.natsURL, "nats-url", proc.natsURL, "NATS URL ($NATS_URL)")
	fl.StringVar(&proc.httpAddr, "http-addr", proc.httpAddr, "health and metrics address, \"off\" for none ($BOUNCER_HTTP_ADDR)")
	fl.StringVar(&cfg.ConfigFile, "config", cfg.ConfigFile, "JSON file of more mailboxes ($BOUNCER_CONFIG)")
	fl.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "messages per batch ($BOUNCER_BATCH_SIZE)")
	fl.StringVar(&cfg.Owner, "owner", cfg.Owner, "lease owner name ($BOUNCER_OWNER; default host-pid)")
	fl.StringVar(&proc.logLevel, "log-level", proc.logLevel, "debug, info, warn or error ($BOUNCER_LOG_LEVEL)")
	migrate := fl.Bool("migrate", true, "apply the database migrations at start")
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer run [flags]")
		fmt.Fprintln(e.stderr, "Works the bounce mailboxes: IMAP IDLE -> classify -> Postgres -> NATS. Environment: see README.md.")
		fl.PrintDefaults()
	}
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	if *imapURLs != "" {
		cfg.IMAPURLs = worker.SplitList(*imapURLs)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: run: %v", errUsage, err)
	}
	if err := proc.check(); err != nil {
		return fmt.Errorf("%w: run: %v", errUsage, err)
	}
	policy, err := store.PolicyFromEnv(e.getenv)
	if err != nil {
		return fmt.Errorf("%w: run: suppression policy: %v", errUsage, err)
	}
	ekey, err := erasureKey(e.getenv)
	if err != nil {
		return fmt.Errorf("%w: run: %v", errUsage, err)
	}
	// The explain page's token rules first: refuse before any I/O.
	var token string
	if proc.httpAddr != "off" {
		t, err := explainToken(e, proc.httpAddr, "")
		if err != nil {
			return fmt.Errorf("%w: run: %v", errUsage, err)
		}
		token = t
	}
	natsOpts, err := natsAuth(e.getenv)
	if err != nil {
		return fmt.Errorf("%w: run: %v", errUsage, err)
	}
	log := proc.logger(e.stderr)
	warnPlaintextDatabase(log, proc.databaseURL)

	db, err := openStore(ctx, proc.databaseURL, *migrate, store.Options{Policy: policy, ErasureKey: ekey}, log)
	if err != nil {
		return err
	}
	defer db.Close()
	nc, err := nats.Connect(proc.natsURL, append(natsOpts, nats.Name("bouncer "+cfg.Owner),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(-1), // publishing fails fast while NATS is away; the outbox keeps the rows
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: closed by us
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }))...)
	if err != nil {
		return fmt.Errorf("run: nats: %w", err)
	}
	defer nc.Close()
	w, err := worker.New(cfg, db, nc, log)
	if err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(ctx) })
	if proc.httpAddr != "off" {
		if err := serveHTTP(ctx, g, proc.httpAddr, runMux(w, cfg, db, token, log), log); err != nil {
			return err
		}
	}
	pol := db.Policy()
	log.Info("bouncer running", "mailboxes", len(cfg.Mailboxes), "owner", cfg.Owner,
		"suppress_scope", pol.Scope, "complaint_scope", pol.ComplaintScope, "soft_threshold", pol.SoftThreshold,
		"soft_window", pol.SoftWindow.String(), "soft_expiry", pol.SoftExpiry.String(), "soft_categories", pol.SoftCategories)
	err = g.Wait()
	log.Info("bouncer stopped", "err", err)
	return err
}

// runMux is what `bouncer run` serves on BOUNCER_HTTP_ADDR: health and
// metrics, the explain page, and the suppressions API behind the page's
// access checks.
func runMux(w *worker.Worker, cfg worker.Config, db *store.DB, token string, log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	w.Routes(mux)
	c := classify.New(cfg.Headers.Options(cfg.MaxMessageSize))
	ex := explain.New(c, db, explain.Options{Token: token, Logger: log, Records: recordsFunc(c, cfg.Trust.VERP)})
	ex.Register(mux)
	api.New(db, api.Options{Logger: log}).Register(mux, ex.Protect)
	return mux
}

// warnPlaintextDatabase logs, once at start, why the database connection
// may cross the network in clear (store.TransportWarning), if it may.
func warnPlaintextDatabase(log *slog.Logger, databaseURL string) {
	if why := store.TransportWarning(databaseURL); why != "" {
		log.Warn("database connection not protected by TLS", "database", redactDB(databaseURL), "why", why)
	}
}

// serveHTTP serves mux on addr in g, and shuts the server down when ctx
// ends.
func serveHTTP(ctx context.Context, g *errgroup.Group, addr string, mux *http.ServeMux, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("run: http: %w", err)
	}
	log.Info("http listening", "addr", ln.Addr().String())
	srv := newHTTPServer(mux, log)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("run: http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return nil
}

// openStore migrates (when asked) and opens the database, waiting with
// backoff while Postgres is not up yet (a compose stack starts everything
// at once).
func openStore(ctx context.Context, url string, migrate bool, opts store.Options, log *slog.Logger) (*store.DB, error) {
	wait := time.Second
	for {
		err := func() error {
			if migrate {
				if err := store.Migrate(ctx, url); err != nil {
					return fmt.Errorf("migrate: %w", err)
				}
			}
			return nil
		}()
		if err == nil {
			db, oerr := store.Open(ctx, url, opts)
			if oerr == nil {
				return db, nil
			}
			err = oerr
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("run: database: %w", err)
		}
		log.Warn("database not ready", "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("run: database: %w", err)
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// tuneGC sets the garbage collector of a long-running worker, unless the
// user did (GOGC, GOMEMLIMIT): classifying allocates much and keeps little,
// so a higher target buys throughput (about a tenth on two cores), and a
// soft memory limit keeps the process small all the same.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(workerGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(workerMemoryLimit)
	}
}

// The defaults of tuneGC (parse uses the GC target too); worker/bench_test.go
// starts its worker with the same (GOGC=400, GOMEMLIMIT=192MiB), and
// store/bench_test.go runs with them.
const (
	workerGCPercent   = 400
	workerMemoryLimit = 192 << 20
)
