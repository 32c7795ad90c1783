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
