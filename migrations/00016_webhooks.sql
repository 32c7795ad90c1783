-- ESP webhook intake (worker/webhook): each provider event is saved as a
-- source message of the mailbox "webhook:<provider>", with sha256 the hash
-- of "webhook", the provider and the provider's event id (the idempotency
-- key: the same event delivered again writes nothing). Such a message has
-- no IMAP UID: webhook_uid_seq numbers them, so that the unique
-- (mailbox, uid_validity, uid) key never makes two events one.
--
-- webhook_events keeps each stored event's raw payload as the evidence,
-- with how it was verified, in the transaction that saves its rows.

-- +goose Up
CREATE SEQUENCE webhook_uid_seq AS bigint CACHE 100;

CREATE TABLE webhook_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider    text NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL DEFAULT '',
    source_id   bigint NOT NULL REFERENCES source_messages (id),
    verified_by text NOT NULL,
    received_at timestamptz NOT NULL,
    payload     bytea NOT NULL,
    CONSTRAINT webhook_events_key UNIQUE (provider, event_id)
);
CREATE INDEX webhook_events_source_idx ON webhook_events (source_id);

-- +goose Down
DROP TABLE webhook_events;
DROP SEQUENCE webhook_uid_seq;
