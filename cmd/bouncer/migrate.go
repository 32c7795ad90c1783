package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bouncer-mail/bouncer/store"
)

// databaseFlag adds --database-url to fl. Its value, when set, wins over
// DATABASE_URL, which wins over store.DefaultDatabaseURL.
func databaseFlag(fl *flag.FlagSet) *string {
	return fl.String("database-url", "", "PostgreSQL URL (default $DATABASE_URL, else "+store.DefaultDatabaseURL+")")
}

// openDB opens the store for a command that only reads and writes rows:
// the URL from databaseURL, its errors in dbError's words for what.
func openDB(ctx context.Context, e *env, flagValue, what string) (*store.DB, error) {
	url, err := databaseURL(e, flagValue)
	if err != nil {
		return nil, err
	}
	key, err := erasureKey(e.getenv)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errUsage, what, err)
	}
	db, err := store.Open(ctx, url, store.Options{ErasureKey: key})
	if err != nil {
		return nil, dbError(what, err)
	}
	return db, nil
}

// databaseURL is the flag's value, else $DATABASE_URL, else
// store.DefaultDatabaseURL; a value that is not a PostgreSQL URL is a
// usage error, refused before any connection is tried.
func databaseURL(e *env, flagValue string) (string, error) {
	url := flagValue
	if url == "" {
		url = e.getenv("DATABASE_URL")
	}
	if url == "" {
		return store.DefaultDatabaseURL, nil
	}
	if _, err := pgconn.ParseConfig(url); err != nil {
		return "", fmt.Errorf("%w: database URL %q is not a PostgreSQL URL (want postgres://USER:PASSWORD@HOST:PORT/DATABASE)", errUsage, redactDB(url))
	}
	return url, nil
}

func runMigrate(ctx context.Context, e *env, args []string) error {
	fl := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	dbURL := databaseFlag(fl)
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer migrate [--database-url URL] [up|status]")
		fmt.Fprintln(e.stderr, "up (the default) creates the database if missing and applies pending migrations; status lists them.")
		fl.PrintDefaults()
	}
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	action := "up"
	if fl.NArg() > 0 {
		action = fl.Arg(0)
	}
	if fl.NArg() > 1 {
		return fmt.Errorf("%w: migrate takes one action (up or status), got %d arguments", errUsage, fl.NArg())
	}
	url, err := databaseURL(e, *dbURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	switch action {
	case "up":
		applied, err := store.MigrateUp(ctx, url)
		if err != nil {
			return dbError("migrate", err)
		}
		for _, m := range applied {
			fmt.Fprintf(e.stdout, "applied %s\n", m.Name)
		}
		if len(applied) == 0 {
			fmt.Fprintln(e.stdout, "schema up to date")
		}
		return nil
	case "status":
		st, err := store.MigrationStatus(ctx, url)
		if err != nil {
			return dbError("migrate status", err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tMIGRATION\tSTATE\tAPPLIED AT")
		for _, m := range st {
			state, at := "pending", ""
			if m.Applied {
				state, at = "applied", m.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Version, m.Name, state, at)
		}
		return tw.Flush()
	}
	return fmt.Errorf("%w: unknown migrate action %q (want up or status)", errUsage, action)
}
