package classify

import (
	"encoding/hex"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reading addresses (RFC 5321 §4.1.2, RFC 5322 §3.4, RFC 6531 §3.3). An
// address is found from its "@" outwards, in free text and in field values
// alike:
//
//   - a quoted local part ("john smith"@example.org, "a..b"@example.org) is
//     kept whole, and its quotes dropped only when they are not needed;
//   - the prefixes that gateways and X.400 mappings put before the local
//     part (SMTP=, RFC-822=) are not part of it; "rfc822;", "smtp;",
//     "SMTP:" end at their separator, which no local part carries unquoted;
//     Exchange's IMCEASMTP- encapsulation is decoded;
//   - a source route (<@relay:user@host>, RFC 5321 §4.1.2 and C) is the
//     address after its colon;
//   - a UTF-8 address (RFC 6531) is read when it stands alone, set off by
//     white space, angle brackets or punctuation: CJK prose runs words
//     together, so letters next to an address are not taken as part of it.

// addrTypePrefixes are the address types that gateways write before a local
// part with "=" (Exchange's "SMTP=", X.400's "RFC-822="), lower case.
var addrTypePrefixes = []string{"smtp=", "rfc822=", "rfc-822=", "internet="}

// maxLocal bounds a local part read backwards from an "@" (RFC 5321 allows
// 64 octets; real mail exceeds it a little, hostile text a lot).
const maxLocal = 256

// isLocalChar reports an atext character of an unquoted local part (RFC
// 5322 §3.2.3), ASCII only.
func isLocalChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", c) >= 0
}

func isDomainChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '-' || c == '_'
}

// addrAt reads the address whose "@" is at line[at]. It returns where the
// address starts and ends in line and its canonical form, or ok false.
//
// An address that a NUL, a byte that is not UTF-8 or U+FFFD touches is not
// read: the characters around it belong to the address as much as any, and
// reading past them ("jo\x00hn@example.org" as hn@example.org) would make
// a different, valid address of one that is not.
func addrAt(line string, at int) (s, e int, addr string, ok bool) {
	s, e, addr, ok = addrAtAny(line, at)
	if ok && (brokenBefore(line, s) || brokenAt(line, e)) {
		return 0, 0, "", false
	}
	return s, e, addr, ok
}

func addrAtAny(line string, at int) (s, e int, addr string, ok bool) {
	s, e, addr, ok = readAddrAt(line, at, false)
	if ok && !wideAround(line, s, e) {
		return s, e, addr, ok // no UTF-8 address around it
	}
	if ws, we, waddr, wok := readAddrAt(line, at, true); wok && (ws < s || we > e || !ok) &&
		!isASCIIString(waddr) && standsAlone(line, ws, we) && !mixedScripts(waddr) {
		return ws, we, waddr, true
	}
	return s, e, addr, ok
}

// brokenBefore reports whether the character before line[i] is a NUL, not
// UTF-8, or U+FFFD.
func brokenBefore(line string, i int) bool {
	if i <= 0 {
		return false
	}
	r, _ := utf8.DecodeLastRuneInString(line[:i])
	return r == 0 || r == utf8.RuneError
}

// brokenAt reports whether the character at line[i] is a NUL, not UTF-8,
// or U+FFFD.
func brokenAt(line string, i int) bool {
	if i >= len(line) {
		return false
	}
	r, _ := utf8.DecodeRuneInString(line[i:])
	return r == 0 || r == utf8.RuneError
}

// wideAround reports whether a UTF-8 character joins the ASCII address at
// line[s:e] through the characters an address may hold, so that the wide
// reading could be longer.
func wideAround(line string, s, e int) bool {
	for i := s - 1; i >= 0 && s-i <= maxLocal; i-- {
		if line[i] >= utf8.RuneSelf {
			return true
		}
		if !isLocalChar(line[i]) {
			break
		}
	}
	for i := e; i < len(line); i++ {
		if line[i] >= utf8.RuneSelf {
			return true
		}
		if !isDomainChar(line[i]) {
			break
		}
	}
	return false
}

// readAddrAt reads an address of atoms or a quoted local part; wide admits
// UTF-8 letters and digits in atoms and labels (RFC 6531 §3.3).
func readAddrAt(line string, at int, wide bool) (s, e int, addr string, ok bool) {
	var local string
	if at > 0 && line[at-1] == '"' {
		if escaped(line, at-1) {
			// \"@ is inside a quoted string: no address ends its local
			// part there.
			return 0, 0, "", false
		}
		q := openingQuote(line, at-1)
		if q < 0 {
			return 0, 0, "", false
		}
		s, local = q, line[q:at]
	} else {
		s = localStart(line, at, wide)
		local = line[s:at]
	}
	e, ok = domainEnd(line, at, wide)
	if !ok || local == "" {
		return 0, 0, "", false
	}
	if inner := imceaAddress(local); inner != "" {
		return s, e, inner, true
	}
	return s, e, canonicalAddr(local, line[at+1:e]), true
}

