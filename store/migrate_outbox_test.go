package store_test

import (
	"context"
	"database/sql"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pressly/goose/v3"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/migrations"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

// outboxEvent is one event as the view outbox (versions 5 and 6) and the
// table outbox (version 8) show it.
type outboxEvent struct {
	ID          int64
	Subject     string
	MsgID       string
	Payload     string
	CreatedAt   time.Time
	PublishedAt *time.Time
}

// TestOutboxMigrationMovesEveryEvent fills the packed outbox of version 6
// (text and zstd-compressed payloads, events published or not, an event
// packed twice), migrates, and wants every event once in its own row with
// its id, subject, Nats-Msg-Id, payload and published time; the pending
// ones come out of PendingEvents in order, and new events follow them.
func TestOutboxMigrationMovesEveryEvent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url, sqlDB, p := databaseAt(t, 6)

	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	compressed := enc.EncodeAll([]byte(`{"n":4}`+"\n"+`{"n":5,"d":"<a@b>"}`), nil)
	marked := time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC)
	created := marked.Add(-time.Hour)
	for _, row := range []struct {
		subjects, msgIDs, payloads string
		z                          []byte
		published                  string
		pending                    int
		publishedAt, markedAt      *time.Time
	}{
		{"bounce.hard.mailbox_unknown\nsuppression.added\nbounce.soft.mailbox_full", "b-1\ns-1-added-hard\nb-2",
			`{"n":1}` + "\n" + `{"n":2}` + "\n" + `{"n":3}`, nil, "{t,f,t}", 1, nil, &marked},
		{"bounce.hard.blocked\nsuppression.removed", "b-3\ns-1-removed", "", compressed, "{f,f}", 2, nil, nil},
		{"bounce.hard.mailbox_unknown", "b-4", `{"n":6}`, nil, "{t}", 0, &marked, nil},
		// The event s-1-added-hard again: kept once, as first written.
		{"suppression.added", "s-1-added-hard", `{"n":7}`, nil, "{f}", 1, nil, nil},
	} {
		_, err := sqlDB.ExecContext(ctx, `INSERT INTO outbox_batches (created_at, subjects, msg_ids, payloads, payloads_zstd,
			published, pending, published_at, marked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			created, row.subjects, row.msgIDs, row.payloads, row.z, row.published, row.pending, row.publishedAt, row.markedAt)
		if err != nil {
			t.Fatal(err)
		}
	}
	at := func(t time.Time) *time.Time { return &t }
	want := []outboxEvent{
		{1<<20 | 1, "bounce.hard.mailbox_unknown", "b-1", `{"n":1}`, created, at(marked)},
		{1<<20 | 2, "suppression.added", "s-1-added-hard", `{"n":2}`, created, nil},
		{1<<20 | 3, "bounce.soft.mailbox_full", "b-2", `{"n":3}`, created, at(marked)},
		{2<<20 | 1, "bounce.hard.blocked", "b-3", `{"n":4}`, created, nil},
		{2<<20 | 2, "suppression.removed", "s-1-removed", `{"n":5,"d":"<a@b>"}`, created, nil},
		{3<<20 | 1, "bounce.hard.mailbox_unknown", "b-4", `{"n":6}`, created, at(marked)},
	}

	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("Migrate from version 6 = %v", err)
	}
	if got := outboxEvents(t, sqlDB); !reflect.DeepEqual(got, want) {
		t.Errorf("outbox after the migration:\n got %+v\nwant %+v", got, want)
	}
	// Running the move again (a second migrator, a retry) changes nothing.
	if _, err := sqlDB.ExecContext(ctx, migrationUp(t, "00008_outbox_per_event.sql")); err != nil {
		t.Fatalf("migration 8 again: %v", err)
	}
	if got := outboxEvents(t, sqlDB); !reflect.DeepEqual(got, want) {
		t.Errorf("outbox after the migration ran twice:\n got %+v\nwant %+v", got, want)
	}

	db, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SaveBatch(ctx, []store.Message{bounce("m-1", 1, t0, "", rcpt("m@example.com", classify.Blocked))}); err != nil {
		t.Fatal(err)
	}
	evs, err := db.PendingEvents(ctx, 10)
	var got []string
	for _, e := range evs {
		got = append(got, e.MsgID+" "+string(e.Payload)[:min(len(e.Payload), 20)])
	}
	wantPending := []string{`s-1-added-hard {"n":2}`, `b-3 {"n":4}`, `s-1-removed {"n":5,"d":"<a@b>"}`}
	if err != nil || len(evs) != 4 || !reflect.DeepEqual(got[:3], wantPending) || evs[3].ID <= want[len(want)-1].ID {
		t.Errorf("PendingEvents after the migration and a save = %q, %v; want %q, then the new event", got, err, wantPending)
	}

	// Down to the packed outbox: the view shows the same events, one per
	// row.
	if _, err := p.DownTo(ctx, 6); err != nil {
		t.Fatalf("migrate down to 6: %v", err)
	}
	down := outboxEvents(t, sqlDB)
	if len(down) != len(want)+1 {
		t.Fatalf("outbox view after down to 6: %d events, want %d", len(down), len(want)+1)
	}
	for i, w := range want {
		d := down[i]
		d.ID = w.ID
		if !reflect.DeepEqual(d, w) {
			t.Errorf("outbox view after down to 6, event %d = %+v, want %+v", i, d, w)
		}
	}
}

// databaseAt returns a new database migrated up to version, with a
// database/sql handle on it and a goose provider for the embedded
// migrations.
func databaseAt(t *testing.T, version int64) (string, *sql.DB, *goose.Provider) {
	t.Helper()
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
	t.Cleanup(func() { sqlDB.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS, goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(store.GoMigrations()...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return url, sqlDB, p
}

// outboxEvents returns the events of the outbox (view or table) in id
// order.
func outboxEvents(t *testing.T, sqlDB *sql.DB) []outboxEvent {
	t.Helper()
	rows, err := sqlDB.QueryContext(t.Context(), `SELECT id, subject, msg_id, payload::text, created_at, published_at FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxEvent
	for rows.Next() {
		var e outboxEvent
		if err := rows.Scan(&e.ID, &e.Subject, &e.MsgID, &e.Payload, &e.CreatedAt, &e.PublishedAt); err != nil {
			t.Fatal(err)
		}
		e.CreatedAt = e.CreatedAt.UTC()
		if e.PublishedAt != nil {
			u := e.PublishedAt.UTC()
			e.PublishedAt = &u
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// migrationUp returns the Up part of a migration file, as goose runs it.
func migrationUp(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(migrations.FS, name)
	if err != nil {
		t.Fatal(err)
	}
	_, up, ok := strings.Cut(string(b), "-- +goose Up")
	up, _, ok2 := strings.Cut(up, "-- +goose Down")
	if !ok || !ok2 {
		t.Fatalf("%s: no Up and Down sections", name)
	}
	return up
}
