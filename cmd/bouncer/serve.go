package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/api"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/explain"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker/webhook"
)

func runServe(ctx context.Context, e *env, args []string) error {
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	addr := fl.String("addr", "", "listen address (default $BOUNCER_HTTP_ADDR, else "+explain.DefaultAddr+")")
	tokenFile := fl.String("token-file", "", "file holding the access token (default $BOUNCER_HTTP_TOKEN_FILE, or the token itself in $BOUNCER_HTTP_TOKEN)")
	dbURL := fl.String("database-url", "", "PostgreSQL URL for address lookup (default $DATABASE_URL; none: no lookup)")
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer serve [--addr HOST:PORT] [--token-file FILE] [--database-url URL]")
		fmt.Fprintln(e.stderr, "Serves the explain page at /, POST /api/v1/parse and the suppressions API under /api/v1/. Beyond loopback a token is required.")
		fl.PrintDefaults()
	}
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: serve takes no arguments", errUsage)
	}
	if *addr == "" {
		*addr = e.getenv("BOUNCER_HTTP_ADDR")
	}
	if *addr == "" {
		*addr = explain.DefaultAddr
	}
	if *dbURL == "" {
		*dbURL = e.getenv("DATABASE_URL")
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, nil))

	// The token rules first: refuse before touching the database.
	token, err := explainToken(e, *addr, *tokenFile)
	if err != nil {
		return fmt.Errorf("%w: serve: %v", errUsage, err)
	}
	key, err := erasureKey(e.getenv)
	if err != nil {
		return fmt.Errorf("%w: serve: %v", errUsage, err)
	}
	db := openLookupDB(ctx, *dbURL, key, log)
	if db != nil {
		defer db.Close()
	}
	codec, err := parseCodec(e, "serve")
	if err != nil {
		return err
	}
	c, err := envClassifier(e, "serve")
	if err != nil {
		return err
	}
	h := explain.New(c, db, explain.Options{Token: token, Logger: log, Records: recordsFunc(c, codec)})
	mux := http.NewServeMux()
	h.Register(mux)
	api.New(db, api.Options{Logger: log}).Register(mux, h.Protect)
	handler, err := serveWebhooks(e, mux, db, c, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := newHTTPServer(handler, log)
	log.Info("explain page listening", "url", "http://"+ln.Addr().String()+"/",
		"token", token != "", "lookup", db != nil)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	log.Info("explain page stopped")
	if err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	return nil
}

// explainToken returns the explain page's token for a server listening on
// addr, by the rules of `bouncer serve`: read from tokenFile when given (a
// flag), else BOUNCER_HTTP_TOKEN_FILE or BOUNCER_HTTP_TOKEN; "" for none,
// which is allowed on loopback only (else an error wrapping
// explain.ErrTokenRequired). `bouncer run` uses it to mount the page
// beside /metrics:
//
//	token, err := explainToken(e, cfg.HTTPAddr, "")
//	...
//	explain.New(classify.New(classify.Options{}), db, explain.Options{Token: token, Logger: log}).Register(mux)
func explainToken(e *env, addr, tokenFile string) (string, error) {
	token, err := explain.LoadToken(e.getenv, tokenFile)
	if err != nil {
		return "", err
	}
	if err := explain.CheckListen(addr, token); err != nil {
		return "", err
	}
	return token, nil
}

// openLookupDB opens the database for address lookup, or returns nil, saying
// why in the log: the page works without one.
func openLookupDB(ctx context.Context, url string, erasureKey []byte, log *slog.Logger) *store.DB {
	if url == "" {
		log.Info("no DATABASE_URL: address lookup is off")
		return nil
	}
	db, err := store.Open(ctx, url, store.Options{MaxConns: 8, ErasureKey: erasureKey})
	if err != nil {
		log.Warn("database URL not usable: address lookup is off", "err", err)
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.Ping(pctx); err != nil {
		db.Close()
		log.Warn("database not reachable: address lookup is off", "err", err)
		return nil
	}
	return db
}

// serveWebhooks returns page with the configured webhook endpoints
// (BOUNCER_WEBHOOK_*) mounted beside it, or page alone when none is. The
// events are saved to db's outbox; a `bouncer run` relays them to NATS.
func serveWebhooks(e *env, page http.Handler, db *store.DB, c *classify.Classifier, log *slog.Logger) (http.Handler, error) {
	cfg := webhook.DefaultConfig()
	if err := cfg.FromEnv(e.getenv); err != nil {
		return nil, fmt.Errorf("%w: serve: %v", errUsage, err)
	}
	if !cfg.Enabled() {
		return page, nil
	}
	if db == nil {
		return nil, fmt.Errorf("%w: serve: BOUNCER_WEBHOOK_* set but no usable DATABASE_URL to save the events to", errUsage)
	}
	hooks, err := webhook.New(cfg, db, webhook.Options{Log: log.With("component", "webhook"), Classifier: c})
	if err != nil {
		return nil, fmt.Errorf("%w: serve: %v", errUsage, err)
	}
	mux := http.NewServeMux()
	hooks.Register(mux)
	mux.Handle("/", page)
	return mux, nil
}
