-- The tables of bouncer. Addresses are stored twice: `address` is the
-- normalised form every query uses (trimmed, lower-case, IDN domain in
-- punycode: store.NormalizeAddress) and `address_raw` is what the report said.

-- +goose Up

-- One row per message read from a bounce mailbox. A message is the same
-- message when its mailbox+UIDVALIDITY+UID or its content (sha256 of the raw
-- bytes with CRLF line ends) was seen before: either unique key makes a
-- re-save a no-op.
CREATE TABLE source_messages (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256        bytea NOT NULL CHECK (length(sha256) = 32),
    mailbox       text NOT NULL,
    uid_validity  bigint NOT NULL,
    uid           bigint NOT NULL,
    message_id    text NOT NULL DEFAULT '',   -- the bounce's own Message-ID
    size          integer NOT NULL DEFAULT 0,
    kind          text,                       -- classify.Kind; NULL when it could not be parsed
    from_header   text NOT NULL DEFAULT '',
    subject       text NOT NULL DEFAULT '',
    reporting_mta text NOT NULL DEFAULT '',
    arrival_date  timestamptz,
    feedback_type text NOT NULL DEFAULT '',
    received_at   timestamptz,                -- IMAP INTERNALDATE
    processed_at  timestamptz NOT NULL,
    parse_error   text NOT NULL DEFAULT '',
    CONSTRAINT source_messages_sha256_key UNIQUE (sha256),
    CONSTRAINT source_messages_uid_key UNIQUE (mailbox, uid_validity, uid)
);
CREATE INDEX source_messages_message_id_idx ON source_messages (message_id) WHERE message_id <> '';
CREATE INDEX source_messages_parse_error_idx ON source_messages (processed_at) WHERE parse_error <> '';

-- One row per failed (or delayed, or complained-about) recipient of a
-- message: every field of classify.Report for that recipient.
CREATE TABLE bounces (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id           bigint NOT NULL REFERENCES source_messages (id),
    address             text NOT NULL,
    address_raw         text NOT NULL,
    domain              text NOT NULL,
    original_recipient  text NOT NULL DEFAULT '',
    kind                text NOT NULL,
    action              text NOT NULL DEFAULT '',
    status              text NOT NULL DEFAULT '',
    smtp_code           integer NOT NULL DEFAULT 0,
    diagnostic          text NOT NULL DEFAULT '',
    remote_mta          text NOT NULL DEFAULT '',
    last_attempt        timestamptz,
    category            text NOT NULL,
    severity            text NOT NULL CHECK (severity IN ('hard', 'soft', 'none')),
    suppress            boolean NOT NULL,
    rule                text NOT NULL DEFAULT '',
    original_source     text NOT NULL DEFAULT '',
    original_message_id text NOT NULL DEFAULT '',
    list_id             text NOT NULL DEFAULT '',
    campaign_id         text NOT NULL DEFAULT '',
    campaign            jsonb,                -- every campaign header found
    original_from       text NOT NULL DEFAULT '',
    original_to         text NOT NULL DEFAULT '',
    original_subject    text NOT NULL DEFAULT '',
    original_auto_reply boolean NOT NULL DEFAULT false,
    occurred_at         timestamptz NOT NULL, -- arrival of the bounce (INTERNALDATE)
    created_at          timestamptz NOT NULL,
    CONSTRAINT bounces_source_address_key UNIQUE (source_id, address)
);
CREATE INDEX bounces_address_idx ON bounces (address, occurred_at);
CREATE INDEX bounces_occurred_idx ON bounces (occurred_at);
CREATE INDEX bounces_campaign_idx ON bounces (campaign_id) WHERE campaign_id <> '';

