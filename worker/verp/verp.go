// Package verp builds and reads signed return paths (VERP, variable envelope
// return paths): the envelope sender of every message we send is
// LOCAL+TOKEN@DOMAIN (bounces+k3x…@bounces.example.com), so that a bounce,
// which RFC 5321 §4.5.5 and RFC 3464 send back to that path, proves that it
// answers mail we sent, to whom, for which list and which campaign.
//
// # Why the token commits to the recipient instead of carrying it
//
// RFC 5321 §4.5.3.1.1 limits a local part to 64 octets, and a recipient
// address alone may take 254 (§4.5.3.1.3), list and campaign ids besides. So
// the token does not carry them: it carries keyed 64-bit (recipient) and
// 32-bit (list, campaign) commitments, HMAC-SHA256 of the normalized value,
// and the verifier checks them against the candidates a bounce names (the
// DSN's Final-Recipient and Original-Recipient, RFC 3464 §2.3; the returned
// original's To, List-Id and campaign headers; or the known list and
// campaign ids). The price: a token alone cannot say WHO it was sent to, only
// whether a given address is the one; a bounce of a forwarded address is
// checked against each candidate it quotes. The gain: every token has the same
// 48 characters whatever the address, no address is readable in the return
// path, and the commitments are keyed, so nobody without the key can test
// guessed addresses against a token.
//
// # Token layout
//
// 30 bytes, written as 48 characters of lower-case base32 without padding
// (RFC 4648 §6, alphabet a-z2-7). Base32 and not base64 because mail systems
// fold the case of local parts, although RFC 5321 §2.4 says they should not;
// decoding folds case first, so an upper-cased address still verifies. 30
// bytes are a whole number of base32 quanta, so each token has exactly one
// spelling (up to case) and changing any character changes the bytes.
//
//	offset size field
//	0      1    version (1)
//	1      1    key selector: SHA-256("bouncer-verp-key\x00" || key id)[0]
//	2      2    issue day: days since 2020-01-01 UTC, big-endian
//	4      8    HMAC-SHA256(secret, "r\x00" || normalized recipient)[:8]
//	12     4    HMAC-SHA256(secret, "l\x00" || list id)[:4]
//	16     4    HMAC-SHA256(secret, "c\x00" || campaign id)[:4]
//	20     10   tag: HMAC-SHA256(secret, "bouncer-verp-v1\x00" || bytes 0..19)[:10]
//
// The tag is truncated to 80 bits, the floor RFC 2104 §5 sets. Its other
// advice, at least half the hash (128 bits), guards against birthday attacks
// by someone who can check guesses offline; a forger of bounces cannot: each
// guess is a mail we must receive, and a wrong one is recorded and never acts,
// so 2^80 guesses stand between a forger and one suppression. The recipient
// commitment has 64 bits because it is what stops a subscriber from reusing
// his own valid token to bounce another address (one chance in 2^64 per
// token and victim); list and campaign commitments only confirm which of a
// few known ids a bounce is about, for which 32 bits are plenty.
//
// With the default "bounces" and "+", the local part is 56 octets; a local
// part and separator longer than 16 octets together do not fit, and Encode
// says so.
//
// # Keys and rotation
//
// Several keys may be listed; the first signs, every listed one verifies
// (see Keys). The selector byte names the key, so a token signed by a key
// that is no longer listed fails with ErrUnknownKey. The issue day tells
// when a key may go: RFC 5321 §4.5.4.1 has senders give up after 4-5 days,
// so keep an old key listed for a few weeks after it stopped signing.
//
// # Normalization
//
// Recipients are compared after NFC normalization (RFC 6531 addresses may be
// UTF-8), lower-casing the local part (RFC 5321 §2.4 allows case-sensitive
// local parts, but no mail system we send to uses them, and MTAs rewrite the
// case in DSNs) and converting the domain to its ASCII form (IDNA, RFC 5891),
// so münchen.example and xn--mnchen-3ya.example are one domain. List and
// campaign ids are compared exactly: they are ours.
//
// The package is pure: no clock, no network. LoadKeys (keyfile.go) is the
// one function that reads a file.
package verp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of Decode and Check. They are distinct so that the worker can tell
// a bounce that is not ours from a forged one, and record which it was.
var (
	// ErrNotVERP: the address is not LOCAL+TOKEN@DOMAIN for this Codec.
	ErrNotVERP = errors.New("not a VERP address")
	// ErrMalformed: the address has our prefix but the token is not one
	// (wrong length, characters outside base32, unknown version).
	ErrMalformed = errors.New("malformed VERP token")
	// ErrUnknownKey: the token names a key that is not listed: retired,
	// or never ours.
	ErrUnknownKey = errors.New("VERP token signed by an unknown key")
	// ErrBadTag: the tag does not verify: the token is forged or corrupted.
	ErrBadTag = errors.New("VERP tag does not verify (forged or corrupted)")
	// ErrWrongRecipient: a valid token, issued for another recipient.
	ErrWrongRecipient = errors.New("VERP token issued for another recipient")
	// ErrWrongList: a valid token, issued for another list.
	ErrWrongList = errors.New("VERP token issued for another list")
	// ErrWrongCampaign: a valid token, issued for another campaign.
	ErrWrongCampaign = errors.New("VERP token issued for another campaign")
)

