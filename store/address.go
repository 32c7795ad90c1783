package store

import (
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
// come from anywhere, and one bad byte must not fail a batch.
func cleanText(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
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
