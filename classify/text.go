package classify

import (
	"strings"
)

// Reading free-text bounces. Non-standard MTAs explain a failure in prose
// (Exim, qmail, older Sendmail, Exchange 2003, webmail providers), and even
// standard DSNs often say more in their text part than in their fields. The
// reading here is structural rather than per vendor: find the notice (the
// text before the returned message), the failed addresses in it, the lines
// that carry reply codes or known reasons, and tie each line to the nearest
// address before it.

// addrSpan is an address found in a text, with where it was found.
type addrSpan struct {
	addr       string
	line       int
	start, end int // byte offsets in the line
}

// originalMarker reports whether a line introduces the returned original
// message in a free-text bounce.
func originalMarker(line string) bool {
	l := strings.TrimLeft(strings.TrimSpace(line), "> \t")
	if l == "" {
		return false
	}
	switch {
	case containsFold(l, "this is a copy of the message"),
		containsFold(l, "below this line is a copy of the message"),
		containsFold(l, "enclosed is a copy of the message"),
		hasPrefixFold(l, "content-type: message/rfc822"),
		hasPrefixFold(l, "content-type: text/rfc822-headers"):
		return true
	}
	if l[0] != '-' && l[0] != '=' && l[0] != '*' && l[0] != '_' {
		return false
	}
	if !containsFold(l, "message") && !containsFold(l, "header") && !containsFold(l, "mail") {
		return false
	}
	for _, w := range []string{"original", "copy of", "returned", "follow", "below", "enclosed",
		"unsent", "attached", "undelivered message", "rejected message", "headers of"} {
		if containsFold(l, w) {
			return true
		}
	}
	return false
}

// headerNames are fields that start a quoted header block.
var headerNames = []string{
	"return-path:", "received:", "message-id:", "date:", "from:", "to:", "subject:",
	"mime-version:", "content-type:", "x-mailer:", "reply-to:", "delivered-to:",
	"dkim-signature:", "list-id:", "list-unsubscribe:", "sender:", "cc:",
}

func isHeaderLine(line string) bool {
	for _, h := range headerNames {
		if hasPrefixFold(line, h) {
			return true
		}
	}
	return false
}

// splitNotice cuts text where the returned original starts. It returns the
// notice and the quoted original (or "").
func splitNotice(text string) (notice, quoted string) {
	lines := strings.SplitAfter(text, "\n")
	pos := 0
	for i, line := range lines {
		if originalMarker(line) {
			return text[:pos], text[pos+len(line):]
		}
		if quotedHeaderStart(lines, i) {
			return text[:pos], text[pos:]
		}
		pos += len(line)
	}
	return text, ""
}

// quotedHeaderStart reports whether lines[i] starts a header block quoted
// without a marker: Received or Return-Path followed by another field.
func quotedHeaderStart(lines []string, i int) bool {
	l := lines[i]
	if !hasPrefixFold(l, "received:") && !hasPrefixFold(l, "return-path:") {
		return false
	}
	for j := i + 1; j < len(lines) && j < i+8; j++ {
		if strings.HasPrefix(lines[j], " ") || strings.HasPrefix(lines[j], "\t") {
			continue
		}
		return isHeaderLine(lines[j])
	}
	return false
}

// commandIn finds the SMTP command a failure answered, from the words MTAs
// use for it.
func commandIn(s string) string {
	var arr [512]byte
	return commandInNorm(appendNorm(arr[:0], s), s)
}

// commandInNorm is commandIn given s normalized as well.
func commandInNorm(norm []byte, s string) string {
	if c, _ := match(commandWords, norm); c != nil {
		return string(c.category)
	}
	return transcriptCommand(s)
}