// canonicalAddr joins a local part in canonical form to its domain, unless
// the rewritten local part holds an "@" that would then read as an
// address's ("\0@0.\0" becomes "0@0.0"): that one is kept as written.
func canonicalAddr(local, domain string) string {
	c := canonicalLocal(local)
	if c != local && strings.IndexByte(c, '@') >= 0 {
		if a := c + "@" + domain; firstAddress(a) != a {
			return local + "@" + domain
		}
	}
	return c + "@" + domain
}

// imceaAddress decodes the address an Exchange server encapsulates in a
// local part, "IMCEASMTP-jo+40example+2Eorg@host" for jo@example.org: the
// prefix, then the address with "+" and two hex digits for each special
// character. It returns "" for any other local part.
func imceaAddress(local string) string {
	const prefix = "imceasmtp-"
	if len(local) <= len(prefix) || !hasPrefixFold(local, prefix) {
		return ""
	}
	var sb strings.Builder
	enc := local[len(prefix):]
	for i := 0; i < len(enc); i++ {
		if enc[i] == '+' && i+2 < len(enc) {
			if b, err := hex.DecodeString(enc[i+1 : i+3]); err == nil {
				sb.WriteByte(b[0])
				i += 2
				continue
			}
		}
		sb.WriteByte(enc[i])
	}
	a := sb.String()
	if at := strings.LastIndexByte(a, '@'); at <= 0 {
		return ""
	}
	if s, e, inner, ok := readAddrAt(a, strings.LastIndexByte(a, '@'), false); ok && s == 0 && e == len(a) {
		return inner
	}
	return ""
}

// localStart returns where the unquoted local part before line[at] starts:
// atoms back from the "@", less leading punctuation and a type prefix. An
// encoded word before the "@" stays: some senders put one there verbatim.
func localStart(line string, at int, wide bool) int {
	s := at
	for s > 0 && at-s < maxLocal {
		if isLocalChar(line[s-1]) {
			s--
			continue
		}
		r, n := utf8.DecodeLastRuneInString(line[:s])
		if !wide || !wideChar(r) {
			break
		}
		s -= n
	}
	for s < at && (line[s] == '.' || line[s] == '\'' || line[s] == '=' && !strings.HasPrefix(line[s:], "=?")) {
		s++
	}
	return s + typePrefix(line[s:at])
}

// wideChar reports a non-ASCII letter, digit or mark, which RFC 6531
// admits in atoms and U-labels.
func wideChar(r rune) bool {
	return r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r))
}

// mixedScripts reports whether an atom or label of a UTF-8 address runs
// ASCII letters into letters of a non-Latin script: text without spaces
// ("无法投递到user@example.org的邮件") rather than an address.
func mixedScripts(addr string) bool {
	for seg := range strings.FieldsFuncSeq(addr, func(r rune) bool { return r == '.' || r == '@' }) {
		ascii, other := false, false
		for _, r := range seg {
			switch {
			case r < utf8.RuneSelf:
				ascii = ascii || unicode.IsLetter(r)
			case unicode.IsLetter(r) && !unicode.Is(unicode.Latin, r):
				other = true
			}
		}
		if ascii && other {
			return true
		}
	}
	return false
}

// openingQuote returns the index of the quote that opens the quoted string
// whose closing quote is at line[end], or -1: the quoted string (RFC 5322
// §3.2.4) holds no unescaped quote and no line break.
func openingQuote(line string, end int) int {
	for j := end - 1; j >= 0 && end-j <= maxLocal; j-- {
		if line[j] == '"' && !escaped(line, j) {
			if j+1 == end {
				return -1 // "" is no local part
			}
			return j
		}
	}
	return -1
}

// escaped reports whether line[i] follows an odd number of backslashes.
func escaped(line string, i int) bool {
	n := 0
	for i > 0 && line[i-1] == '\\' {
		n++
		i--
	}
	return n%2 == 1
}

// typePrefix returns the length of an address type prefix ("SMTP=") at the
// start of an unquoted local part, when a local part follows it.
func typePrefix(local string) int {
	for _, p := range addrTypePrefixes {
		if len(local) > len(p) && hasPrefixFold(local, p) {
			return len(p)
		}
	}
	return 0
}

// domainEnd returns where the domain after line[at] ends: a name with at
// least one dot (trailing dots and hyphens are punctuation) or an address
// literal ([192.0.2.1], [IPv6:...]). wide admits UTF-8 letters and digits
// (RFC 6531 U-labels).
func domainEnd(line string, at int, wide bool) (int, bool) {
	d := at + 1
	if d < len(line) && line[d] == '[' {
		j := d + 1
		for j < len(line) && (isAlnum(line[j]) || line[j] == '.' || line[j] == ':' || line[j] == '-') {
			j++
		}
		if j < len(line) && line[j] == ']' && j > d+1 {
			return j + 1, true
		}
		return 0, false
	}
	e := d
	for e < len(line) {
		if isDomainChar(line[e]) {
			e++
			continue
		}
		r, n := utf8.DecodeRuneInString(line[e:])
		if !wide || !wideChar(r) {
			break
		}
		e += n
	}
	for e > d && (line[e-1] == '.' || line[e-1] == '-') {
		e--
	}
	if e <= d || !strings.Contains(line[d:e], ".") || line[d] == '.' || strings.Contains(line[d:e], "..") {
		return 0, false
	}
	return e, true
}

