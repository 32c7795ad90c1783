package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/bouncer-mail/bouncer/migrations"
)

// migrateLockID is the key of the session-level advisory lock held while
// migrating ("bouncer" in ASCII), in the target database and, while
// creating it, in the maintenance database.
const migrateLockID int64 = 0x626f756e636572

// Migration is one migration file and whether it is applied.
type Migration struct {
	Version   int64
	Name      string    // file name, e.g. 00001_schema.sql
	Applied   bool      // applied to the database
	AppliedAt time.Time // zero when not applied
}

// Migrate applies every pending migration to the database of databaseURL,
// creating the database first when it does not exist. It is idempotent and
// safe to run from several processes at once: an advisory lock serialises
// them, and the later ones find nothing to do.
func Migrate(ctx context.Context, databaseURL string) error {
	_, err := MigrateUp(ctx, databaseURL)
	return err
}

// MigrateUp is Migrate that also returns the migrations it applied (none
// when the schema was up to date).
func MigrateUp(ctx context.Context, databaseURL string) ([]Migration, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: parse database URL: %w", err)
	}
	if err := ensureDatabase(ctx, cfg); err != nil {
		return nil, err
	}
	p, closeDB, err := provider(cfg)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate %s: %w", cfg.Database, err)
	}
	var applied []Migration
	for _, r := range results {
		applied = append(applied, Migration{
			Version: r.Source.Version, Name: path.Base(r.Source.Path), Applied: true,
		})
	}
	return applied, nil
}

// MigrationStatus lists every embedded migration and whether it is applied.
// Unlike Migrate it does not create the database.
func MigrationStatus(ctx context.Context, databaseURL string) ([]Migration, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: migration status: parse database URL: %w", err)
	}
	p, closeDB, err := provider(cfg)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migration status of %s: %w", cfg.Database, err)
	}
	out := make([]Migration, 0, len(st))
	for _, s := range st {
		out = append(out, Migration{
			Version:   s.Source.Version,
			Name:      path.Base(s.Source.Path),
			Applied:   s.State == goose.StateApplied,
			AppliedAt: s.AppliedAt,
		})
	}
	return out, nil
}

// goMigrations are the migrations written in Go, beside the SQL files:
// only what SQL cannot do (migrate_outbox.go).
func goMigrations() []*goose.Migration {
	return []*goose.Migration{outboxDecompressMigration()}
}

// provider returns a goose provider for the embedded migrations, speaking to
// the database through pgx's database/sql driver, with the advisory lock.
func provider(cfg *pgx.ConnConfig) (*goose.Provider, func(), error) {
	db := stdlib.OpenDB(*cfg)
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(advisoryLocker{}),
		goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(goMigrations()...),
		goose.WithSlog(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("store: migrations: %w", err)
	}
	return p, func() { db.Close() }, nil
}

// advisoryLocker is a goose lock.SessionLocker that waits on
// pg_advisory_lock. goose's own Postgres locker polls
// pg_try_advisory_lock every 5 s; this one wakes as soon as the other
// migrator is done, and gives up only when ctx ends.
type advisoryLocker struct{}

func (advisoryLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrateLockID); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	return nil
}

func (advisoryLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, migrateLockID); err != nil {
		return fmt.Errorf("release migration lock: %w", err)
	}
	return nil
}

// ensureDatabase creates cfg's database when connecting to it says it does
// not exist (SQLSTATE 3D000), connecting to the maintenance database
// "postgres" to do so.
func ensureDatabase(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return fmt.Errorf("store: migrate: connect to %s: %w", cfg.Database, err)
	}
	mcfg := cfg.Copy()
	mcfg.Database = "postgres"
	mconn, err := pgx.ConnectConfig(ctx, mcfg)
	if err != nil {
		return fmt.Errorf("store: migrate: connect to the maintenance database to create %s: %w", cfg.Database, err)
	}
	defer mconn.Close(context.WithoutCancel(ctx))
	// Two migrators of a fresh machine would both try; the lock makes the
	// second find the database there.
	if _, err := mconn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockID); err != nil {
		return fmt.Errorf("store: migrate: lock to create %s: %w", cfg.Database, err)
	}
	defer mconn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockID)
	var exists bool
	if err := mconn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, cfg.Database).Scan(&exists); err != nil {
		return fmt.Errorf("store: migrate: look for database %s: %w", cfg.Database, err)
	}
	if exists {
		return nil
	}
	if _, err := mconn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{cfg.Database}.Sanitize()); err != nil {
		return fmt.Errorf("store: migrate: create database %s: %w", cfg.Database, err)
	}
	return nil
}
