-- One outbox row per event, as in 00001. Migrations 00004 to 00006 packed
-- the events of a transaction into one row of outbox_batches (lines of
-- subjects, msg_ids and payloads, a published flag each, payloads
-- zstd-compressed by the store) to save a few milliseconds per batch of
-- 500 bounces; the whole drain did not feel it, and every reader had to
-- unpack the rows. This moves every event of outbox_batches to its own row
-- of the table outbox, which has the columns the view outbox had:
--
-- * id keeps the view's id ((row << 20) | index), which was the store's
--   Event.ID, so events keep their order; new events are numbered after
--   the highest.
-- * msg_id (the Nats-Msg-Id) and payload are copied unchanged, so an event
--   published before and again after the move is dropped by JetStream as a
--   duplicate. msg_id is unique (as in 00001): an event that somehow
--   appears twice is kept once, the older.
-- * published_at is the time the view showed: the last time events of the
--   packed row were marked.
--
-- Compressed payloads (migration 00006) are decompressed by migration
-- 00007 before this runs; should one remain, this fails rather than lose
-- it. The Up does nothing when outbox_batches is already gone, so it is
-- safe to run again.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF to_regclass('outbox_batches') IS NULL THEN
        RETURN; -- already one row per event
    END IF;
    IF EXISTS (SELECT FROM outbox_batches WHERE payloads_zstd IS NOT NULL) THEN
        RAISE EXCEPTION 'outbox_batches holds compressed payloads: migration 7 decompresses them';
    END IF;
    DROP VIEW outbox;
    CREATE TABLE outbox (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        subject      text NOT NULL,
        msg_id       text NOT NULL,
        payload      json NOT NULL,
        created_at   timestamptz NOT NULL,
        published_at timestamptz,
        CONSTRAINT outbox_msg_id_key UNIQUE (msg_id)
    );
    INSERT INTO outbox (id, subject, msg_id, payload, created_at, published_at) OVERRIDING SYSTEM VALUE
    SELECT (o.id << 20) | e.i, e.subject, e.msg_id, e.payload::json, o.created_at,
           CASE WHEN e.published THEN coalesce(o.marked_at, o.published_at, o.created_at) END
    FROM outbox_batches AS o
    CROSS JOIN LATERAL unnest(string_to_array(o.subjects, E'\n'), string_to_array(o.msg_ids, E'\n'),
        string_to_array(o.payloads, E'\n'), o.published) WITH ORDINALITY AS e(subject, msg_id, payload, published, i)
    ORDER BY o.id, e.i
    ON CONFLICT (msg_id) DO NOTHING;
    PERFORM setval(pg_get_serial_sequence('outbox', 'id'), max(id)) FROM outbox HAVING max(id) IS NOT NULL;
    CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;
    DROP TABLE outbox_batches;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- Back to packed rows, one event each (which events shared a row is not
-- kept), and the view outbox of 00006.
ALTER TABLE outbox RENAME TO outbox_unpacked;
CREATE TABLE outbox_batches (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    subjects      text NOT NULL,
    msg_ids       text NOT NULL,
    payloads      text NOT NULL,
    published     boolean[] NOT NULL,
    pending       integer NOT NULL,
    published_at  timestamptz,
    marked_at     timestamptz,
    payloads_zstd bytea,
    CHECK (cardinality(published) BETWEEN 1 AND 1048575)
);
INSERT INTO outbox_batches (created_at, subjects, msg_ids, payloads, published, pending, published_at, marked_at)
SELECT created_at, subject, msg_id, payload::text, ARRAY[published_at IS NOT NULL],
       CASE WHEN published_at IS NULL THEN 1 ELSE 0 END, published_at, published_at
FROM outbox_unpacked
ORDER BY id;
CREATE INDEX outbox_batches_pending_idx ON outbox_batches (id) WHERE pending > 0;
DROP TABLE outbox_unpacked;
CREATE VIEW outbox AS
SELECT (o.id << 20) | e.i AS id, e.subject, e.msg_id, CASE WHEN o.payloads_zstd IS NULL THEN e.payload::json END AS payload,
       o.created_at,
       CASE WHEN e.published THEN coalesce(o.marked_at, o.published_at, o.created_at) END AS published_at,
       o.id AS batch_id, e.i::int AS batch_index
FROM outbox_batches AS o
CROSS JOIN LATERAL unnest(string_to_array(o.subjects, E'\n'), string_to_array(o.msg_ids, E'\n'),
    string_to_array(o.payloads, E'\n'), o.published) WITH ORDINALITY AS e(subject, msg_id, payload, published, i);