// commandWords maps the words MTAs use for the failing command to it; the
// "category" of each rule is the command's name.
var commandWords = newMatcher([]phraseRule{
	{"RCPT", []string{"after rcpt command", "for rcpt command", "in reply to rcpt to", "after rcpt to",
		"does not like recipient", "did not like our rcpt to", "rcpt to:<", "[rcpt_to]", "most progress was rcpt to"}},
	{"DATA", []string{"after data command", "for text command", "for data command", "in reply to end of data",
		"in reply to data", "in reply to the data", "after end of data", "after data", "after pipelined",
		"failed after i sent the message", "did not like our final data"}},
	{"MAIL", []string{"after mail command", "in reply to mail from", "after mail from", "but sender was rejected"}},
	{"HELO", []string{"in reply to ehlo", "in reply to helo", "after ehlo", "after helo", "but my name was rejected"}},
	{"CONN", []string{"after initial connection", "refused to talk to me"}},
})

// transcriptCommand reads a Sendmail-style session transcript (">>> DATA"
// followed by "<<< 550 ..."): the command whose reply was the first failure.
func transcriptCommand(s string) string {
	cmd := ""
	for line := range strings.SplitSeq(s, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, ">>> ") {
			w := strings.ToUpper(firstWord(t[4:]))
			switch {
			case strings.HasPrefix(w, "RCPT"):
				cmd = "RCPT"
			case strings.HasPrefix(w, "MAIL"):
				cmd = "MAIL"
			case w == "DATA" || w == ".":
				cmd = "DATA"
			case w == "EHLO" || w == "HELO":
				cmd = "HELO"
			default:
				cmd = ""
			}
			continue
		}
		if strings.HasPrefix(t, "<<< ") && cmd != "" {
			rest := strings.TrimSpace(t[4:])
			if len(rest) > 0 && (rest[0] == '4' || rest[0] == '5') {
				return cmd
			}
		}
	}
	return ""
}

// textRecipient is a recipient found in a notice, with the lines that
// explain its failure.
type textRecipient struct {
	addr      string
	lines     []string
	explained bool   // some line says why
	segment   string // the notice from the recipient's first mention to the next's
}

// domainOwner returns the index of the one address (lower case) whose
// domain stands in line as a word of its own, ignoring case, or -1: transcript lines name the host, not
// the recipient ("550 example.org (smtp)... 550 Host unknown").
func domainOwner(line string, addrs []string) int {
	owner := -1
	for i, a := range addrs {
		at := strings.LastIndexByte(a, '@')
		if at < 0 {
			continue
		}
		dom := a[at+1:]
		if dom == "" {
			continue // "user@": no domain to look for (and none to loop on)
		}
		for off := 0; ; {
			j := indexFold(line[off:], dom)
			if j < 0 {
				break
			}
			j += off
			e := j + len(dom)
			if (j == 0 || !isDomainChar(line[j-1]) && line[j-1] != '@') && (e == len(line) || !isDomainChar(line[e]) || line[e] == '.' && (e+1 == len(line) || line[e+1] == ' ')) {
				if owner >= 0 && owner != i {
					return -1
				}
				owner = i
				break
			}
			off = e
		}
	}
	return owner
}

// noiseAddress reports whether an address in a notice is not a failed
// recipient: the bounce's own parties, the returned message's sender, or a
// role address of the reporting system.
func noiseAddress(addr string, exclude map[string]bool) bool {
	l := strings.ToLower(addr)
	if exclude[l] {
		return true
	}
	local := l
	if at := strings.LastIndexByte(l, '@'); at >= 0 {
		local = l[:at]
	}
	switch local {
	case "mailer-daemon", "postmaster", "mailer_daemon", "maildaemon", "mail-daemon", "noreply", "no-reply",
		"abuse", "root", "daemon", "double-bounce", "bounce", "bounces":
		return true
	}
	return false
}

