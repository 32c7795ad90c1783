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

func runDemo(ctx context.Context, e *env, args []string) error {
	tuneGC(e.getenv)
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
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: demo takes no arguments, got %q", errUsage, fl.Arg(0))
	}
	// The demo talks on stdout; its log is for trouble.
	logLevel := cmp.Or(e.getenv("BOUNCER_LOG_LEVEL"), "warn")
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, logLevel) {
		return fmt.Errorf("%w: demo: BOUNCER_LOG_LEVEL=%q (want debug, info, warn or error)", errUsage, logLevel)
	}
	// A person reads the demo's stdout: its log (on stderr, which a
	// terminal shows in between) is plain text unless JSON is asked for.
	var handler slog.Handler = slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})
	if *logJSON {
		handler = slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler)
	policy, err := store.PolicyFromEnv(e.getenv)
	if err != nil {
		return fmt.Errorf("%w: demo: %v", errUsage, err)
	}
	samples, err := demo.Samples()
	if err != nil {
		return fmt.Errorf("demo: samples: %w", err)
	}
	out := e.stdout

	// PostgreSQL first: without it there is no demo.
	dbURL := e.getenv("DATABASE_URL")
	if dbURL == "" {
		dbURL = demoDatabaseURL()
	}
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = store.Migrate(mctx, dbURL)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return noDatabase(dbURL, e.getenv("DATABASE_URL") != "", err)
	}
	db, err := store.Open(ctx, dbURL, store.Options{Policy: policy})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer db.Close()

	im, err := demo.StartIMAP(demoUser, log)
	if err != nil {
		return err
	}
	defer im.Close()
	natsURL := e.getenv("NATS_URL")
	if natsURL == "" {
		ns, err := demo.StartNATS()
		if err != nil {
			return err
		}
		defer ns.Close()
		natsURL = ns.URL()
	}
	nc, err := nats.Connect(natsURL, nats.Name("bouncer demo"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("%w: demo: NATS_URL=%s does not answer (%v); unset NATS_URL to use an embedded server", errUsage, redactDB(natsURL), err)
	}
	defer nc.Close()

	cfg := worker.DefaultConfig()
	cfg.DatabaseURL, cfg.NATSURL = dbURL, natsURL
	cfg.IMAPURLs = []string{im.URL("INBOX", true)}
	cfg.Owner = fmt.Sprintf("bouncer-demo-%d", os.Getpid())
	cfg.LogLevel = logLevel
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	w, err := worker.New(cfg, db, nc, log)
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
	explain.New(classify.New(classify.Options{}), db, explain.Options{Token: token, Logger: log}).Register(mux)

	// Seed the mailbox before the worker looks at it: its first catch-up
	// finds them all.
	sums, lastUID, err := im.Seed(samples, time.Now())
	if err != nil {
		return err
	}
	web := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "bouncer demo: %d sample messages in %s\n", len(samples), im.URL("INBOX", false))
	fmt.Fprintf(out, "  database %s, NATS %s, web %s/%s\n", redactDB(dbURL), redactDB(natsURL), web, note)
	show := &demo.Show{
		Out: out, TTY: isTerminal(out),
		DB: db, Worker: w, NATS: nc, IMAP: im,
		Mailbox: cfg.Mailboxes[0].Key, LastUID: lastUID, Sums: sums,
		Web: web, DatabaseURL: redactDB(dbURL), NATSURL: redactDB(natsURL),
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
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
	err = g.Wait()
	if ctx.Err() != nil { // Ctrl-C: the way a demo ends
		fmt.Fprintln(out, "\nbouncer demo: stopped")
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

// redactDB returns a database URL without its password.
func redactDB(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return s
}

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
