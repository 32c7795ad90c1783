package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/klauspost/compress/zstd"
	"github.com/pressly/goose/v3"
)

// Migration 7 is the one migration written in Go, because it must do what
// PostgreSQL cannot: decompress the zstd payloads that the store wrote in
// outbox_batches.payloads_zstd while migration 00006 was the latest. It
// writes them back as text in payloads, so that migration 00008 (SQL) can
// move every event to a row of its own. Its Down does nothing: text
// payloads are what migration 00006's schema had before compression.

// outboxDecompressVersion is the version of the Go migration.
const outboxDecompressVersion = 7

// outboxDecompressMigration returns migration 7 for the goose provider.
func outboxDecompressMigration() *goose.Migration {
	m := goose.NewGoMigration(outboxDecompressVersion,
		&goose.GoFunc{RunTx: decompressOutbox},
		&goose.GoFunc{RunTx: func(context.Context, *sql.Tx) error { return nil }},
	)
	m.Source = "00007_outbox_decompress.go"
	return m
}

// maxOutboxPayloads bounds the decompressed payloads of one outbox row:
// the store packed at most 1<<20 events of a few KB.
const maxOutboxPayloads = 1 << 30

// decompressOutbox writes the payloads of compressed outbox rows back as
// text, one row at a time (a row's payloads are at most a few MB).
func decompressOutbox(ctx context.Context, tx *sql.Tx) error {
	var ids []int64
	rows, err := tx.QueryContext(ctx, `SELECT id FROM outbox_batches WHERE payloads_zstd IS NOT NULL ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxOutboxPayloads))
	if err != nil {
		return err
	}
	defer dec.Close()
	for _, id := range ids {
		var z []byte
		if err := tx.QueryRowContext(ctx, `SELECT payloads_zstd FROM outbox_batches WHERE id = $1`, id).Scan(&z); err != nil {
			return err
		}
		payloads, err := dec.DecodeAll(z, nil)
		if err != nil {
			return fmt.Errorf("outbox row %d: decompress event payloads: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox_batches SET payloads = $2, payloads_zstd = NULL WHERE id = $1`, id, string(payloads)); err != nil {
			return err
		}
	}
	return nil
}
