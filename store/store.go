// Package store keeps bouncer's state in PostgreSQL through pgx/v5: the
// messages read from bounce mailboxes, one row per failed recipient, the
// suppressions decided from them (with the policy that decides them), the
// list memberships they change, a checkpoint and a lease per mailbox, and
// the outbox of events the worker publishes to NATS JetStream.
//
// Every write is idempotent on a natural key (mailbox+UIDVALIDITY+UID or the
// message's sha256; message and recipient), so a message read again after a
// crash, a UIDVALIDITY change or by a second worker adds nothing. Events are
// written in the same transaction as the rows they describe (transactional
// outbox). The schema lives in package migrations and is applied by Migrate.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultDatabaseURL is the database used when neither a flag nor
// DATABASE_URL names one: the local server, database bouncer, user postgres.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/bouncer?sslmode=disable"

// Errors callers branch on.
var (
	// ErrNotMigrated means a table or column is missing: the schema is not
	// (fully) applied. Run `bouncer migrate`.
	ErrNotMigrated = errors.New("store: database schema missing or out of date (run bouncer migrate)")
	// ErrNotSuppressed is returned by Unsuppress when the address has no
	// suppression in force in the given scope.
	ErrNotSuppressed = errors.New("store: address is not suppressed")
	// ErrInvalid wraps a call's bad argument (an empty mailbox, a message
	// with neither report nor parse error...).
	ErrInvalid = errors.New("store: invalid argument")
)

// Options configure a DB. The zero value is usable.
type Options struct {
	// Policy decides suppressions; zero fields take the documented defaults.
	Policy Policy
	// Now is the clock for every time the store writes (processed, created,
	// expires...) and for expiry. Default time.Now. Leases use the
	// database's clock instead, so that workers on several hosts agree.
	Now func() time.Time
	// MaxConns bounds the pool (default: pgxpool's, max(4, CPUs)); the
	// pool_max_conns URL parameter works too.
	MaxConns int32
	// ErasureKey keys the hashes of erased addresses (Erase): with it,
	// every suppression check also answers suppressed for an erased
	// address. Every process sharing a database needs the same key.
	ErasureKey []byte
}

// DB is bouncer's database. It is safe for concurrent use.
type DB struct {
	pool   *pgxpool.Pool
	policy Policy
	now    func() time.Time
	uids   uidBlock // webhook events' UIDs, reserved in blocks (webhook.go)
	// erasureKey keys erased_subjects' hashes; nil: no erasure.
	erasureKey []byte
}

// Open returns a DB for databaseURL (a postgres:// URL or key=value DSN).
// It does not wait for the server: the first call that needs it connects,
// and Ping checks it. Close releases the pool.
func Open(ctx context.Context, databaseURL string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: parse database URL: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pol, err := opts.Policy.withDefaults()
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open pool for %s: %w", cfg.ConnConfig.Database, err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if k := opts.ErasureKey; len(k) > 0 && len(k) < MinErasureKeyLength {
		pool.Close()
		return nil, fmt.Errorf("%w: the erasure key is %d bytes, want at least %d", ErrInvalid, len(k), MinErasureKeyLength)
	}
	return &DB{pool: pool, policy: pol, now: now, erasureKey: opts.ErasureKey}, nil
}

// Close closes every connection of the pool; it waits for connections in use.
func (db *DB) Close() { db.pool.Close() }

// Ping checks that the server answers and that the schema is there.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT to_regclass('outbox') IS NOT NULL AND to_regclass('suppressions') IS NOT NULL`).Scan(&ok)
	if err != nil {
		return fmt.Errorf("store: ping: %w", mapErr(err))
	}
	if !ok {
		return ErrNotMigrated
	}
	return nil
}

// Policy returns the suppression policy in force, defaults filled in.
func (db *DB) Policy() Policy { return db.policy }

// Now returns the store's clock (Options.Now) in UTC: the time it stamps
// on what it writes, so a caller computing a cut-off for PruneOutbox uses
// the same clock.
func (db *DB) Now() time.Time { return db.clock() }

// clock returns the store's now in UTC, at the database's precision.
func (db *DB) clock() time.Time { return db.now().UTC().Truncate(time.Microsecond) }

// IsTransient reports whether err is worth retrying as is: the connection
// was lost, the server is shutting down or starting, or the transaction lost
// a serialization or deadlock race. A transient error left no trace: every
// write of this package is one transaction.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "40001", pgErr.Code == "40P01": // serialization_failure, deadlock_detected
			return true
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08": // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // admin/crash shutdown, cannot connect now
			return true
		case pgErr.Code == "53300": // too_many_connections
			return true
		}
		return false
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var connErr *pgconn.ConnectError
	return errors.As(err, &connErr)
}

// mapErr turns the SQLSTATEs of a missing schema into ErrNotMigrated, keeping
// the original error in the chain.
func mapErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42P01", "42703", "42883": // undefined_table, undefined_column, undefined_function
			return fmt.Errorf("%w: %w", ErrNotMigrated, err)
		}
	}
	return err
}
