// Package storetest gives each test a PostgreSQL database of its own on the
// real server, so tests run in parallel and leave nothing behind.
//
// The server is the one of BOUNCER_TEST_DATABASE_URL, else DATABASE_URL,
// else store.DefaultDatabaseURL (the local server); only the database name
// of that URL is replaced. A server that does not answer fails the test: it
// is never skipped.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/store"
)

// EnvURL names the variable that points tests at another server.
const EnvURL = "BOUNCER_TEST_DATABASE_URL"

// ServerURL returns the URL of the test server, as configured.
func ServerURL() string {
	for _, k := range []string{EnvURL, "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return store.DefaultDatabaseURL
}

// AdminURL returns the URL of the test server's maintenance database
// "postgres", for creating and dropping databases.
func AdminURL(t testing.TB) string {
	t.Helper()
	u, err := withDatabase(ServerURL(), "postgres")
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return u
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// NewDatabase returns the URL of a database name that does not exist yet
// on the test server, and drops the database (if something created it) when
// the test ends. Use it to test creating one; most tests want Migrated.
func NewDatabase(t testing.TB) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(ServerURL())
	if err != nil {
		t.Fatalf("storetest: parse %s: %v", EnvURL, err)
	}
	var rnd [5]byte
	_, _ = rand.Read(rnd[:])
	name := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	name = "bt_" + strings.Trim(name, "_") + "_" + hex.EncodeToString(rnd[:])
	admin := cfg.Copy()
	admin.Database = "postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		t.Fatalf("storetest: the test PostgreSQL server does not answer (set %s or DATABASE_URL): %v", EnvURL, err)
	}
	_ = conn.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, admin)
		if err != nil {
			t.Errorf("storetest: drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Errorf("storetest: drop %s: %v", name, err)
		}
	})
	u, err := withDatabase(ServerURL(), name)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return u
}

// withDatabase returns serverURL (a URL or a key=value DSN) naming database
// name instead.
func withDatabase(serverURL, name string) (string, error) {
	if strings.HasPrefix(serverURL, "postgres://") || strings.HasPrefix(serverURL, "postgresql://") {
		u, err := url.Parse(serverURL)
		if err != nil {
			return "", err
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	return serverURL + " dbname=" + name, nil // the last dbname wins
}

// Migrated returns the URL of a fresh database with the schema applied.
func Migrated(t testing.TB) string {
	t.Helper()
	url := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("storetest: migrate: %v", err)
	}
	return url
}

// Open returns a DB on a fresh migrated database, closed when the test ends.
func Open(t testing.TB, opts store.Options) (*store.DB, string) {
	t.Helper()
	url := Migrated(t)
	db, err := store.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("storetest: open: %v", err)
	}
	t.Cleanup(db.Close)
	return db, url
}
