-- Which bounces may suppress: only those proven to answer mail we sent
-- (issue 13). Two kinds of proof: a signed return path (VERP, checked by
-- the worker with its keys) or the returned original's Message-ID found
-- here, in the messages the sending platform says it sent.
--
-- * sent_messages is filled by the platform (`bouncer sent import`, or COPY
--   straight into it: see the README). message_id is the Message-ID without
--   angle brackets; recipient is normalised like every address here (lower
--   case, punycode domain).
-- * bounces.verified: true when the bounce was proven ours (or the operator
--   chose BOUNCER_TRUST=any), false when it was not (it was recorded and
--   suppressed nothing), NULL for rows written before this migration.
--   verified_by says by what, or why not ('verp:KEYID', 'sent',
--   'trust:any', 'unverified:no-token', ...).

-- +goose Up
CREATE TABLE sent_messages (
    message_id  text PRIMARY KEY,
    recipient   text NOT NULL,
    list_id     text NOT NULL DEFAULT '',
    campaign_id text NOT NULL DEFAULT '',
    sent_at     timestamptz NOT NULL
);
CREATE INDEX sent_messages_sent_at_brin ON sent_messages USING brin (sent_at);
ALTER TABLE bounces ADD COLUMN verified boolean;
ALTER TABLE bounces ADD COLUMN verified_by text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE bounces DROP COLUMN verified_by;
ALTER TABLE bounces DROP COLUMN verified;
DROP TABLE sent_messages;
