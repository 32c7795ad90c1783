package verp

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// MinSecret is the shortest secret accepted, in bytes. RFC 2104 §3
// discourages keys shorter than the hash output (32 bytes for SHA-256, what
// we suggest); 16 bytes (128 bits) is the floor, still far beyond the 80-bit
// tag, below which a key is refused.
const MinSecret = 16

// maxID keeps key ids shorter than any secret written in base64 (a
// 16-byte secret takes 22 characters), so that a secret pasted where an id
// belongs is refused and never echoed back as an id.
const maxID = 16

// ErrNoKeys: no key is configured (BOUNCER_VERP_KEYS and
// BOUNCER_VERP_KEYS_FILE are unset). Callers decide whether that is fatal:
// the worker then runs without VERP trust.
var ErrNoKeys = errors.New("no VERP keys: set BOUNCER_VERP_KEYS (id:base64secret,...) or BOUNCER_VERP_KEYS_FILE")

// ErrConfig marks a configuration that cannot be used: a key entry that is
// not ID:BASE64SECRET, a short secret, a repeated id, a bad local part or
// separator. Its messages name key entries by position and id, never by
// secret.
var ErrConfig = errors.New("bad VERP configuration")

// Keys are the HMAC keys of the return paths: the first signs every new
// token, and all of them verify. Rotation is: put a new key first, keep the
// old one listed while bounces of mail it signed may still come back, then
// drop it. Neither String nor any error shows a secret.
type Keys struct {
	keys []*key
}

// key is one secret. Keys holds pointers, so that fmt prints addresses,
// not secrets, for a Keys inside another value.
type key struct {
	id     string
	sel    byte
	secret []byte
}

// String names the key, never its secret.
func (k *key) String() string { return "verp key " + k.id }

// GoString is String, for %#v.
func (k *key) GoString() string { return k.String() }

// ParseKeys reads the BOUNCER_VERP_KEYS form: comma-separated
// ID:BASE64SECRET entries, the first of which signs. An ID is 1-16
// letters, digits, '.', '_' or '-', and is part of every token signed by its
// key (as a selector), so a key must never be renamed. The secret is base64
// (standard or URL alphabet, padded or not) of at least MinSecret bytes.
func ParseKeys(s string) (*Keys, error) {
	return parseEntries(strings.Split(s, ","), "entry")
}

// ParseKeyLines reads the BOUNCER_VERP_KEYS_FILE form: one ID:BASE64SECRET
// per line, the first of which signs; blank lines and lines starting with
// '#' are skipped.
func ParseKeyLines(s string) (*Keys, error) {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "#") {
			lines[i] = ""
		}
	}
	return parseEntries(lines, "line")
}

// parseEntries parses entries; unit names an entry's position in errors.
func parseEntries(entries []string, unit string) (*Keys, error) {
	ks := &Keys{}
	seen := map[byte]string{}
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		k, err := parseEntry(e)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %d: %v", ErrConfig, unit, i+1, err)
		}
		if other, dup := seen[k.sel]; dup {
			if other == k.id {
				return nil, fmt.Errorf("%w: %s %d: key id %q is listed twice", ErrConfig, unit, i+1, k.id)
			}
			return nil, fmt.Errorf("%w: %s %d: key ids %q and %q share a token selector; give one of them another id", ErrConfig, unit, i+1, other, k.id)
		}
		seen[k.sel] = k.id
		ks.keys = append(ks.keys, k)
	}
	if len(ks.keys) == 0 {
		return nil, ErrNoKeys
	}
	return ks, nil
}

// parseEntry parses one ID:BASE64SECRET. Its errors never quote the secret,
// nor the id when the id is invalid (it may be a misplaced secret).
func parseEntry(e string) (*key, error) {
	id, b64, ok := strings.Cut(e, ":")
	id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
	if !ok || id == "" || b64 == "" {
		return nil, errors.New("not ID:BASE64SECRET")
	}
	if !validID(id) {
		return nil, fmt.Errorf("the key id is not 1-%d letters, digits, '.', '_' or '-'", maxID)
	}
	secret, err := decodeSecret(b64)
	if err != nil {
		return nil, fmt.Errorf("key %q: the secret is not base64", id)
	}
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("key %q: the secret is %d bytes, want at least %d (e.g. openssl rand -base64 32)", id, len(secret), MinSecret)
	}
	sel := sha256.Sum256([]byte("bouncer-verp-key\x00" + id))
	return &key{id: id, sel: sel[0], secret: secret}, nil
}

func validID(id string) bool {
	if len(id) > maxID {
		return false
	}
	for _, r := range id {
		if !isAlnum(r) && r != '.' && r != '_' && r != '-' {
			return false
		}
	}
	return id != ""
}

// decodeSecret accepts every common spelling of base64 (RFC 4648 §4 and §5,
// with or without padding): operators paste what their tool printed.
func decodeSecret(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// IDs returns the key ids, the signing key first.
func (ks *Keys) IDs() []string {
	if ks == nil {
		return nil
	}
	ids := make([]string, len(ks.keys))
	for i, k := range ks.keys {
		ids[i] = k.id
	}
	return ids
}

// Signer returns the id of the key that signs new tokens.
func (ks *Keys) Signer() string {
	if k := ks.signer(); k != nil {
		return k.id
	}
	return ""
}

// String lists the key ids, the signer first; never a secret.
func (ks *Keys) String() string {
	ids := ks.IDs()
	if len(ids) == 0 {
		return "no VERP keys"
	}
	return "VERP keys " + strings.Join(ids, ", ") + " (" + ids[0] + " signs)"
}

// GoString is String, for %#v.
func (ks *Keys) GoString() string { return ks.String() }

func (ks *Keys) signer() *key {
	if ks == nil || len(ks.keys) == 0 {
		return nil
	}
	return ks.keys[0]
}

// bySelector finds the key a token names, and whether it is the signer.
func (ks *Keys) bySelector(sel byte) (k *key, current bool) {
	for i, k := range ks.keys {
		if k.sel == sel {
			return k, i == 0
		}
	}
	return nil, false
}
