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
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/demo"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/explain"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker"
)

// demoDatabase is the database the demo uses on the default server, so
// that it never writes into the database `bouncer run` uses.
const demoDatabase = "bouncer_demo"

// demoUser is the demo mailbox's IMAP user; its password is generated.
const demoUser = "bounces"

// demoSetup is what runDemo reads before any I/O: its flags, the log
// and the suppression policy.
type demoSetup struct {
	logLevel string
	log      *slog.Logger
	policy   store.Policy
	samples  []demo.Sample
}

func runDemo(ctx context.Context, e *env, args []string) error {
	tuneGC(e.getenv)
	set, help, err := readDemoSetup(e, args)
	if help || err != nil {
		return err
	}
	// PostgreSQL first: without it there is no demo.
	dbURL := cmp.Or(e.getenv("DATABASE_URL"), demoDatabaseURL())
	db, err := openDemoDB(ctx, e, dbURL, set.policy)
	if err != nil || db == nil {
		return err
	}
	defer db.Close()
	im, err := demo.StartIMAP(demoUser, set.log)
	if err != nil {
		return err
	}
	defer im.Close()
	nc, natsURL, closeNATS, err := connectDemoNATS(e)
	if err != nil {
		return err
	}
	defer closeNATS()

	cfg := worker.DefaultConfig()
	cfg.IMAPURLs = []string{im.URL("INBOX", true)}
	cfg.Owner = fmt.Sprintf("bouncer-demo-%d", os.Getpid())
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	w, err := worker.New(cfg, db, nc, set.log)
	if err != nil {
		return err
	}
	// The explain page, /readyz and /metrics, as `bouncer run` serves them.
	ln, note, err := listenDemoHTTP(e.getenv("BOUNCER_HTTP_ADDR"))
	if err != nil {
		return fmt.Errorf("demo: http: %w", err)
	}
	token, err := explainToken(e, ln.Addr().String(), "")
	if err != nil {
		ln.Close()
		return fmt.Errorf("%w: demo: %v", errUsage, err)
	}
	mux := http.NewServeMux()
	w.Routes(mux)
	explain.New(classify.New(classify.Options{}), db, explain.Options{Token: token, Logger: set.log}).Register(mux)

	// Seed the mailbox before the worker looks at it: its first catch-up
	// finds them all.
	sums, lastUID, err := im.Seed(set.samples, time.Now())
	if err != nil {
		return err
	}
	web := "http://" + ln.Addr().String()
	fmt.Fprintf(e.stdout, "bouncer demo: %d sample messages in %s\n", len(set.samples), im.URL("INBOX", false))
	fmt.Fprintf(e.stdout, "  database %s, NATS %s, web %s/%s\n", redactDB(dbURL), redactDB(natsURL), web, note)
	show := &demo.Show{
		Out: e.stdout, TTY: isTerminal(e.stdout),
		DB: db, Worker: w, NATS: nc, IMAP: im,
		Mailbox: cfg.Mailboxes[0].Key, LastUID: lastUID, Sums: sums,
		Web: web, DatabaseURL: redactDB(dbURL), NATSURL: redactDB(natsURL),
	}
	return serveDemo(ctx, e, w, show, newHTTPServer(mux, nil), ln)
}

// readDemoSetup reads the demo's flags and environment.
func readDemoSetup(e *env, args []string) (set demoSetup, help bool, err error) {
	fl := flag.NewFlagSet("demo", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer demo [--log-json]")
		fmt.Fprintln(e.stderr, "Runs the whole pipeline on sample bounces: an in-memory IMAP server, NATS JetStream (embedded")
		fmt.Fprintln(e.stderr, "unless $NATS_URL), PostgreSQL from $DATABASE_URL (default: database "+demoDatabase+" on the local")
		fmt.Fprintln(e.stderr, "server). Prints a summary, then keeps watching the mailbox until Ctrl-C.")
		fl.PrintDefaults()
	}
	logJSON := fl.Bool("log-json", false, "log as JSON lines (default: plain text), to stderr either way")
	if help, err := parseFlags(fl, args); help || err != nil {
		return set, help, err
	}
	if fl.NArg() > 0 {
		return set, false, fmt.Errorf("%w: demo takes no arguments, got %q", errUsage, fl.Arg(0))
	}
	// The demo talks on stdout; its log is for trouble.
	set.logLevel = cmp.Or(e.getenv("BOUNCER_LOG_LEVEL"), "warn")
	var level slog.Level
	if err := level.UnmarshalText([]byte(set.logLevel)); err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, set.logLevel) {
		return set, false, fmt.Errorf("%w: demo: BOUNCER_LOG_LEVEL=%q (want debug, info, warn or error)", errUsage, set.logLevel)
	}
	// A person reads the demo's stdout: its log (on stderr, which a
	// terminal shows in between) is plain text unless JSON is asked for.
	var handler slog.Handler = slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})
	if *logJSON {
		handler = slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level})
	}
	set.log = slog.New(handler)
	if set.policy, err = store.PolicyFromEnv(e.getenv); err != nil {
		return set, false, fmt.Errorf("%w: demo: %v", errUsage, err)
	}
	if set.samples, err = demo.Samples(); err != nil {
		return set, false, fmt.Errorf("demo: samples: %w", err)
	}
	return set, false, nil
}

