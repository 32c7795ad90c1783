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
// between blocks, missing fields.
func parseDSN(body string) dsnReport {
	var rep dsnReport
	var cur *Recipient
	blank := true // the next field starts a new block
	inRecipient := false
	var name, val string
	apply := func() {
		if name == "" {
			return
		}
		n := strings.ToLower(name)
		v := strings.TrimSpace(val)
		name, val = "", ""
		if perRecipientField(n) {
			startNew := cur == nil || !inRecipient || (blank && hasAny(cur)) ||
				(n == "final-recipient" && cur.Address != "") ||
				(n == "original-recipient" && cur.OriginalAddress != "") ||
				(n == "action" && cur.Action != "")
			if startNew {
				rep.recipients = append(rep.recipients, Recipient{})
				cur = &rep.recipients[len(rep.recipients)-1]
				inRecipient = true
			}
			blank = false
			switch n {
			case "final-recipient":
				cur.Address = dsnAddress(v)
			case "original-recipient":
				cur.OriginalAddress = dsnAddress(v)
			case "x-actual-recipient":
				if cur.Address == "" {
					cur.Address = dsnAddress(v)
				}
			case "action":
				cur.Action = strings.ToLower(firstWord(stripComments(v)))
			case "status":
				cur.Status = findStatus(v)
			case "diagnostic-code":
				cur.Diagnostic = stripType(v)
			case "remote-mta":
				cur.RemoteMTA = strings.Trim(stripType(stripComments(v)), "[] ")
			case "last-attempt-date":
				if t, err := mail.ParseDate(stripComments(v)); err == nil {
					cur.LastAttempt = t
				}
			}
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
			if t, err := mail.ParseDate(stripComments(v)); err == nil {
				rep.arrival = t
			}
		}
	}
	for line := range strings.SplitSeq(body, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			apply()
			blank = true
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && name != "" {
			val += " " + strings.TrimSpace(line)
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !isFieldName(line[:colon]) {
			continue
		}
		apply()
		name, val = line[:colon], line[colon+1:]
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

// stripComments removes RFC 5322 comments "(...)".
func stripComments(v string) string {
	if strings.IndexByte(v, '(') < 0 {
		return v
	}
	var sb strings.Builder
	depth := 0
	for _, r := range v {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			sb.WriteRune(r)
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

// dsnAddress extracts the address of an address field (RFC 3464 §2.3.1-2),
// "rfc822; user@example.org" or RFC 6533's "utf-8; user@例え.jp", with its
// angle brackets, quotes and comments removed and unitext escapes (\x{..})
// decoded.
func dsnAddress(v string) string {
	v = stripType(stripComments(v))
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i+1 : i+j]
		}
	}
	v = strings.Trim(v, " \t\"'<>")
	if strings.Contains(v, `\x{`) {
		v = decodeUnitext(v)
	}
	if strings.ContainsAny(v, " \t") {
		// "|/usr/bin/prog user@example.org /home/user": the token that is
		// an address.
		fields := strings.Fields(v)
		v = fields[0]
		for _, f := range fields {
			if strings.Contains(f, "@") && !strings.ContainsAny(f, "|/") {
				v = strings.Trim(f, "<>,;\"'")
				break
			}
		}
	}
	return v
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
