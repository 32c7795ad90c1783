package store

import (
	"net"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// NormalizeAddress returns the form of an email address that every table
// keys on, and its domain: surrounding space and angle brackets and an
// "rfc822;" address-type prefix (RFC 3464 §2.3.2) removed, lower-cased, and
// an internationalised domain in its ASCII (punycode) form, IDNA2008 lookup
// rules (RFC 5891). The local part is lower-cased too: RFC 5321 §2.4 lets a
// server tell case apart, but no real mailbox does, and a list must not hold
// the same person twice. A domain that is not valid IDNA is kept
// lower-cased, so a broken address is still recorded as reported.
func NormalizeAddress(s string) (addr, domain string) {
	s = strings.TrimSpace(s)
	if len(s) > 7 && strings.EqualFold(s[:7], "rfc822;") {
		s = strings.TrimSpace(s[7:])
	}
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">"))
	s = strings.ToLower(cleanText(s, 512))
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s, ""
	}
	local, domain := s[:at], strings.TrimSuffix(s[at+1:], ".")
	if !isASCII(domain) {
		// An ASCII domain comes out of IDNA lower-cased, as it already is,
		// or with an error, which keeps it as is: skip the work.
		if a, err := idna.Lookup.ToASCII(domain); err == nil {
			domain = strings.ToLower(a)
		}
	}
	return local + "@" + domain, domain
}

// isAddress reports whether a NormalizeAddress result is an address a
// person may suppress or check: a local part, an @ and a domain.
func isAddress(addr, domain string) bool {
	return domain != "" && len(addr) > len(domain)+1
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// cleanText makes s storable in a PostgreSQL text column and bounded: valid
// UTF-8, no NUL bytes, at most max bytes (cut on a rune boundary). Bounces
// come from anywhere, and one bad byte must not fail a batch. A NUL (which
// a text column refuses) becomes U+FFFD like any other unreadable byte:
// dropped, it would join "jo\x00hn@example.org" into a different, valid
// address.
func cleanText(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// Address limits of RFC 5321 §4.5.3.1: a local part of at most 64 octets,
// a domain of at most 255 (253 without the root's dot), a label of 63, a
// path of 256 with its angle brackets.
const (
	maxLocalPart = 64
	maxDomain    = 253
	maxLabel     = 63
	maxAddress   = 254
)

// ValidAddress reports whether a NormalizeAddress result is an address
// that could receive mail: an RFC 5321 §4.1.2 Mailbox (with the UTF-8 of
// RFC 6531 §3.3 in the local part) whose domain could exist. Only such an
// address may be suppressed or change a list membership; any other is
// kept in its bounce row as reported and acted on never. It refuses
// invalid UTF-8 (seen as U+FFFD after cleanText), control characters and
// spaces outside quotes, a local part or domain over its length limit, a
// single-label domain ("localhost", "example"), a label with characters
// outside letters, digits and hyphens (after IDNA), a hyphen at a label's
// end, and an all-numeric top-level label (RFC 3696 §2). An address
// literal ([192.0.2.1], [IPv6:2001:db8::1]) is valid when its IP parses
// and is a global unicast address.
func ValidAddress(addr, domain string) bool {
	if !isAddress(addr, domain) || len(addr) > maxAddress || strings.ContainsRune(addr, utf8.RuneError) {
		return false
	}
	local := addr[:len(addr)-len(domain)-1]
	return validLocalPart(local) && validDomain(domain)
}

// validLocalPart checks a Dot-string or Quoted-string (RFC 5321 §4.1.2),
// non-ASCII UTF-8 allowed (RFC 6531 §3.3).
func validLocalPart(local string) bool {
	if len(local) == 0 || len(local) > maxLocalPart {
		return false
	}
	if len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"' {
		q := local[1 : len(local)-1]
		for i := 0; i < len(q); i++ {
			c := q[i]
			switch {
			case c == '\\':
				i++ // quoted-pair: any printable next
				if i >= len(q) || q[i] < 32 || q[i] == 127 {
					return false
				}
			case c == '"' || c < 32 || c == 127:
				return false
			}
		}
		return true
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c >= utf8.RuneSelf || c == '.' || isAtext(c) {
			continue
		}
		return false
	}
	return true
}

// isAtext reports whether c is an ASCII atext character (RFC 5322 §3.2.3).
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// validDomain checks a normalised (IDNA ASCII, lower-case) domain.
func validDomain(domain string) bool {
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		lit := strings.TrimPrefix(domain[1:len(domain)-1], "ipv6:")
		ip := net.ParseIP(lit)
		return ip != nil && ip.IsGlobalUnicast() && !ip.IsPrivate()
	}
	if len(domain) > maxDomain {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	return strings.Trim(tld, "0123456789") != ""
}
