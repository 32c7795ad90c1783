package store_test

import (
	"context"
	"encoding/json"
	neturl "net/url"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/migrations"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

func TestMigrateCreatesDatabaseAndIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := storetest.NewDatabase(t) // does not exist yet

	if _, err := store.MigrationStatus(ctx, url); err == nil {
		t.Errorf("MigrationStatus of a missing database = nil error, want one")
	}
	applied, err := store.MigrateUp(ctx, url)
	if err != nil {
		t.Fatalf("MigrateUp(empty) = %v", err)
	}
	files, _ := migrations.FS.ReadDir(".")
	var sqlFiles int
	for _, f := range files {
		if len(f.Name()) > 4 && f.Name()[len(f.Name())-4:] == ".sql" {
			sqlFiles++
		}
	}
	if want := sqlFiles + len(store.GoMigrations()); len(applied) != want || sqlFiles < 3 {
		t.Errorf("MigrateUp(empty) applied %d migrations, want %d (all)", len(applied), want)
	}
	again, err := store.MigrateUp(ctx, url)
	if err != nil || len(again) != 0 {
		t.Errorf("MigrateUp again = %v, %v; want nothing applied", again, err)
	}
	st, err := store.MigrationStatus(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st {
		if !m.Applied || m.AppliedAt.IsZero() {
			t.Errorf("status %s: applied %v at %v, want applied", m.Name, m.Applied, m.AppliedAt)
		}
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, rel := range []string{"source_messages", "bounces", "suppressions", "list_members", "campaign_sends",
		"mailbox_checkpoints", "mailbox_leases", "outbox", "bounce_daily", "bounce_553_daily",
		"suppressions_daily", "suppressions_active", "campaign_bounce_rate"} {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, rel).Scan(&ok); err != nil || !ok {
			t.Errorf("relation %s missing after migrate (%v)", rel, err)
		}
	}
	// The dashboards' role exists (the test user may create roles) and can
	// read the views.
	var canRead bool
	err = conn.QueryRow(ctx, `SELECT has_table_privilege('bouncer_readonly', 'bounce_daily', 'SELECT')
		AND has_table_privilege('bouncer_readonly', 'outbox', 'SELECT')
		AND NOT has_table_privilege('bouncer_readonly', 'suppressions', 'INSERT')
		AND NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'bouncer_readonly')`).Scan(&canRead)
	if err != nil || !canRead {
		t.Errorf("bouncer_readonly: read-only NOLOGIN role with SELECT = %v, %v; want true", canRead, err)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := storetest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = store.Migrate(ctx, url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate #%d = %v", i, err)
		}
	}
	st, err := store.MigrationStatus(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st {
		if !m.Applied {
			t.Errorf("after concurrent migrates, %s not applied", m.Name)
		}
	}
}

func TestPingNotMigrated(t *testing.T) {
	t.Parallel()
	url := storetest.NewDatabase(t)
	admin, err := pgx.Connect(t.Context(), storetest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	cfg, _ := pgx.ParseConfig(url)
	if _, err := admin.Exec(t.Context(), `CREATE DATABASE `+pgx.Identifier{cfg.Database}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.Context(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(t.Context()); err != store.ErrNotMigrated {
		t.Errorf("Ping(unmigrated) = %v, want ErrNotMigrated", err)
	}
	if _, err := db.PendingEvents(t.Context(), 10); err == nil {
		t.Errorf("PendingEvents(unmigrated) = nil error")
	}
}

// TestMigrationKeepsPendingEvents applies the schema up to the first
// outbox shape, writes events in it, and checks that the migrations that
// packed the outbox (00004 to 00006) and unpacked it (00007, 00008) carry
// them over, up and down.
func TestMigrationKeepsPendingEvents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := storetest.NewDatabase(t)
	admin, err := pgx.Connect(ctx, storetest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	cfg, _ := pgx.ParseConfig(url)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{cfg.Database}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	sqlDB := stdlib.OpenDB(*cfg)
	defer sqlDB.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS, goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(store.GoMigrations()...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlDB.ExecContext(ctx, `INSERT INTO outbox (subject, msg_id, payload, created_at, published_at) VALUES
		('bounce.hard.mailbox_unknown', 'b-1', '{"n":1}', now() - interval '2 minutes', now()),
		('bounce.hard.mailbox_unknown', 'b-2', '{"n":2}', now() - interval '1 minute', NULL),
		('suppression.added', 's-1-added-hard', '{"n":3}', now(), NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.PendingEvents(ctx, 10)
	if err != nil || len(evs) != 2 || evs[0].MsgID != "b-2" || string(evs[0].Payload) != `{"n":2}` || evs[1].Subject != "suppression.added" {
		t.Errorf("PendingEvents after migration = %+v, %v; want b-2 and s-1-added-hard", evs, err)
	}

	// Events written now go down to the packed outbox and up again.
	// (A sender-side failure: no suppression, whose id would meet the
	// made-up s-1 above.)
	if _, err := db.SaveBatch(ctx, []store.Message{bounce("z-1", 1, t0, "news", rcpt("z@example.com", classify.Blocked))}); err != nil {
		t.Fatal(err)
	}
	before, err := db.PendingEvents(ctx, 10)
	if err != nil || len(before) != 3 || !json.Valid(before[2].Payload) {
		t.Fatalf("PendingEvents after a save = %+v, %v; want 3, the last with a JSON payload", before, err)
	}
	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatalf("migrate down to 5: %v", err)
	}
	var same int
	for _, e := range before[2:] {
		if err := sqlDB.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE msg_id = $1 AND payload::text = $2`, e.MsgID, string(e.Payload)).Scan(&same); err != nil || same != 1 {
			t.Errorf("event %s after down to 5: %d rows with its payload, %v; want 1", e.MsgID, same, err)
		}
	}
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	// The packed rows of the way down held one event each: the ids
	// changed, not the events or their order.
	after, err := db.PendingEvents(ctx, 10)
	for i := range min(len(after), len(before)) {
		after[i].ID = before[i].ID
	}
	if err != nil || !reflect.DeepEqual(after, before) {
		t.Errorf("PendingEvents after down and up = %+v, %v; want %+v", after, err, before)
	}

	// Every Down works, and keeps the events too.
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("migrate down to 0: %v", err)
	}
	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlDB.ExecContext(ctx, `INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES ('x', 'y', '{}', now())`); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatalf("migrate down to 3: %v", err)
	}
	var n int
	if err := sqlDB.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil || n != 1 {
		t.Errorf("pending events after down to 3 = %d, %v; want 1", n, err)
	}
}

// TestMigrateWithoutSuperuser migrates as a plain role that owns its
// database but may not create roles: the migrations must still apply, and
// grant to bouncer_readonly (created earlier by a privileged migration).
func TestMigrateWithoutSuperuser(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	if err := store.Migrate(ctx, storetest.NewDatabase(t)); err != nil { // makes sure bouncer_readonly exists
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, storetest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	role := "bt_migrator_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if _, err := admin.Exec(ctx, `CREATE ROLE `+role+` LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // runs after the database is dropped
		c, err := pgx.Connect(context.Background(), storetest.AdminURL(t))
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `DROP ROLE `+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	url := storetest.NewDatabase(t)
	cfg, _ := pgx.ParseConfig(url)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{cfg.Database}.Sanitize()+` OWNER `+role); err != nil {
		t.Fatal(err)
	}
	u, _ := neturl.Parse(url)
	u.User = neturl.User(role)
	if err := store.Migrate(ctx, u.String()); err != nil {
		t.Fatalf("Migrate as %s (no CREATEROLE) = %v", role, err)
	}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT has_table_privilege('bouncer_readonly', 'bounce_daily', 'SELECT')`).Scan(&ok); err != nil || !ok {
		t.Errorf("bouncer_readonly may read bounce_daily = %v, %v; want true", ok, err)
	}
}
