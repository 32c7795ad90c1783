package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoErasureKey is returned by Erase when the DB has no erasure key.
var ErrNoErasureKey = errors.New("store: erasure needs a key: set BOUNCER_ERASURE_KEY or BOUNCER_ERASURE_KEY_FILE (16+ bytes, e.g. openssl rand -base64 32) on every bouncer process")

// MinErasureKeyLength is the shortest erasure key accepted.
const MinErasureKeyLength = 16

// ReasonErased is the reason a check reports for an erased address: it is
// never stored in suppressions (the address is gone; erased_subjects keeps
// its keyed hash) and outranks every other reason, so the policy never
// suppresses an erased address again.
const ReasonErased Reason = "erased"

// subjectHash is the keyed hash erased_subjects keeps of a normalised
// address.
func subjectHash(key []byte, addr string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("bouncer erased subject v1\x00"))
	m.Write([]byte(addr))
	return m.Sum(nil)
}

// erasureKeyID names a key without revealing it.
func erasureKeyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("bouncer erasure key id"))
	return hex.EncodeToString(m.Sum(nil)[:6])
}

// pseudonym is what replaces an erased address: stable for the address
// under one key (so the rows of one person still count as one), and
// meaningless without the key.
func pseudonym(hash []byte) string {
	return "erased-" + hex.EncodeToString(hash[:8]) + "@erased.invalid"
}

// eraseStatement is one table's part of an erasure. The parameters are
// $1 the normalised address, $2 a case-insensitive regular expression
// matching every spelling of it seen, $3 its pseudonym.
type eraseStatement struct {
	table, does, sql string
}

// rr replaces every spelling of the address in column c by its pseudonym.
func rr(c string) string { return "regexp_replace(" + c + ", $2, $3, 'gi')" }

// eraseStatements is everything an erasure touches, in order (the
// messages are found through the bounce rows, so those go before the
// bounce rows change). Tables added later that hold addresses or raw
// provider payloads get their statement here; the README's "Erasure"
// section lists what is not reached.
var eraseStatements = []eraseStatement{
	{"source_messages", "bounce messages about the address: its spellings in subject, From and Message-ID replaced", `
UPDATE source_messages SET subject = ` + rr("subject") + `, from_header = ` + rr("from_header") + `,
    message_id = ` + rr("message_id") + `
WHERE id IN (SELECT source_id FROM bounces WHERE address = $1)
  AND (subject ~* $2 OR from_header ~* $2 OR message_id ~* $2)`},
	{"bounces", "other recipients' rows of the same messages: its spellings replaced in their text", `
UPDATE bounces SET diagnostic = ` + rr("diagnostic") + `, original_to = ` + rr("original_to") + `,
    original_recipient = ` + rr("original_recipient") + `, original_subject = ` + rr("original_subject") + `,
    original_message_id = ` + rr("original_message_id") + `, verified_by = ` + rr("verified_by") + `,
    campaign = ` + rr("campaign::text") + `::jsonb
WHERE source_id IN (SELECT source_id FROM bounces WHERE address = $1) AND address <> $1
  AND concat_ws(' ', diagnostic, original_to, original_recipient, original_subject, original_message_id,
      verified_by, campaign::text) ~* $2`},
	{"bounces", "its own rows: address replaced by the pseudonym, its spellings in the text too, subscriber id cleared (category, status, domain and dates stay for the statistics)", `
UPDATE bounces SET address = $3, address_raw = $3, original_recipient = ` + rr("original_recipient") + `,
    diagnostic = ` + rr("diagnostic") + `, original_to = ` + rr("original_to") + `,
    original_subject = ` + rr("original_subject") + `, original_message_id = ` + rr("original_message_id") + `,
    verified_by = ` + rr("verified_by") + `, campaign = ` + rr("campaign::text") + `::jsonb, subscriber_id = ''
WHERE address = $1`},
	{"list_members", "its memberships deleted", `DELETE FROM list_members WHERE address = $1`},
	{"suppressions", "its records pseudonymised (reason, scope and dates stay); notes and removal reasons lose its spellings", `
UPDATE suppressions SET address = $3, address_raw = $3, note = ` + rr("note") + `, removed_why = ` + rr("removed_why") + `
WHERE address = $1`},
	{"sent_messages", "the messages sent to it deleted", `DELETE FROM sent_messages WHERE recipient = $1`},
	{"webhook_events", "providers' raw payloads naming it: its spellings replaced (the bytes read with escapes, so a payload that is not UTF-8 is kept intact around them)", `
UPDATE webhook_events SET payload = decode(` + rr("encode(payload, 'escape')") + `, 'escape')
WHERE $1::text <> '' AND encode(payload, 'escape') ~* $2`},
	{"outbox", "events naming it, published or not: its spellings replaced in the payload", `
UPDATE outbox SET payload = ` + rr("payload::text") + `::json
WHERE $1::text <> '' AND payload::text ~* $2`}, // $1 named only to type it
}