// TokenLen is the length of every token in characters: 30 bytes in base32.
const TokenLen = 48

// DefaultLocal and DefaultSep make the default return path
// bounces+TOKEN@DOMAIN.
const (
	DefaultLocal = "bounces"
	DefaultSep   = "+"
)

const (
	version   = 1
	rawLen    = 30
	tagOffset = 20
	maxLocal  = 64  // octets of a local part, RFC 5321 §4.5.3.1.1
	maxPath   = 254 // octets of an address: a 256-octet path (§4.5.3.1.3) less its brackets
)

// epoch is day 0 of the issue day; a uint16 of days runs to 2199.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// b32 is RFC 4648 §6 base32 in lower case, without padding.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Fields are what a token is about: one message sent to Recipient, for the
// list List, in the campaign or send Campaign. List and Campaign may be
// empty (a transactional message); Check skips empty fields.
type Fields struct {
	Recipient string
	List      string
	Campaign  string
}

// Codec builds and reads return paths. The zero Local and Sep mean
// DefaultLocal and DefaultSep.
type Codec struct {
	Keys *Keys
	// Local is the local part before the separator, compared without
	// regard to case.
	Local string
	// Sep separates Local from the token: one to four characters that are
	// allowed in a local part (RFC 5322 §3.2.3 atext) but are not letters
	// or digits, such as "+" or "-" (the MTA's recipient delimiter).
	Sep string
	// Domain is the return path's domain. Encode needs it; Decode accepts
	// only it when it is set, and any domain when it is empty.
	Domain string
}

func (c Codec) local() string {
	if c.Local == "" {
		return DefaultLocal
	}
	return c.Local
}

func (c Codec) sep() string {
	if c.Sep == "" {
		return DefaultSep
	}
	return c.Sep
}

// Validate reports whether the local part and separator are usable and
// leave room for a token within the 64 octets of RFC 5321 §4.5.3.1.1. Its
// errors match ErrConfig.
func (c Codec) Validate() error {
	local, sep := c.local(), c.sep()
	if !isDotAtom(local) {
		return fmt.Errorf("%w: local part %q is not a dot-atom of letters, digits and !#$%%&'*+-/=?^_`{|}~ (RFC 5322 §3.2.3)", ErrConfig, local)
	}
	if len(sep) > 4 || !isDotAtom(local+sep+"x") || strings.ContainsFunc(sep, isAlnum) {
		return fmt.Errorf("%w: separator %q: want 1-4 characters such as + or -, not letters or digits", ErrConfig, sep)
	}
	if n := len(local) + len(sep) + TokenLen; n > maxLocal {
		return fmt.Errorf("%w: local part %q and separator %q take %d octets, and with the %d-character token %d: a local part has at most %d (RFC 5321 §4.5.3.1.1)",
			ErrConfig, local, sep, len(local)+len(sep), TokenLen, n, maxLocal)
	}
	return nil
}

// Encode returns the return path for f, signed by the first key, with the
// day of issued as its issue day. It fails on invalid fields, a domain that
// is not a host name, or no keys.
func (c Codec) Encode(f Fields, issued time.Time) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	k := c.Keys.signer()
	if k == nil {
		return "", ErrNoKeys
	}
	domain, err := hostASCII(c.Domain)
	if err != nil {
		return "", err
	}
	if err := checkFields(f); err != nil {
		return "", err
	}
	day := issued.Sub(epoch).Hours() / 24
	if day < 0 || day >= 1<<16 {
		return "", fmt.Errorf("issue time %s is outside 2020-2199", issued.UTC().Format(time.DateOnly))
	}
	var raw [rawLen]byte
	raw[0] = version
	raw[1] = k.sel
	binary.BigEndian.PutUint16(raw[2:4], uint16(day))
	copy(raw[4:12], k.sum("r", normalizeAddress(f.Recipient)))
	copy(raw[12:16], k.sum("l", f.List))
	copy(raw[16:20], k.sum("c", f.Campaign))
	copy(raw[tagOffset:], k.tag(raw[:tagOffset]))
	addr := c.local() + c.sep() + b32.EncodeToString(raw[:]) + "@" + domain
	if len(addr) > maxPath {
		return "", fmt.Errorf("domain %q makes the return path %d octets, more than %d (RFC 5321 §4.5.3.1.3)", c.Domain, len(addr), maxPath)
	}
	return addr, nil
}

