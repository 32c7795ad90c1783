-- Erasure of a person (GDPR art. 17): `DELETE /api/v1/subjects/{address}`
-- deletes or pseudonymises what bouncer holds about an address (store/erase.go
-- lists every statement) and keeps only a keyed hash of it here, so that a
-- suppression check (and the save of a new bounce) still answers
-- "suppressed": an erased person is never mailed again. The hash is
-- HMAC-SHA256 of the normalised address under BOUNCER_ERASURE_KEY; without
-- the key a hash cannot be tested against a guessed address. key_id names
-- the key (the first bytes of its own HMAC), so that a check under another
-- key can tell.

-- +goose Up
CREATE TABLE erased_subjects (
    hash      bytea PRIMARY KEY CHECK (length(hash) = 32),
    key_id    text NOT NULL,
    erased_at timestamptz NOT NULL,
    erased_by text NOT NULL,
    why       text NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE erased_subjects;