// EraseStatements returns the tables an erasure touches and what it does to
// each, in order: for documentation and tests.
func EraseStatements() [][2]string {
	out := make([][2]string, len(eraseStatements))
	for i, s := range eraseStatements {
		out[i] = [2]string{s.table, s.does}
	}
	return out
}

// Erasure is what Erase did.
type Erasure struct {
	Address   string // normalised
	Pseudonym string
	// Already is true when the address had been erased before (its hash
	// was there); the statements ran again all the same.
	Already bool
	// Rows counts the rows each table's statements changed or deleted.
	Rows map[string]int64
}

const spellingsSQL = `
SELECT address_raw FROM bounces WHERE address = $1
UNION SELECT original_recipient FROM bounces WHERE address = $1 AND original_recipient <> ''
UNION SELECT address_raw FROM suppressions WHERE address = $1
UNION SELECT address_raw FROM list_members WHERE address = $1`

const insertErasedSQL = `
INSERT INTO erased_subjects (hash, key_id, erased_at, erased_by, why) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (hash) DO NOTHING`

// Erase forgets a person, in one transaction: every statement of
// eraseStatements runs for the address, and its keyed hash goes into
// erased_subjects, so that every suppression check (CheckSuppression,
// CheckSuppressions, the policy of SaveBatch) still answers suppressed.
// by says who asked; why is kept too. It needs the erasure key
// (Options.ErasureKey), else it returns ErrNoErasureKey.
func (db *DB) Erase(ctx context.Context, address, by, why string) (Erasure, error) {
	addr, domain := NormalizeAddress(address)
	switch {
	case len(db.erasureKey) == 0:
		return Erasure{}, ErrNoErasureKey
	case !isAddress(addr, domain):
		return Erasure{}, fmt.Errorf("%w: %q is not an email address", ErrInvalid, address)
	case strings.TrimSpace(by) == "" || strings.TrimSpace(why) == "":
		return Erasure{}, fmt.Errorf("%w: erase %s: say who and why", ErrInvalid, addr)
	}
	hash := subjectHash(db.erasureKey, addr)
	res := Erasure{Address: addr, Pseudonym: pseudonym(hash), Rows: map[string]int64{}}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockAddressesSQL, []int64{lockKey(addr)}); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, spellingsSQL, addr)
		if err != nil {
			return err
		}
		spellings, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		pattern := spellingPattern(append(spellings, addr, strings.TrimSpace(address)))
		args := []any{addr, pattern, res.Pseudonym}
		for _, st := range eraseStatements {
			n := 1 // the statement's parameters: $1, or $1 to $3
			if strings.Contains(st.sql, "$2") || strings.Contains(st.sql, "$3") {
				n = 3
			}
			tag, err := tx.Exec(ctx, st.sql, args[:n]...)
			if err != nil {
				return fmt.Errorf("%s: %w", st.table, err)
			}
			res.Rows[st.table] += tag.RowsAffected()
		}
		tag, err := tx.Exec(ctx, insertErasedSQL, hash, erasureKeyID(db.erasureKey), db.clock(),
			cleanText(by, 256), cleanText(why, 2048))
		res.Already = err == nil && tag.RowsAffected() == 0
		return err
	})
	if err != nil {
		return Erasure{}, fmt.Errorf("store: erase %s: %w", domain, mapErr(err))
	}
	return res, nil
}

// spellingPattern is a regular expression (PostgreSQL's ARE, matched
// without case) for any of the spellings, longest first.
func spellingPattern(spellings []string) string {
	var alts []string
	for _, s := range spellings {
		s = strings.Trim(strings.TrimSpace(s), "<>")
		if s != "" && strings.Contains(s, "@") {
			alts = append(alts, regexp.QuoteMeta(s))
		}
	}
	slices.SortFunc(alts, func(a, b string) int { return len(b) - len(a) })
	return strings.Join(slices.Compact(alts), "|")
}

const erasedSQL = `SELECT hash, erased_at FROM erased_subjects WHERE hash = ANY($1)`

// erasedOf returns, for the normalised addresses that were erased, when:
// nothing without an erasure key.
func (db *DB) erasedOf(ctx context.Context, q querier, addrs []string) (map[string]time.Time, error) {
	if len(db.erasureKey) == 0 || len(addrs) == 0 {
		return nil, nil
	}
	byHash := make(map[string]string, len(addrs))
	hashes := make([][]byte, len(addrs))
	for i, a := range addrs {
		hashes[i] = subjectHash(db.erasureKey, a)
		byHash[string(hashes[i])] = a
	}
	rows, err := q.Query(ctx, erasedSQL, hashes)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	var h []byte
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&h, &at}, func() error {
		out[byHash[string(h)]] = at
		return nil
	})
	return out, err
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// erasedSuppression is what a check answers for an erased address: a
// global suppression of reason ReasonErased, in force since the erasure.
func erasedSuppression(addr string, at time.Time) Suppression {
	_, domain, _ := strings.Cut(addr, "@")
	return Suppression{Address: addr, AddressRaw: addr, Domain: domain, Reason: ReasonErased,
		CreatedAt: at, CreatedBy: "erasure"}
}