// recipientLine reports whether the address s stands where MTAs write a
// failed recipient: first on its line (perhaps in angle brackets or after
// a list bullet), alone or followed by a colon, a comma or a comment.
func recipientLine(line string, s addrSpan) bool {
	pre := strings.TrimLeft(line[:s.start], " \t*-•>")
	pre = skipCodes(pre)
	pre = strings.TrimSuffix(pre, "<")
	pre = strings.TrimSuffix(pre, "\"")
	pre = strings.TrimSuffix(pre, "'")
	if pre != "" {
		l := strings.ToLower(pre)
		if !strings.HasSuffix(l, "rcpt to:") && !strings.HasSuffix(l, "recipient:") &&
			!strings.HasSuffix(l, "delivered to:") && !strings.HasSuffix(l, "address:") {
			return false
		}
	}
	post := strings.TrimLeft(line[s.end:], ">\"'")
	post = strings.TrimLeft(post, " \t")
	if pre == "" && post != "" && isErrorLine(post) {
		return true // "user@example.org Invalid Address, ERROR_CODE :550"
	}
	return post == "" || post[0] == ':' || post[0] == '(' || post[0] == ',' ||
		post[0] == '.' && (len(strings.TrimSpace(post)) == 1 || strings.HasPrefix(post, "..."))
}

// skipCodes removes a leading reply code and enhanced status code, as in
// Sendmail's "550 5.1.1 <user@example.org>... User unknown".
func skipCodes(s string) string {
	t := s
	if len(t) >= 4 && (t[0] == '4' || t[0] == '5') && isDigit(t[1]) && isDigit(t[2]) && (t[3] == ' ' || t[3] == '-') {
		t = strings.TrimLeft(t[4:], " ")
		if st := findStatus(t); st != "" && strings.HasPrefix(t, st) {
			t = strings.TrimLeft(t[len(st):], " ")
		}
	}
	return t
}

// isErrorLine reports whether a line of a notice says something about a
// failure: a reply code, a status code, or a known phrase.
func isErrorLine(line string) bool {
	if findStatus(line) != "" || findReplyCode(line) != 0 {
		return true
	}
	var arr [256]byte
	return matchAny(rules, appendNorm(arr[:0], line))
}

// boilerplate reports lines every bounce of a kind carries, which explain
// nothing about a particular failure.
func boilerplate(line string) bool {
	var arr [256]byte
	return matchAny(boilerMatcher, appendNorm(arr[:0], line))
}

var boilerMatcher = newMatcher([]phraseRule{{"", boilerplates}})

var boilerplates = []string{
	"this message was created automatically", "could not be delivered to one or more",
	"the following address(es) failed", "this is a permanent error", "i'm afraid i wasn't able",
	"this is the qmail-send program", "sorry it didn't work out", "the original message was received",
	"----- the following addresses had", "----- transcript of session follows", "this is the mail system at",
	"i'm sorry to have to inform you", "for further assistance", "if you do so, please include",
	"you can delete your own text", "the mail system", "delivery has failed to these recipients",
	"a message that you sent has not yet been delivered", "this is a warning message only",
	"please contact your system administrator", "your message did not reach some or all",
}

// maxAddresses bounds the addresses read from one notice.
const maxAddresses = 256