// Token is a decoded token whose tag verified: the key that signed it, the
// day it was issued, and commitments that Check compares with a bounce.
type Token struct {
	// KeyID names the key that signed the token.
	KeyID string
	// Current is true when that key is the one that signs now; false for
	// an older key that is still accepted.
	Current bool
	// Issued is the issue day (midnight UTC).
	Issued time.Time

	raw [rawLen]byte
	key *key // a pointer, so that printing a Token never prints a secret
}

// String returns the token as Encode wrote it (lower case).
func (t *Token) String() string { return b32.EncodeToString(t.raw[:]) }

// Decode reads the token of a return path and verifies its tag. It accepts
// the bare address or one in angle brackets, in any case. The token it
// returns is ours; whom it is about is for Check to say.
func (c Codec) Decode(address string) (*Token, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Keys == nil || len(c.Keys.keys) == 0 {
		return nil, ErrNoKeys
	}
	local, domain, ok := splitAddress(address)
	if !ok {
		return nil, fmt.Errorf("%w: want %s%sTOKEN@DOMAIN", ErrNotVERP, c.local(), c.sep())
	}
	if c.Domain != "" && !sameDomain(domain, c.Domain) {
		return nil, fmt.Errorf("%w: the domain is not %s", ErrNotVERP, c.Domain)
	}
	prefix := asciiLower(c.local() + c.sep())
	local = asciiLower(local)
	if !strings.HasPrefix(local, prefix) {
		return nil, fmt.Errorf("%w: the local part does not start with %q", ErrNotVERP, prefix)
	}
	text := local[len(prefix):]
	if len(text) != TokenLen {
		return nil, fmt.Errorf("%w: %d characters after %q, want %d", ErrMalformed, len(text), prefix, TokenLen)
	}
	var raw [rawLen]byte
	if n, err := b32.Decode(raw[:], []byte(text)); err != nil || n != rawLen {
		return nil, fmt.Errorf("%w: not base32 (a-z, 2-7)", ErrMalformed)
	}
	if raw[0] != version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, raw[0], version)
	}
	k, current := c.Keys.bySelector(raw[1])
	if k == nil {
		return nil, fmt.Errorf("%w: selector %#02x is none of %s", ErrUnknownKey, raw[1], strings.Join(c.Keys.IDs(), ", "))
	}
	if !hmac.Equal(raw[tagOffset:], k.tag(raw[:tagOffset])) {
		return nil, fmt.Errorf("%w: under key %s", ErrBadTag, k.id)
	}
	return &Token{
		KeyID:   k.id,
		Current: current,
		Issued:  epoch.AddDate(0, 0, int(binary.BigEndian.Uint16(raw[2:4]))),
		raw:     raw,
		key:     k,
	}, nil
}

// Verify decodes address and checks the token against f: Decode then
// Check.
func (c Codec) Verify(address string, f Fields) (*Token, error) {
	t, err := c.Decode(address)
	if err != nil {
		return nil, err
	}
	return t, t.Check(f)
}

// Check compares the token with the fields of a bounce. Empty fields are
// not checked (a bounce may not show its list or campaign). Every mismatch
// is reported: the error matches ErrWrongRecipient, ErrWrongList and
// ErrWrongCampaign as they apply.
func (t *Token) Check(f Fields) error {
	var errs []error
	if f.Recipient != "" && !t.MatchRecipient(f.Recipient) {
		errs = append(errs, ErrWrongRecipient)
	}
	if f.List != "" && !t.MatchList(f.List) {
		errs = append(errs, ErrWrongList)
	}
	if f.Campaign != "" && !t.MatchCampaign(f.Campaign) {
		errs = append(errs, ErrWrongCampaign)
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	// One line, unlike errors.Join, and errors.Is still finds each.
	format := strings.TrimSuffix(strings.Repeat("%w; ", len(errs)), "; ")
	args := make([]any, len(errs))
	for i, e := range errs {
		args[i] = e
	}
	return fmt.Errorf(format, args...)
}

// MatchRecipient reports whether the token was issued for address (after
// normalization: see the package doc).
func (t *Token) MatchRecipient(address string) bool {
	return hmac.Equal(t.raw[4:12], t.key.sum("r", normalizeAddress(address))[:8])
}

// MatchList reports whether the token was issued for the list id.
func (t *Token) MatchList(id string) bool {
	return hmac.Equal(t.raw[12:16], t.key.sum("l", id)[:4])
}

// MatchCampaign reports whether the token was issued for the campaign id.
func (t *Token) MatchCampaign(id string) bool {
	return hmac.Equal(t.raw[16:20], t.key.sum("c", id)[:4])
}

// sum is the keyed commitment to one field; label keeps the fields apart.
func (k *key) sum(label, value string) []byte {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return m.Sum(nil)
}

// tag is the truncated MAC over the token's first bytes.
func (k *key) tag(b []byte) []byte {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte("bouncer-verp-v1\x00"))
	m.Write(b)
	return m.Sum(nil)[:rawLen-tagOffset]
}