-- A suppression is a record: it is created, maybe upgraded (soft, then hard
-- or complaint), and maybe removed (by a person, or by expiry), never
-- deleted. list_id '' means global scope. At most one open suppression per
-- address and scope.
CREATE TABLE suppressions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    address       text NOT NULL,
    address_raw   text NOT NULL,
    domain        text NOT NULL,
    list_id       text NOT NULL DEFAULT '',
    scope         text NOT NULL GENERATED ALWAYS AS (CASE WHEN list_id = '' THEN 'global' ELSE 'list' END) STORED,
    reason        text NOT NULL CHECK (reason IN ('hard', 'soft', 'complaint', 'manual')),
    category      text NOT NULL DEFAULT '',
    bounce_id     bigint REFERENCES bounces (id),   -- the evidence
    note          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    created_by    text NOT NULL,
    expires_at    timestamptz,                       -- NULL: never
    upgraded_at   timestamptz,
    upgraded_from text CHECK (upgraded_from IN ('hard', 'soft', 'complaint', 'manual')),
    removed_at    timestamptz,
    removed_by    text,
    removed_why   text,
    CHECK ((removed_at IS NULL) = (removed_by IS NULL))
);
CREATE UNIQUE INDEX suppressions_open_key ON suppressions (address, list_id) WHERE removed_at IS NULL;
CREATE INDEX suppressions_address_idx ON suppressions (address, created_at);
CREATE INDEX suppressions_created_idx ON suppressions (created_at);
CREATE INDEX suppressions_removed_idx ON suppressions (removed_at) WHERE removed_at IS NOT NULL;
CREATE INDEX suppressions_expires_idx ON suppressions (expires_at) WHERE removed_at IS NULL AND expires_at IS NOT NULL;

-- The members of mailing lists, filled by the sending platform. bouncer only
-- changes status: to bounced or complained when a suppression applies (and
-- remembers which suppression did it and the status before), back when the
-- suppression is removed or expires.
CREATE TABLE list_members (
    list_id         text NOT NULL,
    address         text NOT NULL,
    address_raw     text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'subscribed'
                    CHECK (status IN ('subscribed', 'unsubscribed', 'bounced', 'complained')),
    previous_status text CHECK (previous_status IN ('subscribed', 'unsubscribed', 'bounced', 'complained')),
    suppression_id  bigint REFERENCES suppressions (id),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (list_id, address)
);
CREATE INDEX list_members_address_idx ON list_members (address);
CREATE INDEX list_members_suppression_idx ON list_members (suppression_id) WHERE suppression_id IS NOT NULL;

-- Rows written by hand or by a platform get at least the ASCII part of the
-- normalisation (trim, lower-case); IDN domains must come in punycode.
-- +goose StatementBegin
CREATE FUNCTION list_members_normalise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.address_raw = '' THEN
        NEW.address_raw := NEW.address;
    END IF;
    NEW.address := lower(btrim(NEW.address));
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER list_members_normalise BEFORE INSERT OR UPDATE OF address ON list_members
    FOR EACH ROW EXECUTE FUNCTION list_members_normalise();

-- How many messages a campaign sent (to a list), filled by the sending
-- platform; the per-campaign bounce rate view divides by it.
CREATE TABLE campaign_sends (
    campaign_id text NOT NULL,
    list_id     text NOT NULL DEFAULT '',
    sent        bigint NOT NULL CHECK (sent >= 0),
    sent_at     timestamptz,
    PRIMARY KEY (campaign_id, list_id)
);

-- Where a worker is in each mailbox.
CREATE TABLE mailbox_checkpoints (
    mailbox      text PRIMARY KEY,
    uid_validity bigint NOT NULL,
    last_uid     bigint NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- Which worker owns a mailbox, until when (database clock).
CREATE TABLE mailbox_leases (
    mailbox     text PRIMARY KEY,
    owner       text NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Events written in the same transaction as the rows they describe, and
-- published to NATS JetStream afterwards. msg_id is the Nats-Msg-Id.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject      text NOT NULL,
    msg_id       text NOT NULL,
    payload      json NOT NULL,
    created_at   timestamptz NOT NULL,
    published_at timestamptz,
    CONSTRAINT outbox_msg_id_key UNIQUE (msg_id)
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;

-- +goose Down
DROP TABLE outbox;
DROP TABLE mailbox_leases;
DROP TABLE mailbox_checkpoints;
DROP TABLE campaign_sends;
DROP TABLE list_members;
DROP FUNCTION list_members_normalise();
DROP TABLE suppressions;
DROP TABLE bounces;
DROP TABLE source_messages;