// noticeRecipients finds the failed recipients of a free-text notice and
// the lines that explain each. failed lists addresses the headers name
// (X-Failed-Recipients), which win when present; exclude lists addresses
// that are not recipients (lower case).
func noticeRecipients(notice string, failed []string, exclude map[string]bool) []textRecipient {
	lines := strings.Split(notice, "\n")
	// Which lines explain a failure, worked out once.
	var nz normalizer
	errLine := make([]bool, len(lines))
	plate := make([]bool, len(lines))
	for i, line := range lines {
		t := strings.TrimSpace(line)
		if t == "" {
			plate[i] = true
			continue
		}
		n := nz.norm(t)
		plate[i] = matchAny(boilerMatcher, n)
		errLine[i] = !plate[i] && (findStatus(t) != "" || findReplyCode(t) != 0 || matchAny(rules, n))
	}
	var spans []addrSpan
	for i, line := range lines {
		l := strings.TrimSpace(line)
		if hasPrefixFold(l, "message-id:") || hasPrefixFold(l, "references:") || hasPrefixFold(l, "in-reply-to:") ||
			hasPrefixFold(l, "from:") || hasPrefixFold(l, "return-path:") || hasPrefixFold(l, "reply-to:") ||
			hasPrefixFold(l, "sender:") {
			continue
		}
		if strings.IndexByte(l, '@') < 0 {
			continue
		}
		if len(spans) >= maxAddresses {
			break
		}
		before := len(spans)
		spans = scanAddresses(line, i, spans)
		// Drop addresses that are the envelope sender in the transcript.
		kept := spans[:before]
		for _, s := range spans[before:] {
			pre := line[:s.start]
			if hasSuffixFold(strings.TrimRight(pre, "<\"' "), "mail from:") || hasSuffixFold(strings.TrimRight(pre, "<\"' "), "envelope-from") ||
				hasSuffixFold(strings.TrimRight(pre, "<\"' ("), "from") && !containsFold(pre, "rcpt") {
				continue
			}
			if containsFold(pre, "http://") || containsFold(pre, "https://") || containsFold(pre, "mailto:") && !hasSuffixFold(pre, "mailto:") {
				continue
			}
			kept = append(kept, s)
		}
		spans = kept
	}

	// The order in which addresses first appear, and their positions.
	// Strong ones stand where MTAs put failed recipients: at the start of a
	// line, alone or followed by a colon or a comment.
	type occ struct {
		addr   string
		lines  []int
		strong bool
	}
	var order []*occ
	byAddr := map[string]*occ{}
	for _, s := range spans {
		k := strings.ToLower(s.addr)
		if noiseAddress(k, nil) {
			continue
		}
		o := byAddr[k]
		if o == nil {
			o = &occ{addr: s.addr}
			byAddr[k] = o
			order = append(order, o)
		}
		if len(o.lines) == 0 || o.lines[len(o.lines)-1] != s.line {
			o.lines = append(o.lines, s.line)
		}
		if recipientLine(lines[s.line], s) {
			o.strong = true
		}
	}
	var strong, weak []*occ
	for _, o := range order {
		if o.strong {
			strong = append(strong, o)
		} else if !exclude[strings.ToLower(o.addr)] {
			weak = append(weak, o)
		}
	}
	// A strong address that is also the bounce's own party is dropped only
	// when another strong one remains.
	var strongKept []*occ
	for _, o := range strong {
		if !exclude[strings.ToLower(o.addr)] {
			strongKept = append(strongKept, o)
		}
	}
	if len(strongKept) > 0 {
		strong = strongKept
	}
	var valid []string
	for _, f := range failed {
		if strings.Contains(f, "@") && !strings.ContainsAny(f, "|/ ") {
			valid = append(valid, f)
		}
	}
	switch {
	case len(valid) > 0:
		found := 0
		for _, f := range valid {
			if byAddr[strings.ToLower(f)] != nil {
				found++
			}
		}
		if found < len(valid) && len(strong) == len(valid) {
			order = strong // the text names them otherwise; believe the text
			break
		}
		// The headers' list is authoritative; match it to the text by
		// address, or by local part (Exim writes bare local parts for
		// local deliveries).
		var chosen []*occ
		for _, f := range valid {
			k := strings.ToLower(f)
			o := byAddr[k]
			if o == nil {
				local := k
				if at := strings.LastIndexByte(k, '@'); at >= 0 {
					local = k[:at]
				}
				o = &occ{}
				for i, line := range lines {
					t := strings.ToLower(strings.TrimSpace(line))
					if t == local || strings.HasPrefix(t, local+" ") || strings.HasPrefix(t, local+":") || strings.HasPrefix(t, "<"+local+">") {
						o.lines = []int{i}
						break
					}
				}
			}
			chosen = append(chosen, &occ{addr: f, lines: o.lines})
		}
		order = chosen
	case len(strong) > 0:
		order = strong
	default:
		order = weak
	}
	if len(order) == 0 {
		return nil
	}

	// Each recipient's block: its line and the lines that follow it up to
	// a blank line or the next recipient (Exim, qmail, Exchange indent the
	// reason under the address). Then every other error line, tied to the
	// recipient named on it, else to the one whose domain it names, else
	// to the nearest recipient named before it.
	firstLine := make([]int, len(order))
	for i, o := range order {
		firstLine[i] = -1
		if len(o.lines) > 0 {
			firstLine[i] = o.lines[0]
		}
	}
	nextStart := func(li int) int {
		n := len(lines)
		for _, fl := range firstLine {
			if fl > li && fl < n {
				n = fl
			}
		}
		return n
	}
	out := make([]textRecipient, len(order))
	all := make([]string, len(order)) // lower case, for matching
	for i, o := range order {
		out[i].addr = o.addr
		all[i] = strings.ToLower(o.addr)
	}
	inBlock := make([]bool, len(lines))
	for i := range order {
		fl := firstLine[i]
		if fl < 0 {
			continue
		}
		end := nextStart(fl)
		out[i].segment = strings.Join(lines[fl:end], "\n")
		first := strings.TrimSpace(lines[fl])
		indent := len(lines[fl]) - len(strings.TrimLeft(lines[fl], " \t"))
		// Lines after the address belong to it when indented under it, or
		// when the address line introduces them ("<user@example.org>:").
		open := strings.HasSuffix(first, ":") || firstAddress(first) != "" && len(first) <= len(firstAddress(first))+4
		for li := fl; li < end; li++ {
			t := strings.TrimSpace(lines[li])
			if t == "" {
				break
			}
			if li > fl {
				ind := len(lines[li]) - len(strings.TrimLeft(lines[li], " \t"))
				if ind <= indent && !open {
					break
				}
				if o := domainOwner(t, all); o >= 0 && o != i {
					break
				}
			}
			if plate[li] {
				continue
			}
			inBlock[li] = true
			out[i].lines = append(out[i].lines, t)
			out[i].explained = out[i].explained || errLine[li]
		}
	}
	// First the lines that name their recipient (or its domain), then the
	// rest by proximity, only for recipients no line named yet: a
	// recipient's own line outranks its neighbours'.
	var shared []string
	named := make([]bool, len(out))
	for i := range out {
		named[i] = out[i].explained
	}
	owners := make([]int, len(lines))
	for li, line := range lines {
		owners[li] = -2
		t := strings.TrimSpace(line)
		if inBlock[li] || !errLine[li] {
			continue
		}
		owner := -1
		for i, a := range all {
			if a != "" && containsFold(t, a) {
				owner = i
				break
			}
		}
		if owner < 0 {
			owner = domainOwner(t, all)
		}
		owners[li] = owner
		if owner >= 0 {
			named[owner] = true
		}
	}
	for li, line := range lines {
		owner := owners[li]
		if owner == -2 {
			continue
		}
		t := strings.TrimSpace(line)
		if owner < 0 {
			// Sendmail writes the detail first and the summary naming the
			// recipient right after it ("mail.local: unknown user: x" then
			// "554 <x@example.org>... Service unavailable").
			for j := li + 1; j < len(lines) && j <= li+3 && errLine[j]; j++ {
				if owners[j] >= 0 {
					owner = owners[j]
					break
				}
			}
		}
		if owner < 0 {
			best := -1
			for i, fl := range firstLine {
				if fl >= 0 && fl <= li && (best < 0 || fl > firstLine[best]) {
					best = i
				}
			}
			if best >= 0 && named[best] {
				continue
			}
			owner = best
		}
		if owner < 0 {
			shared = append(shared, t)
			continue
		}
		out[owner].lines = append(out[owner].lines, t)
		out[owner].explained = true
	}
	for i := range out {
		explained := out[i].explained
		if !explained {
			out[i].lines = append(out[i].lines, shared...)
		}
		if !explained && len(shared) == 0 && out[i].segment != "" {
			// Nothing said why: keep what the notice says after the
			// address, for people to read.
			for _, l := range strings.Split(out[i].segment, "\n")[1:] {
				if t := strings.TrimSpace(l); t != "" && !boilerplate(t) && len(out[i].lines) < 8 {
					out[i].lines = append(out[i].lines, t)
				}
			}
		}
	}
	return out
}
