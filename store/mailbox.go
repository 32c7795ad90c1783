package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Checkpoint is where a worker is in a mailbox: every message with a UID up
// to LastUID under this UIDVALIDITY (RFC 9051 §2.3.1.1) has been saved.
type Checkpoint struct {
	UIDValidity uint32
	LastUID     uint32
}

const checkpointSQL = `
SELECT uid_validity, last_uid FROM mailbox_checkpoints WHERE mailbox = $1`

// Checkpoint returns the checkpoint of mailbox, and false when there is none.
func (db *DB) Checkpoint(ctx context.Context, mailbox string) (Checkpoint, bool, error) {
	var v, u int64
	err := db.pool.QueryRow(ctx, checkpointSQL, mailbox).Scan(&v, &u)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("store: checkpoint of %s: %w", mailbox, mapErr(err))
	}
	return Checkpoint{UIDValidity: uint32(v), LastUID: uint32(u)}, true, nil
}

// saveCheckpointSQL upserts a checkpoint. Under the same UIDVALIDITY the
// last UID only moves forward (a slow worker finishing late must not make
// the next one re-read); a new UIDVALIDITY replaces it, since the old UIDs
// mean nothing any more.
const saveCheckpointSQL = `
INSERT INTO mailbox_checkpoints AS c (mailbox, uid_validity, last_uid, updated_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (mailbox) DO UPDATE SET
    last_uid = CASE WHEN c.uid_validity = EXCLUDED.uid_validity
                    THEN greatest(c.last_uid, EXCLUDED.last_uid)
                    ELSE EXCLUDED.last_uid END,
    uid_validity = EXCLUDED.uid_validity,
    updated_at = EXCLUDED.updated_at`

// SaveCheckpoint records cp for mailbox. It never moves LastUID backwards
// for the same UIDVALIDITY.
func (db *DB) SaveCheckpoint(ctx context.Context, mailbox string, cp Checkpoint) error {
	if mailbox == "" {
		return fmt.Errorf("%w: empty mailbox", ErrInvalid)
	}
	_, err := db.pool.Exec(ctx, saveCheckpointSQL, mailbox, int64(cp.UIDValidity), int64(cp.LastUID), db.clock())
	if err != nil {
		return fmt.Errorf("store: save checkpoint of %s: %w", mailbox, mapErr(err))
	}
	return nil
}

// AcquireLease makes owner the only worker of mailbox for ttl, and reports
// whether it is. It renews the lease when owner already holds it, and takes
// it over when the previous owner let it lapse (a dead worker stops
// renewing). Renew well within ttl, e.g. every ttl/4.
func (db *DB) AcquireLease(ctx context.Context, mailbox, owner string, ttl time.Duration) (bool, error) {
	return db.AcquireLeases(ctx, []string{mailbox}, owner, ttl)
}

// acquireLeasesSQL takes the leases that are free, lapsed, or already
// ours (then it renews them), in name order, so that two owners taking
// overlapping sets meet in one order. Times come from the database's
// clock, the one clock every worker shares; clock_timestamp() rather than
// now() so a renewal inside a long transaction still counts from the
// present.
const acquireLeasesSQL = `
INSERT INTO mailbox_leases AS l (mailbox, owner, acquired_at, expires_at)
SELECT k, $2, clock_timestamp(), clock_timestamp() + $3::float8 * interval '1 microsecond'
FROM unnest($1::text[]) AS k ORDER BY k
ON CONFLICT (mailbox) DO UPDATE SET
    owner = EXCLUDED.owner,
    acquired_at = CASE WHEN l.owner = EXCLUDED.owner THEN l.acquired_at ELSE EXCLUDED.acquired_at END,
    expires_at = EXCLUDED.expires_at
WHERE l.owner = EXCLUDED.owner OR l.expires_at < clock_timestamp()
RETURNING mailbox`

// AcquireLeases is AcquireLease for a mailbox known by several names (its
// identity, the name an older version keyed it by, the addresses its host
// resolves to): owner gets all of them or none, in one transaction, so
// that two workers given two spellings of one mailbox cannot both hold it.
func (db *DB) AcquireLeases(ctx context.Context, names []string, owner string, ttl time.Duration) (bool, error) {
	if len(names) == 0 || slices.Contains(names, "") || owner == "" || ttl <= 0 {
		return false, fmt.Errorf("%w: lease needs a mailbox, an owner and a positive ttl", ErrInvalid)
	}
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	var got bool
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, acquireLeasesSQL, names, owner, float64(ttl.Microseconds()))
		held, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if got = len(held) == len(names); !got {
			return errLeaseHeld // roll back the names taken
		}
		return nil
	})
	if errors.Is(err, errLeaseHeld) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: acquire lease of %s: %w", names[0], mapErr(err))
	}
	return got, nil
}

var errLeaseHeld = errors.New("lease held by another owner")

const releaseLeaseSQL = `
DELETE FROM mailbox_leases WHERE mailbox = ANY($1) AND owner = $2`

// ReleaseLease gives up owner's lease of mailbox so another worker can take
// it at once. Releasing a lease one does not hold does nothing.
func (db *DB) ReleaseLease(ctx context.Context, mailbox, owner string) error {
	return db.ReleaseLeases(ctx, []string{mailbox}, owner)
}

// ReleaseLeases is ReleaseLease for every name AcquireLeases took.
func (db *DB) ReleaseLeases(ctx context.Context, names []string, owner string) error {
	if _, err := db.pool.Exec(ctx, releaseLeaseSQL, names, owner); err != nil {
		return fmt.Errorf("store: release lease of %s: %w", strings.Join(names, ", "), mapErr(err))
	}
	return nil
}
