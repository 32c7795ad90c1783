package classify

import (
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// dsnReport is what the fields of a message/delivery-status part say
// (RFC 3464 §2.2 and §2.3).
type dsnReport struct {
	reportingMTA string
	arrival      time.Time
	recipients   []Recipient
	// tooMany says the body has more recipient blocks than parseDSN's max:
	// reading stopped there, and recipients holds the first max.
	tooMany bool
}

// perRecipientField lists the fields that belong to a per-recipient block
// (RFC 3464 §2.3), so that a block whose blank separator line is missing is
// still recognised.
func perRecipientField(name string) bool {
	switch name {
	case "final-recipient", "original-recipient", "action", "status", "diagnostic-code",
		"remote-mta", "last-attempt-date", "will-retry-until", "final-log-id", "x-actual-recipient":
		return true
	}
	return false
}

// parseDSN reads the fields of a delivery-status body. It is lenient the way
// real MTAs need: odd case, folded lines, comments, missing blank lines
// between blocks, missing fields. It reads at most max recipient blocks
// (none when max <= 0): past them it stops and sets tooMany.
func parseDSN(body string, max int) dsnReport {
	var rep dsnReport
	// One Final-Recipient per block is the rule: sized so, the slice is
	// not grown by doubling, which for 75,000 recipients allocated twice
	// what it keeps.
	if n := countFinalRecipients(body); n > 0 {
		if max > 0 {
			n = min(n, max)
		}
		rep.recipients = make([]Recipient, 0, n+1)
	}
	var cur *Recipient
	blank := true // the next field starts a new block
	inRecipient := false
	var name string
	var val strings.Builder
	apply := func() {
		if name == "" {
			return
		}
		n := fieldName(name)
		v := strings.TrimSpace(val.String())
		name = ""
		val.Reset()
		if perRecipientField(n) {
			startNew := cur == nil || !inRecipient || (blank && hasAny(cur)) ||
				(n == "final-recipient" && cur.Address != "") ||
				(n == "original-recipient" && cur.OriginalAddress != "") ||
				(n == "action" && cur.Action != "")
			if startNew {
				if max > 0 && len(rep.recipients) >= max {
					rep.tooMany = true
					return
				}
				rep.recipients = append(rep.recipients, Recipient{})
				cur = &rep.recipients[len(rep.recipients)-1]
				inRecipient = true
			}
			blank = false
			setRecipientField(cur, n, v)
			return
		}
		if blank && inRecipient {
			inRecipient = false // a field outside any recipient block
		}
		blank = false
		switch n {
		case "reporting-mta":
			rep.reportingMTA = strings.Trim(stripType(stripComments(v)), "[] ")
		case "arrival-date":
			if t, ok := parseDate(v); ok {
				rep.arrival = t
			}
		}
	}
	for line := range strings.SplitSeq(body, "\n") {
		if rep.tooMany {
			break
		}
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			apply()
			blank = true
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && name != "" {
			val.WriteByte(' ')
			val.WriteString(strings.TrimSpace(line))
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !isFieldName(line[:colon]) {
			continue
		}
		apply()
		name = line[:colon]
		val.WriteString(line[colon+1:])
	}
	apply()
	// Drop blocks that name nobody.
	out := rep.recipients[:0]
	for _, r := range rep.recipients {
		if r.Address == "" {
			r.Address = r.OriginalAddress
		}
		if r.Address != "" {
			out = append(out, r)
		}
	}
	rep.recipients = out
	return rep
}

// setRecipientField sets the field n (a per-recipient field name, lower
// case) of r to what v says (RFC 3464 §2.3).
func setRecipientField(r *Recipient, n, v string) {
	switch n {
	case "final-recipient":
		r.Address = dsnAddress(v)
	case "original-recipient":
		r.OriginalAddress = dsnAddress(v)
	case "x-actual-recipient":
		if r.Address == "" {
			r.Address = dsnAddress(v)
		}
	case "action":
		r.Action = strings.ToLower(firstWord(stripComments(v)))
	case "status":
		r.Status = findStatus(v)
	case "diagnostic-code":
		r.Diagnostic = stripType(v)
	case "remote-mta":
		r.RemoteMTA = strings.Trim(stripType(stripComments(v)), "[] ")
	case "last-attempt-date":
		if t, ok := parseDate(v); ok {
			r.LastAttempt = t
		}
	}
}

// countFinalRecipients counts the lines of body that start with a
// Final-Recipient field name, in any case.
func countFinalRecipients(body string) int {
	const name = "final-recipient:"
	n := 0
	for i := 0; i+len(name) <= len(body); {
		if strings.EqualFold(body[i:i+len(name)], name) {
			n++
		}
		j := strings.IndexByte(body[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return n
}

// dsnFields are the field names parseDSN acts on, lower case.
var dsnFields = []string{
	"final-recipient", "original-recipient", "action", "status", "diagnostic-code", "remote-mta",
	"last-attempt-date", "will-retry-until", "final-log-id", "x-actual-recipient", "reporting-mta",
	"arrival-date", "received-from-mta",
}

// fieldName returns the lower-case form of a known DSN field name without
// allocating, or name lower-cased.
func fieldName(name string) string {
	name = strings.TrimSpace(name)
	for _, f := range dsnFields {
		if strings.EqualFold(name, f) {
			return f
		}
	}
	return strings.ToLower(name)
}

func hasAny(r *Recipient) bool {
	return r.Address != "" || r.OriginalAddress != "" || r.Action != "" || r.Status != "" || r.Diagnostic != ""
}

// stripType removes the type of a typed field, e.g. "smtp; 550 ..." or
// "rfc822; user@example.org" (RFC 3464 §2.1.2).
func stripType(v string) string {
	v = strings.TrimSpace(v)
	semi := strings.IndexByte(v, ';')
	if semi <= 0 || semi > 20 {
		return v
	}
	t := v[:semi]
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return v
		}
	}
	return strings.TrimSpace(v[semi+1:])
}

// stripComments removes RFC 5322 comments "(...)" (§3.2.2), which nest;
// parentheses inside a quoted string are not comments.
func stripComments(v string) string {
	if strings.IndexByte(v, '(') < 0 {
		return v
	}
	var sb strings.Builder
	depth := 0
	quoted := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case depth == 0 && c == '"' && !escaped(v, i):
			quoted = !quoted
			sb.WriteByte(c)
		case quoted:
			sb.WriteByte(c)
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			sb.WriteByte(c)
		}
	}
	return strings.TrimSpace(sb.String())
}

func firstWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t;,"); i >= 0 {
		return s[:i]
	}
	return s
}

