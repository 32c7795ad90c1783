-- Suppression ids one after another. 00004 made the sequence cache 256
-- values per session, for a save that reserved ids in blocks; every new
-- connection (each CLI call) then skipped up to 256 ids. The store now
-- takes ids as it inserts, from a sequence without a cache.

-- +goose Up
ALTER TABLE suppressions ALTER COLUMN id SET CACHE 1;

-- +goose Down
ALTER TABLE suppressions ALTER COLUMN id SET CACHE 256;
