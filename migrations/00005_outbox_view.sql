-- Keep the outbox's outside shape. Migration 00004 packed the events of a
-- transaction into one row; readers (dashboards, tests, people) know the
-- outbox as one row per event with id, subject, msg_id, payload,
-- created_at and published_at. The packed table becomes outbox_batches and
-- outbox is a view in the old shape (id = the store's Event.ID, in outbox
-- order). An event's published_at is the last time events of its batch
-- were marked: per-event times are not kept.

-- +goose Up
DROP VIEW outbox_events;
ALTER TABLE outbox RENAME TO outbox_batches;
ALTER TABLE outbox_batches RENAME CONSTRAINT outbox_pkey TO outbox_batches_pkey;
ALTER INDEX outbox_pending_idx RENAME TO outbox_batches_pending_idx;
ALTER TABLE outbox_batches ADD COLUMN marked_at timestamptz;
CREATE VIEW outbox AS
SELECT (o.id << 20) | e.i AS id, e.subject, e.msg_id, e.payload::json AS payload, o.created_at,
       CASE WHEN e.published THEN coalesce(o.marked_at, o.published_at, o.created_at) END AS published_at,
       o.id AS batch_id, e.i::int AS batch_index
FROM outbox_batches AS o
CROSS JOIN LATERAL unnest(string_to_array(o.subjects, E'\n'), string_to_array(o.msg_ids, E'\n'),
    string_to_array(o.payloads, E'\n'), o.published) WITH ORDINALITY AS e(subject, msg_id, payload, published, i);

-- +goose Down
DROP VIEW outbox;
ALTER TABLE outbox_batches DROP COLUMN marked_at;
ALTER INDEX outbox_batches_pending_idx RENAME TO outbox_pending_idx;
ALTER TABLE outbox_batches RENAME CONSTRAINT outbox_batches_pkey TO outbox_pkey;
ALTER TABLE outbox_batches RENAME TO outbox;
CREATE VIEW outbox_events AS
SELECT (o.id << 20) | e.i AS event_id, o.id AS outbox_id, e.i::int AS idx, e.subject, e.msg_id,
       e.payload::json AS payload, o.created_at, e.published
FROM outbox AS o
CROSS JOIN LATERAL unnest(string_to_array(o.subjects, E'\n'), string_to_array(o.msg_ids, E'\n'),
    string_to_array(o.payloads, E'\n'), o.published) WITH ORDINALITY AS e(subject, msg_id, payload, published, i);