// dsnAddress extracts the address of an address field (RFC 3464 §2.3.1-2);
// see fieldAddress.
func dsnAddress(v string) string {
	return fieldAddress(v)
}

// decodeUnitext decodes the \x{HEX} escapes of RFC 6533 §3.
func decodeUnitext(s string) string {
	var sb strings.Builder
	for {
		i := strings.Index(s, `\x{`)
		if i < 0 {
			sb.WriteString(s)
			return sb.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			sb.WriteString(s)
			return sb.String()
		}
		sb.WriteString(s[:i])
		if n, err := strconv.ParseUint(s[i+3:i+j], 16, 32); err == nil {
			sb.WriteRune(rune(n))
		}
		s = s[i+j+1:]
	}
}

// parseDate reads an RFC 5322 date (§3.3), "Mon, 2 Nov 2026 09:00:01 +0000"
// with the day name, seconds and zone comments optional, without the cost
// of net/mail trying layout after layout; odd forms fall back to it.
func parseDate(v string) (time.Time, bool) {
	s := strings.TrimSpace(stripComments(v))
	if i := strings.IndexByte(s, ','); i >= 0 && i <= 4 {
		s = strings.TrimSpace(s[i+1:])
	}
	f := strings.Fields(s)
	if len(f) >= 4 {
		day, err1 := strconv.Atoi(f[0])
		mon := monthOf(f[1])
		year, err2 := strconv.Atoi(f[2])
		hms := strings.Split(f[3], ":")
		if err1 == nil && err2 == nil && mon != 0 && (len(hms) == 2 || len(hms) == 3) {
			if year < 100 {
				year += 1900
				if year < 1950 {
					year += 100
				}
			}
			var t [3]int
			ok := true
			for i, x := range hms {
				n, err := strconv.Atoi(x)
				ok = ok && err == nil
				t[i] = n
			}
			loc := time.UTC
			if len(f) >= 5 {
				loc, ok = zoneOf(f[4], ok)
			}
			if ok {
				return time.Date(year, mon, day, t[0], t[1], t[2], 0, loc), true
			}
		}
	}
	if t, err := mail.ParseDate(s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

func monthOf(s string) time.Month {
	if len(s) < 3 {
		return 0
	}
	for m := time.January; m <= time.December; m++ {
		if strings.EqualFold(s[:3], m.String()[:3]) {
			return m
		}
	}
	return 0
}

// zoneOf reads "+0900" or an obsolete zone name (RFC 5322 §4.3).
func zoneOf(z string, ok bool) (*time.Location, bool) {
	if len(z) == 5 && (z[0] == '+' || z[0] == '-') {
		h, err1 := strconv.Atoi(z[1:3])
		m, err2 := strconv.Atoi(z[3:5])
		if err1 != nil || err2 != nil {
			return time.UTC, false
		}
		off := (h*60 + m) * 60
		if z[0] == '-' {
			off = -off
		}
		return time.FixedZone("", off), ok
	}
	switch strings.ToUpper(z) {
	case "UT", "UTC", "GMT", "Z":
		return time.UTC, ok
	case "EST":
		return time.FixedZone("EST", -5*3600), ok
	case "EDT":
		return time.FixedZone("EDT", -4*3600), ok
	case "CST":
		return time.FixedZone("CST", -6*3600), ok
	case "CDT":
		return time.FixedZone("CDT", -5*3600), ok
	case "MST":
		return time.FixedZone("MST", -7*3600), ok
	case "MDT":
		return time.FixedZone("MDT", -6*3600), ok
	case "PST":
		return time.FixedZone("PST", -8*3600), ok
	case "PDT":
		return time.FixedZone("PDT", -7*3600), ok
	}
	return time.UTC, false
}
