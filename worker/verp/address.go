package verp

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// splitAddress splits an addr-spec, bare or in angle brackets, at its last
// "@" (a quoted local part may hold others, RFC 5321 §4.1.2).
func splitAddress(s string) (local, domain string, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = s[1 : len(s)-1]
	}
	i := strings.LastIndexByte(s, '@')
	if i <= 0 || i == len(s)-1 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// normalizeAddress is the form in which recipients are committed: NFC, the
// local part lower-cased, the domain in its lower-case ASCII form (IDNA,
// RFC 5891) when it has one. Anything that is not an address is only
// NFC-normalized and lower-cased: it then matches nothing Encode accepted.
func normalizeAddress(s string) string {
	local, domain, ok := splitAddress(s)
	if !ok {
		return strings.ToLower(norm.NFC.String(s))
	}
	local = strings.ToLower(norm.NFC.String(local))
	domain = strings.TrimSuffix(strings.ToLower(norm.NFC.String(domain)), ".")
	if a, err := idna.ToASCII(domain); err == nil {
		domain = strings.ToLower(a)
	}
	return local + "@" + domain
}

// checkFields refuses what cannot be a recipient, list or campaign, so that
// no token commits to a value that a bounce can never show.
func checkFields(f Fields) error {
	local, domain, ok := splitAddress(f.Recipient)
	if !ok || strings.TrimSpace(f.Recipient) != f.Recipient {
		return fmt.Errorf("recipient %q is not an email address: want LOCAL@DOMAIN", f.Recipient)
	}
	if len(f.Recipient) > maxPath {
		return fmt.Errorf("recipient is %d octets, more than %d (RFC 5321 §4.5.3.1.3)", len(f.Recipient), maxPath)
	}
	if err := checkText("recipient", local+"@"+domain); err != nil {
		return err
	}
	if err := checkText("list", f.List); err != nil {
		return err
	}
	return checkText("campaign", f.Campaign)
}

// checkText refuses invalid UTF-8, the replacement character (the sign of
// a value already broken by a bad decode) and control or space characters.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	}
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%s %q contains %U: want no spaces, control or replacement characters", what, s, r)
		}
	}
	return nil
}

// hostASCII checks the return path's domain and returns its lower-case
// ASCII form, so that the return path needs no SMTPUTF8 (RFC 6531).
func hostASCII(domain string) (string, error) {
	if domain == "" {
		return "", fmt.Errorf("no domain: want a host name such as bounces.example.com")
	}
	a, err := idna.Lookup.ToASCII(strings.TrimSuffix(domain, "."))
	if err != nil || !strings.Contains(a, ".") || len(a) > 253 {
		return "", fmt.Errorf("domain %q is not a host name: want one such as bounces.example.com", domain)
	}
	return strings.ToLower(a), nil
}

// sameDomain compares domains without regard to case, a final dot or IDNA
// form (RFC 5891): a mailbox may report münchen.example as
// xn--mnchen-3ya.example.
func sameDomain(a, b string) bool {
	_, a, _ = strings.Cut(normalizeAddress("x@"+a), "@")
	_, b, _ = strings.Cut(normalizeAddress("x@"+b), "@")
	return a == b
}

// isDotAtom reports whether s is an ASCII dot-atom (RFC 5322 §3.2.3): atext
// runs separated by single dots.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && !isAtext(c) {
			return false
		}
	}
	return true
}

func isAtext(c byte) bool {
	return c < utf8.RuneSelf && (isAlnum(rune(c)) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0)
}

func isAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

// asciiLower lower-cases ASCII letters only: tokens and our prefix are
// ASCII, and leaving other bytes alone keeps invalid UTF-8 from changing
// length.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
