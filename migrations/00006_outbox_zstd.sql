-- Compress the payloads of the outbox (written in Go until migration 00008
-- made the outbox plain again; the version number and the Up are the same,
-- so databases that applied the Go migration see this one as applied).
-- Rows of that time could keep their payload lines zstd-compressed in
-- payloads_zstd, with payloads left empty; the view outbox shows NULL as
-- their payload. Migration 00007 decompresses them.

-- +goose Up
ALTER TABLE outbox_batches ADD COLUMN payloads_zstd bytea;
ALTER TABLE outbox_batches ALTER COLUMN payloads_zstd SET STORAGE EXTERNAL;
-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE outbox_batches ALTER COLUMN subjects SET COMPRESSION lz4;
    ALTER TABLE outbox_batches ALTER COLUMN msg_ids SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL; -- a server built without lz4 keeps its default
END
$$;
-- +goose StatementEnd
DROP VIEW outbox;
CREATE VIEW outbox AS
SELECT (o.id << 20) | e.i AS id, e.subject, e.msg_id, CASE WHEN o.payloads_zstd IS NULL THEN e.payload::json END AS payload,
       o.created_at,
       CASE WHEN e.published THEN coalesce(o.marked_at, o.published_at, o.created_at) END AS published_at,
       o.id AS batch_id, e.i::int AS batch_index
FROM outbox_batches AS o
CROSS JOIN LATERAL unnest(string_to_array(o.subjects, E'\n'), string_to_array(o.msg_ids, E'\n'),
    string_to_array(o.payloads, E'\n'), o.published) WITH ORDINALITY AS e(subject, msg_id, payload, published, i);

-- +goose Down
-- PostgreSQL cannot decompress zstd: compressed rows must have been
-- decompressed (migration 00007's Up) before this runs.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM outbox_batches WHERE payloads_zstd IS NOT NULL) THEN
        RAISE EXCEPTION 'outbox_batches holds compressed payloads: apply migration 7 first, which decompresses them';
    END IF;
END
$$;
-- +goose StatementEnd
DROP VIEW outbox;
ALTER TABLE outbox_batches DROP COLUMN payloads_zstd;
ALTER TABLE outbox_batches ALTER COLUMN subjects SET COMPRESSION default;
ALTER TABLE outbox_batches ALTER COLUMN msg_ids SET COMPRESSION default;
CREATE VIEW outbox AS
SELECT (o.id << 20) | e.i AS id, e.subject, e.msg_id, e.payload::json AS payload, o.created_at,
       CASE WHEN e.published THEN coalesce(o.marked_at, o.published_at, o.created_at) END AS published_at,
       o.id AS batch_id, e.i::int AS batch_index
FROM outbox_batches AS o
CROSS JOIN LATERAL unnest(string_to_array(o.subjects, E'\n'), string_to_array(o.msg_ids, E'\n'),
    string_to_array(o.payloads, E'\n'), o.published) WITH ORDINALITY AS e(subject, msg_id, payload, published, i);