// openDemoDB migrates and opens the demo's database; nil and no error
// when ctx ended first (Ctrl-C while waiting for the server).
func openDemoDB(ctx context.Context, e *env, dbURL string, policy store.Policy) (*store.DB, error) {
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err := store.Migrate(mctx, dbURL)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, noDatabase(dbURL, e.getenv("DATABASE_URL") != "", err)
	}
	db, err := store.Open(ctx, dbURL, store.Options{Policy: policy})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return db, nil
}

// connectDemoNATS connects to $NATS_URL, or to an embedded server when it
// is unset; closeNATS closes both.
func connectDemoNATS(e *env) (nc *nats.Conn, natsURL string, closeNATS func(), err error) {
	natsURL = e.getenv("NATS_URL")
	closeServer := func() {}
	if natsURL == "" {
		ns, err := demo.StartNATS()
		if err != nil {
			return nil, "", nil, err
		}
		closeServer, natsURL = func() { ns.Close() }, ns.URL()
	}
	opts, err := natsAuth(e.getenv)
	if err != nil {
		closeServer()
		return nil, "", nil, fmt.Errorf("%w: demo: %v", errUsage, err)
	}
	nc, err = nats.Connect(natsURL, append(opts, nats.Name("bouncer demo"), nats.Timeout(5*time.Second))...)
	if err != nil {
		closeServer()
		return nil, "", nil, fmt.Errorf("%w: demo: NATS_URL=%s does not answer (%v); unset NATS_URL to use an embedded server", errUsage, redactDB(natsURL), err)
	}
	return nc, natsURL, func() { nc.Close(); closeServer() }, nil
}

// serveDemo runs the worker, the web server and the show until ctx ends
// (Ctrl-C, the way a demo ends: no error) or one of them fails.
func serveDemo(ctx context.Context, e *env, w *worker.Worker, show *demo.Show, srv *http.Server, ln net.Listener) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("demo: http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error { return show.Run(gctx) })
	err := g.Wait()
	if ctx.Err() != nil {
		fmt.Fprintln(e.stdout, "\nbouncer demo: stopped")
		return nil
	}
	return err
}

// demoDatabaseURL is the default server's URL naming the demo's database.
func demoDatabaseURL() string {
	u, err := url.Parse(store.DefaultDatabaseURL)
	if err != nil {
		return store.DefaultDatabaseURL
	}
	u.Path = "/" + demoDatabase
	return u.String()
}

// redactDB returns a database or NATS URL without its password.
func redactDB(s string) string { return worker.RedactURL(s) }

// noDatabase turns a failure to reach PostgreSQL into a usage error that
// says how to get one; other failures stay what they are.
func noDatabase(dbURL string, fromEnv bool, err error) error {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		return fmt.Errorf("demo: %w", err)
	}
	where := redactDB(dbURL)
	if u, perr := url.Parse(dbURL); perr == nil && u.Host != "" {
		where = u.Host
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) { // it answered, and said no
		return usageError(fmt.Sprintf("demo: PostgreSQL at %s refused the demo: %s.\n"+
			"Set DATABASE_URL to a server and user that may create the database (the demo's own: %s).", where, pe.Message, demoDatabase))
	}
	cause := err.Error()
	var oe *net.OpError
	if errors.As(err, &oe) {
		cause = oe.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "demo: no PostgreSQL answers at %s (%s), and the demo needs one.\n", where, cause)
	if fromEnv {
		b.WriteString("Check DATABASE_URL, or unset it to use the local server (database " + demoDatabase + ").\n")
	}
	b.WriteString("Get one, then run the demo again:\n")
	b.WriteString("  the local server:   sudo service postgresql start   (user postgres, trust on 127.0.0.1, the default URL)\n")
	b.WriteString("  a container:        docker run -d -p 127.0.0.1:5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15\n")
	b.WriteString("  the compose stack:  deploy/gen-secrets && docker compose up -d postgres, then\n")
	b.WriteString("                      DATABASE_URL=\"postgres://bouncer:$(cat secrets/postgres_password)@127.0.0.1:15432/" + demoDatabase + "\" bouncer demo\n")
	b.WriteString("  any other server:   DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/" + demoDatabase + " bouncer demo")
	return usageError(b.String())
}

// usageError is an error of the user's setup: its text is all there is to
// say (no wrapped cause), and the exit status is 2.
type usageError string

func (e usageError) Error() string        { return string(e) }
func (e usageError) Is(target error) bool { return target == errUsage }

// listenDemoHTTP listens on addr (default 127.0.0.1:8080); when that port
// is taken it takes a free one on the same host, and says so in note.
func listenDemoHTTP(addr string) (ln net.Listener, note string, err error) {
	if addr == "" {
		addr = worker.DefaultHTTPAddr
	}
	ln, err = net.Listen("tcp", addr)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, "", err
	}
	host, _, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, "", err
	}
	ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, "", err
	}
	return ln, fmt.Sprintf(" (%s is taken: a free port instead)", addr), nil
}

// isTerminal reports whether w is a terminal, where the progress line is
// redrawn in place; elsewhere (a pipe, a file, a test) it prints lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
