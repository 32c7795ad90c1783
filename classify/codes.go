package classify

import "strings"

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// findStatus returns the first enhanced status code (RFC 3463 §2:
// class "." subject "." detail, class 2, 4 or 5, up to three digits each) in
// s, in any of the forms MTAs write it: "5.1.1", "#5.1.1", "(#5.7.1)",
// "553-5.1.1". A longer dotted number (an IP address, a version) is not one.
func findStatus(s string) string {
	st, _ := findStatusAt(s, 0)
	return st
}

// findStatusAt is findStatus from offset from; it also returns where the
// code starts, or -1.
func findStatusAt(s string, from int) (string, int) {
	for i := from; i+5 <= len(s); i++ {
		c := s[i]
		if c != '2' && c != '4' && c != '5' {
			continue
		}
		if s[i+1] != '.' {
			continue
		}
		if i > 0 {
			p := s[i-1]
			if isAlnum(p) || p == '.' || p == '_' || p == '/' || p == '=' || p == '+' {
				continue
			}
		}
		j := i + 2
		k := j
		for k < len(s) && isDigit(s[k]) && k-j < 4 {
			k++
		}
		if k == j || k-j > 3 || k >= len(s) || s[k] != '.' {
			continue
		}
		m := k + 1
		n := m
		for n < len(s) && isDigit(s[n]) && n-m < 4 {
			n++
		}
		if n == m || n-m > 3 {
			continue
		}
		if n < len(s) {
			q := s[n]
			if isAlnum(q) || q == '_' || q == '@' || q == '-' && n+1 < len(s) && isDigit(s[n+1]) {
				continue
			}
			if q == '.' && n+1 < len(s) && isDigit(s[n+1]) {
				continue // 5.1.1.2 is not a status
			}
		}
		return s[i:n], i
	}
	return "", -1
}

// findReplyCode returns the SMTP reply code (RFC 5321 §4.2) that s reports,
// or 0. A code counts when it stands where servers put one: at the start,
// after "said:", a colon, a quote or "RSP^", and is followed by a space, a
// hyphen (multi-line replies) or the end, not by more digits or a dot.
// Codes followed by an enhanced status code are preferred.
func findReplyCode(s string) int {
	if c := innerReplyCode(s); c != 0 {
		return c
	}
	best, bestStrong := 0, false
	for i := 0; i+3 <= len(s); i++ {
		c := s[i]
		if c != '4' && c != '5' && c != '2' {
			continue
		}
		if !isDigit(s[i+1]) || !isDigit(s[i+2]) || s[i+1] > '5' {
			continue
		}
		if i > 0 {
			p := s[i-1]
			if isAlnum(p) || p == '.' || p == '-' || p == '#' || p == '/' || p == '_' || p == ',' || p == '+' || p == '@' || p == '$' || p == '%' || p == '=' {
				continue
			}
		}
		n := i + 3
		strong := false
		if n < len(s) {
			q := s[n]
			switch {
			case q == ' ' || q == '-' || q == '\t':
				if st, at := findStatusAt(s, n+1); at >= 0 && at <= n+2 && st[0] == c {
					strong = true
				}
				if q == '-' && n+1 < len(s) && isDigit(s[n+1]) && !strong {
					continue // a range or a date, not a code
				}
			case q == ')' || q == '"' || q == '\'' || q == ']' || q == ':' || q == ';':
			case q == '.' || q == ',':
				if n+1 < len(s) && isDigit(s[n+1]) {
					continue
				}
			default:
				continue
			}
		}
		if c == '2' && !strong {
			continue // a 2xx is a failure code only in a delivered DSN
		}
		code := int(c-'0')*100 + int(s[i+1]-'0')*10 + int(s[i+2]-'0')
		if strong && !bestStrong {
			return code
		}
		if best == 0 {
			best = code
			bestStrong = strong
			if i < 4 || leadsCode(s[:i]) {
				return code
			}
		}
	}
	return best
}

// leadsCode reports whether the text before a number is one after which MTAs
// write a reply code ("... said:", "RSP^", "Server error: '").
func leadsCode(before string) bool {
	b := strings.TrimRight(before, " \t\"'(<[")
	if strings.HasSuffix(b, ":") || strings.HasSuffix(b, "^") || strings.HasSuffix(b, ";") {
		return true
	}
	l := strings.ToLower(b)
	return strings.HasSuffix(l, "said") || strings.HasSuffix(l, "replied") || strings.HasSuffix(l, "response") || strings.HasSuffix(l, "error")
}

// quotedStatus returns the status code a diagnostic text reports: the first
// one written right after a reply code ("550 5.2.2", "550-'5.2.2"), which
// is the remote server's, else the first specific one, else the first.
// Reporting MTAs often put a status of their own ("5.1.0 - Unknown address
// error") in front of the remote's reply.
func quotedStatus(s string) string {
	first, specific := "", ""
	for from := 0; ; {
		st, at := findStatusAt(s, from)
		if at < 0 {
			break
		}
		if first == "" {
			first = st
		}
		if specific == "" && !strings.HasSuffix(st, ".0.0") {
			specific = st
		}
		if afterReplyCode(s[:at]) {
			return st
		}
		from = at + len(st)
	}
	if specific != "" {
		return specific
	}
	return first
}

// afterReplyCode reports whether before ends with a reply code and the
// separator MTAs put between it and a status code.
func afterReplyCode(before string) bool {
	b := strings.TrimRight(before, " -'\"#")
	if len(b) < 3 {
		return false
	}
	c := b[len(b)-3:]
	if !(c[0] == '4' || c[0] == '5' || c[0] == '2') || !isDigit(c[1]) || !isDigit(c[2]) {
		return false
	}
	return len(b) == 3 || !isAlnum(b[len(b)-4]) && b[len(b)-4] != '.'
}

// innerReplyCode reads Sendmail's "554 <user@example.org>... 550 Host
// unknown": the code after the "<address>... " is the remote's reply, the
// one in front Sendmail's own summary of it.
func innerReplyCode(s string) int {
	t := strings.TrimSpace(s)
	if len(t) < 8 || !(t[0] == '4' || t[0] == '5') || !isDigit(t[1]) || !isDigit(t[2]) || t[3] != ' ' {
		return 0
	}
	i := strings.Index(t, "... ")
	if i < 0 || i > 300 {
		return 0
	}
	r := t[i+4:]
	if len(r) >= 4 && (r[0] == '4' || r[0] == '5') && isDigit(r[1]) && isDigit(r[2]) && (r[3] == ' ' || r[3] == '-') {
		return int(r[0]-'0')*100 + int(r[1]-'0')*10 + int(r[2]-'0')
	}
	return 0
}
