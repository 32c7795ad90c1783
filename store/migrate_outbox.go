package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"
)

// Migration 6 compresses the payloads of the outbox. It is written in Go,
// not SQL, because its Down must decompress them and PostgreSQL cannot.
//
// A batch of 500 hard bounces writes 1,000 events, about 0.5 MB of JSON:
// receiving those bytes was a fifth of the server's time per batch, and
// compressing them on the server (lz4) a little more. The store now sends
// the payload lines zstd-compressed (about a tenth of the size) in
// outbox_batches.payloads_zstd, with payloads left empty; rows written
// before keep their text. subjects and msg_ids stay text (lz4 on the
// server when it has it), so the view outbox still shows every event's
// subject, msg_id and state; its payload column is NULL for compressed
// rows: read those through the relay's store.PendingEvents, or on the
// stream.

// outboxZstdVersion is the version of the Go migration.
const outboxZstdVersion = 6

var outboxZstdUp = `
ALTER TABLE outbox_batches ADD COLUMN payloads_zstd bytea;
ALTER TABLE outbox_batches ALTER COLUMN payloads_zstd SET STORAGE EXTERNAL;
DO $$
BEGIN
    ALTER TABLE outbox_batches ALTER COLUMN subjects SET COMPRESSION lz4;
    ALTER TABLE outbox_batches ALTER COLUMN msg_ids SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL; -- a server built without lz4 keeps its default
END
$$;
DROP VIEW outbox;
` + outboxView(`CASE WHEN o.payloads_zstd IS NULL THEN e.payload::json END`)

// outboxZstdDown is run after the payloads are decompressed back into
// payloads; it leaves the schema as migration 5 did.
var outboxZstdDown = `
DROP VIEW outbox;
ALTER TABLE outbox_batches DROP COLUMN payloads_zstd;
ALTER TABLE outbox_batches ALTER COLUMN subjects SET COMPRESSION default;
ALTER TABLE outbox_batches ALTER COLUMN msg_ids SET COMPRESSION default;
` + outboxView(`e.payload::json`)

// outboxView creates the view outbox of migration 00005, one row per
// event, with payload the given expression (migration 6 shows NULL for
// compressed rows). 00005's file keeps its own copy: landed migrations are
// never edited.
func outboxView(payload string) string {
	return `
CREATE VIEW outbox AS
SELECT (o.id << 20) | e.i AS id, e.subject, e.msg_id, ` + payload + ` AS payload, o.created_at,
       CASE WHEN e.published THEN coalesce(o.marked_at, o.published_at, o.created_at) END AS published_at,
       o.id AS batch_id, e.i::int AS batch_index
FROM outbox_batches AS o
CROSS JOIN LATERAL unnest(string_to_array(o.subjects, E'\n'), string_to_array(o.msg_ids, E'\n'),
    string_to_array(o.payloads, E'\n'), o.published) WITH ORDINALITY AS e(subject, msg_id, payload, published, i);
`
}

// outboxZstdMigration returns migration 6 for the goose provider.
func outboxZstdMigration() *goose.Migration {
	m := goose.NewGoMigration(outboxZstdVersion,
		&goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, outboxZstdUp)
			return err
		}},
		&goose.GoFunc{RunTx: decompressOutbox},
	)
	m.Source = "00006_outbox_zstd.go"
	return m
}

// decompressOutbox writes the payloads of compressed outbox rows back as
// text, one row at a time, then undoes migration 6.
func decompressOutbox(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM outbox_batches WHERE payloads_zstd IS NOT NULL ORDER BY id`)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		var z []byte
		if err := tx.QueryRowContext(ctx, `SELECT payloads_zstd FROM outbox_batches WHERE id = $1`, id).Scan(&z); err != nil {
			return err
		}
		payloads, err := outboxPayloads(nil, z)
		if err != nil {
			return fmt.Errorf("outbox row %d: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox_batches SET payloads = $2, payloads_zstd = NULL WHERE id = $1`, id, string(payloads)); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, outboxZstdDown)
	return err
}
