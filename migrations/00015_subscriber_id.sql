-- The sending platform's id of the recipient, from the returned original's
-- subscriber header (listmonk's X-Listmonk-Subscriber, Mautic's X-EMAIL-ID,
-- or those BOUNCER_SUBSCRIBER_HEADERS names): a platform acting on an event
-- can find the subscriber by it without looking the address up.

-- +goose Up
ALTER TABLE bounces ADD COLUMN subscriber_id text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE bounces DROP COLUMN subscriber_id;