// standsAlone reports whether line[s:e] is set off from the text around it.
func standsAlone(line string, s, e int) bool {
	if s > 0 {
		r, _ := utf8.DecodeLastRuneInString(line[:s])
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return false
		}
	}
	if e < len(line) {
		r, _ := utf8.DecodeRuneInString(line[e:])
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// isASCIIString reports whether s is all ASCII.
func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// canonicalLocal returns a local part in the form RFC 5321 §4.1.2 asks
// for: a quoted string only when the local part is not a dot-atom, and in
// it a backslash only before a quote or a backslash ("\0" is "0").
func canonicalLocal(local string) string {
	if len(local) < 2 || local[0] != '"' || local[len(local)-1] != '"' {
		return local
	}
	return quoteLocal(unescapeQuoted(local[1 : len(local)-1]))
}

// unquotedReads reports whether a local part reads back as itself without
// quotes: an ASCII dot-atom, or a UTF-8 one (RFC 6531 §3.3) in one script
// beside ASCII digits and symbols, as addrAt reads UTF-8 addresses.
func unquotedReads(local string) bool {
	if dotAtom(local) {
		return localStart(local+"@", len(local), false) == 0
	}
	if local == "" || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") ||
		!utf8.ValidString(local) || mixedScripts(local) {
		return false
	}
	for _, r := range local {
		if r < utf8.RuneSelf && !isLocalChar(byte(r)) || r >= utf8.RuneSelf && !wideChar(r) {
			return false
		}
	}
	return localStart(local+"@", len(local), true) == 0
}

// quotedPairs escapes what a quoted string cannot hold bare (RFC 5322
// §3.2.4).
var quotedPairs = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// unescapeQuoted takes the quoted pairs of a quoted string's content away:
// a backslash stands for the character after it.
func unescapeQuoted(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// dotAtom reports whether s is an RFC 5322 dot-atom (§3.2.3).
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLocalChar(s[i]) {
			return false
		}
	}
	return true
}

// scanAddresses finds the email addresses in one line of text.
func scanAddresses(line string, lineNo int, out []addrSpan) []addrSpan {
	for i := 0; i < len(line); i++ {
		if line[i] != '@' {
			continue
		}
		s, e, addr, ok := addrAt(line, i)
		if !ok {
			continue
		}
		out = append(out, addrSpan{addr: addr, line: lineNo, start: s, end: e})
		i = e - 1
	}
	return out
}

// firstAddress returns the first address in s, or "".
func firstAddress(s string) string {
	var buf [4]addrSpan
	found := scanAddresses(s, 0, buf[:0])
	if len(found) == 0 {
		return ""
	}
	return found[0].addr
}

// addressList returns the addresses of a header field such as To or
// X-Failed-Recipients.
func addressList(v string) []string {
	var out []string
	for _, a := range scanAddresses(v, 0, nil) {
		out = append(out, a.addr)
	}
	return out
}

// fieldAddress reads the one address of a field value: a DSN address field
// (RFC 3464 §2.3.1-2: "rfc822; user@example.org", RFC 6533's "utf-8;" with
// \x{..} escapes), an ARF Original-Rcpt-To, an SES emailAddress. It takes
// display names, comments, angle brackets and source routes away. A value
// that holds no address with a domain is returned trimmed, for the caller
// to judge ("user@localhost", "@host").
func fieldAddress(v string) string {
	v = stripType(strings.TrimSpace(v))
	if strings.Contains(v, `\x{`) {
		v = decodeUnitext(v)
	}
	if a, err := mail.ParseAddress(v); err == nil && strings.IndexByte(a.Address, '@') > 0 {
		at := strings.LastIndexByte(a.Address, '@')
		local := a.Address[:at]
		if dotAtom(local) {
			local = local[typePrefix(local):]
		}
		if a := quoteLocal(local) + a.Address[at:]; firstAddress(a) == a {
			return a
		}
	}
	v = stripComments(v)
	if a := firstAddress(v); a != "" {
		return a
	}
	return bareAddress(v)
}

// quoteLocal quotes a local part given unquoted (by net/mail, or a quoted
// string's content) when it does not read back as itself without quotes
// (RFC 5321 §4.1.2).
func quoteLocal(local string) string {
	if unquotedReads(local) {
		return local
	}
	return `"` + quotedPairs.Replace(local) + `"`
}

// bareAddress is what fieldAddress returns for a value without a full
// address: the angle brackets' content, its source route taken away, or
// of several words ("|/usr/bin/prog user /home/user") the one with an "@".
func bareAddress(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i+1 : i+j]
		}
	}
	v = strings.Trim(v, " \t\"'<>")
	if strings.HasPrefix(v, "@") {
		if c := strings.IndexByte(v, ':'); c > 0 && c < len(v)-1 {
			v = v[c+1:] // a source route before a local address
		}
	}
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return ""
	}
	for _, f := range fields {
		if strings.Contains(f, "@") && !strings.ContainsAny(f, "|/") {
			return strings.Trim(f, "<>,;\"'")
		}
	}
	return fields[0]
}
