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
		hasPrefixFold(l, "original message follows"), hasPrefixFold(l, "possibly truncated original message follows"),
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
	{"CONN", []string{"after initial connection", "refused to talk to me", "but greeting failed"}},
})

// transcriptCommand reads a Sendmail-style session transcript (">>> DATA"
// followed by "<<< 550 ..."): the command whose reply was the first failure.
// A failure reply with words right after "... while talking to host:",
// before any command, answered the greeting (CONN).
func transcriptCommand(s string) string {
	cmd, greeting := "", false
	for line := range strings.SplitSeq(s, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "... while talking to") {
			greeting = true
			continue
		}
		if strings.HasPrefix(t, ">>> ") {
			greeting = false
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
		if strings.HasPrefix(t, "<<< ") {
			rest := strings.TrimSpace(t[4:])
			failed := len(rest) > 0 && (rest[0] == '4' || rest[0] == '5')
			switch {
			case failed && greeting && len(rest) > 4:
				return "CONN"
			case failed && cmd != "":
				return cmd
			}
			greeting = false
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
	if pre != "" && hasAnySuffixFold(strings.TrimRight(pre, " \t"), deliveryTo) {
		return true // "Your message to <x@y> could not be delivered."
	}
	if pre != "" {
		if !hasSuffixFold(pre, "rcpt to:") && !hasSuffixFold(pre, "recipient:") &&
			!hasSuffixFold(pre, "delivered to:") && !hasSuffixFold(pre, "address:") {
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

// deliveryTo are the words a notice writes before the recipient its
// message could not reach.
var deliveryTo = []string{"your message to", "delivery to", "could not be delivered to",
	"could not deliver to", "unable to deliver to", "undeliverable to", "failed to deliver to"}

func hasAnySuffixFold(s string, suffixes []string) bool {
	for _, x := range suffixes {
		if hasSuffixFold(s, x) {
			return true
		}
	}
	return false
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

// maxLookBack bounds how far before an address its line is read for the
// words that say what it is, so that a line of many addresses costs
// linear time.
const maxLookBack = 256

// maxAddresses bounds the addresses read from one notice.
const maxAddresses = 256

// noticeRecipients finds the failed recipients of a free-text notice and
// the lines that explain each. failed lists addresses the headers name
// (X-Failed-Recipients), which win when present; exclude lists addresses
// that are not recipients (lower case).
func noticeRecipients(notice string, failed []string, exclude map[string]bool) []textRecipient {
	nl := readNoticeLines(notice)
	occs, byAddr := nl.occurrences(nl.addressSpans())
	order := nl.chooseRecipients(occs, byAddr, failed, exclude)
	if len(order) == 0 {
		return nil
	}
	out, firstLine, inBlock := nl.recipientBlocks(order)
	shared := nl.tieErrorLines(out, firstLine, inBlock)
	for i := range out {
		out[i].fillUnexplained(shared)
	}
	return out
}

// noticeLines is a notice cut into lines, with which lines explain a
// failure and which are boilerplate, worked out once.
type noticeLines struct {
	lines   []string
	errLine []bool // says why something failed: a code, a status or a known phrase
	plate   []bool // blank, or words every bounce of a kind carries
}

func readNoticeLines(notice string) *noticeLines {
	lines := strings.Split(notice, "\n")
	nl := &noticeLines{lines: lines, errLine: make([]bool, len(lines)), plate: make([]bool, len(lines))}
	var nz normalizer
	for i, line := range lines {
		t := strings.TrimSpace(line)
		if t == "" {
			nl.plate[i] = true
			continue
		}
		n := nz.norm(t)
		nl.plate[i] = matchAny(boilerMatcher, n)
		nl.errLine[i] = !nl.plate[i] && (findStatus(t) != "" || findReplyCode(t) != 0 || matchAny(rules, n))
	}
	return nl
}

// partyFields are header fields that, quoted in a notice, name the
// message's parties rather than a failed recipient.
var partyFields = []string{"message-id:", "references:", "in-reply-to:", "from:", "return-path:", "reply-to:", "sender:",
	"list-post:", "list-unsubscribe:", "list-help:", "list-owner:", "errors-to:"}

// addressSpans finds the addresses of the notice that may be failed
// recipients: not in a quoted party field, not the envelope sender of a
// transcript, not in a link.
func (nl *noticeLines) addressSpans() []addrSpan {
	var spans []addrSpan
	for i, line := range nl.lines {
		l := strings.TrimSpace(line)
		if strings.IndexByte(l, '@') < 0 || hasAnyPrefixFold(l, partyFields) {
			continue
		}
		if len(spans) >= maxAddresses {
			break
		}
		before := len(spans)
		spans = scanAddresses(line, i, spans)
		kept := spans[:before]
		for _, s := range spans[before:] {
			if !senderOrLink(line[:s.start]) {
				kept = append(kept, s)
			}
		}
		spans = kept
	}
	return spans
}

func hasAnyPrefixFold(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if hasPrefixFold(s, p) {
			return true
		}
	}
	return false
}

// senderOrLink reports whether the text before an address makes it the
// envelope sender ("MAIL FROM:<", "envelope-from") or part of a link.
func senderOrLink(pre string) bool {
	if len(pre) > maxLookBack {
		pre = pre[len(pre)-maxLookBack:]
	}
	p := strings.TrimRight(pre, "<\"' ")
	if hasSuffixFold(p, "mail from:") || hasSuffixFold(p, "envelope-from") ||
		hasSuffixFold(strings.TrimRight(pre, "<\"' ("), "from") && !containsFold(pre, "rcpt") {
		return true
	}
	if containsFold(pre, "http://") || containsFold(pre, "https://") ||
		containsFold(pre, "mailto:") && !hasSuffixFold(pre, "mailto:") {
		return true
	}
	return contactAddress(p)
}

// contactWords end the words before an address that the notice offers for
// help ("contact the list owner at ...", "write to ..."), which is no
// failed recipient.
var contactWords = []string{"contact", "contact us at", "write to", "ask", "send mail to", "send email to",
	"questions to", "owner at", "administrator at", "postmaster at", "helpdesk at", "support at", "us at",
	"please reply to", "reply to"}

func contactAddress(pre string) bool {
	pre = strings.TrimRight(pre, " \t:(")
	for _, w := range contactWords {
		if hasSuffixFold(pre, w) && (len(pre) == len(w) || !isAlnum(pre[len(pre)-len(w)-1])) {
			return true
		}
	}
	return false
}

// occ is an address of a notice: where it appears, and whether it stands
// where MTAs put failed recipients (strong): at the start of a line, alone
// or followed by a colon or a comment.
type occ struct {
	addr   string
	lines  []int
	strong bool
	cued   bool // named by a notice's own "your message to <x>"
	// replyOnly: every line naming it starts with a reply code: the
	// server's reply speaks of it.
	replyOnly bool
}

// occurrences groups the spans by address (ignoring case), in the order
// the addresses first appear, leaving out role addresses.
func (nl *noticeLines) occurrences(spans []addrSpan) ([]*occ, map[string]*occ) {
	var order []*occ
	byAddr := map[string]*occ{}
	for _, s := range spans {
		k := strings.ToLower(s.addr)
		if noiseAddress(k, nil) {
			continue
		}
		o := byAddr[k]
		if o == nil {
			o = &occ{addr: s.addr, replyOnly: true}
			byAddr[k] = o
			order = append(order, o)
		}
		line := nl.lines[s.line]
		o.cued = o.cued || hasAnySuffixFold(strings.TrimRight(strings.TrimSuffix(strings.TrimRight(line[:s.start], " \t"), "<"), " \t"), deliveryTo)
		o.replyOnly = o.replyOnly && replyLine(line)
		if len(o.lines) == 0 || o.lines[len(o.lines)-1] != s.line {
			o.lines = append(o.lines, s.line)
		}
		if recipientLine(nl.lines[s.line], s) && !nl.continuation(s.line) {
			o.strong = true
		}
	}
	return order, byAddr
}

// replyLine reports whether a line is a server's reply: it starts with a
// reply code.
func replyLine(line string) bool {
	t := strings.TrimLeft(line, " \t")
	return skipCodes(t) != t
}

// dropReplied leaves out of the recipients the addresses that only a
// server's reply names ("550 5.1.0 <s@example.com> sender rejected") when
// the notice itself names the recipient: a heading the reply stands under
// ("<x@y>:" then the reply) or "Your message to <x@y> could not be
// delivered". The reply speaks of whatever address it refused, which may
// be our sender's.
func (nl *noticeLines) dropReplied(strong []*occ) []*occ {
	cued := false
	for _, o := range strong {
		cued = cued || o.cued && !o.replyOnly
	}
	kept := strong[:0:0]
	for _, o := range strong {
		if o.replyOnly && !o.cued && (cued || nl.underHeading(o, strong)) {
			continue
		}
		kept = append(kept, o)
	}
	if len(kept) == 0 {
		return strong
	}
	return kept
}

// underHeading reports whether the first line naming o stands in a
// paragraph that begins with another recipient's own line.
func (nl *noticeLines) underHeading(o *occ, strong []*occ) bool {
	if len(o.lines) == 0 {
		return false
	}
	start := o.lines[0]
	for start > 0 && strings.TrimSpace(nl.lines[start-1]) != "" {
		start--
	}
	if start == o.lines[0] {
		return false
	}
	for _, h := range strong {
		if h != o && !h.replyOnly && len(h.lines) > 0 && h.lines[0] == start {
			return true
		}
	}
	return false
}

// continuation reports whether line li continues the paragraph above it:
// it is indented deeper than the line its paragraph began with, as Postfix
// folds a long reply ("<x@y>: host ... said: 550 5.1.0\n    <s@z> sender
// rejected"). An address there is inside that reply, not a recipient's
// own line. Exim's list (recipients indented two spaces, reasons four)
// keeps its recipients: each is as shallow as its paragraph's first line.
func (nl *noticeLines) continuation(li int) bool {
	depth := indent(nl.lines[li])
	if depth == 0 {
		return false
	}
	start := li
	for start > 0 && strings.TrimSpace(nl.lines[start-1]) != "" {
		start--
	}
	return start < li && indent(nl.lines[start]) < depth
}

func indent(line string) int {
	return len(line) - len(strings.TrimLeft(line, " \t"))
}

// chooseRecipients decides which addresses failed: the headers' list when
// there is one, else the strong addresses, else the weak ones. A strong
// address that is the message's own party (exclude) counts only when no
// other strong one remains and no line calls it the sender: a reply that
// names the envelope sender ("553 <bounces@...>: Sender address rejected")
// stands where a recipient would. A weak party never counts.
func (nl *noticeLines) chooseRecipients(occs []*occ, byAddr map[string]*occ, failed []string, exclude map[string]bool) []*occ {
	var strong, parties, weak []*occ
	for _, o := range occs {
		ex := exclude[strings.ToLower(o.addr)]
		switch {
		case o.strong && !ex:
			strong = append(strong, o)
		case o.strong && !nl.namedSender(o):
			parties = append(parties, o)
		case !ex:
			weak = append(weak, o)
		}
	}
	if len(strong) == 0 {
		strong = parties
	}
	strong = nl.dropReplied(strong)
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
			return strong // the text names them otherwise; believe the text
		}
		return nl.headerRecipients(valid, byAddr)
	case len(strong) > 0:
		return strong
	}
	return weak
}

// namedSender reports whether a line naming o calls it the sender.
func (nl *noticeLines) namedSender(o *occ) bool {
	for _, li := range o.lines {
		if containsFold(nl.lines[li], "sender") {
			return true
		}
	}
	return false
}

// headerRecipients matches the headers' list of failed recipients, which
// is authoritative, to the text: by address, or by local part (Exim writes
// bare local parts for local deliveries).
func (nl *noticeLines) headerRecipients(valid []string, byAddr map[string]*occ) []*occ {
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
			for i, line := range nl.lines {
				t := strings.ToLower(strings.TrimSpace(line))
				if t == local || strings.HasPrefix(t, local+" ") || strings.HasPrefix(t, local+":") || strings.HasPrefix(t, "<"+local+">") {
					o.lines = []int{i}
					break
				}
			}
		}
		chosen = append(chosen, &occ{addr: f, lines: o.lines})
	}
	return chosen
}

// recipientBlocks gives each recipient its block: its line and the lines
// that follow it up to a blank line or the next recipient (Exim, qmail,
// Exchange indent the reason under the address). It returns the
// recipients, the line each is first named on (-1 for none), and which
// lines are in some block.
func (nl *noticeLines) recipientBlocks(order []*occ) ([]textRecipient, []int, []bool) {
	lines := nl.lines
	firstLine := make([]int, len(order))
	out := make([]textRecipient, len(order))
	all := make([]string, len(order)) // lower case, for matching
	for i, o := range order {
		firstLine[i] = -1
		if len(o.lines) > 0 {
			firstLine[i] = o.lines[0]
		}
		out[i].addr = o.addr
		all[i] = strings.ToLower(o.addr)
	}
	inBlock := make([]bool, len(lines))
	for i := range order {
		fl := firstLine[i]
		if fl < 0 {
			continue
		}
		end := nextStart(firstLine, fl, len(lines))
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
			if nl.plate[li] {
				continue
			}
			inBlock[li] = true
			out[i].lines = append(out[i].lines, t)
			out[i].explained = out[i].explained || nl.errLine[li]
		}
	}
	return out, firstLine, inBlock
}

// nextStart returns the first line after li on which a recipient is first
// named, or n.
func nextStart(firstLine []int, li, n int) int {
	next := n
	for _, fl := range firstLine {
		if fl > li && fl < next {
			next = fl
		}
	}
	return next
}

// tieErrorLines gives the error lines outside every block to recipients:
// first the lines that name their recipient (or its domain), then the rest
// by proximity, only to recipients no line named yet, since a recipient's
// own line outranks its neighbours'. It returns the lines that belong to
// nobody.
func (nl *noticeLines) tieErrorLines(out []textRecipient, firstLine []int, inBlock []bool) []string {
	all := make([]string, len(out))
	named := make([]bool, len(out))
	for i := range out {
		all[i] = strings.ToLower(out[i].addr)
		named[i] = out[i].explained
	}
	owners := make([]int, len(nl.lines))
	for li, line := range nl.lines {
		owners[li] = -2
		if inBlock[li] || !nl.errLine[li] {
			continue
		}
		owners[li] = namedOwner(strings.TrimSpace(line), all)
		if owners[li] >= 0 {
			named[owners[li]] = true
		}
	}
	var shared []string
	for li, line := range nl.lines {
		owner := owners[li]
		if owner == -2 {
			continue
		}
		if owner < 0 {
			owner = nl.summaryOwner(owners, li)
		}
		if owner < 0 {
			best := nearestBefore(firstLine, li)
			if best >= 0 && named[best] {
				continue
			}
			owner = best
		}
		t := strings.TrimSpace(line)
		if owner < 0 {
			shared = append(shared, t)
			continue
		}
		out[owner].lines = append(out[owner].lines, t)
		out[owner].explained = true
	}
	return shared
}

// namedOwner returns the recipient a line names, by address or else by
// domain, or -1.
func namedOwner(t string, all []string) int {
	for i, a := range all {
		if a != "" && containsFold(t, a) {
			return i
		}
	}
	return domainOwner(t, all)
}

// summaryOwner finds the owner of an error line from the summary that
// follows it: Sendmail writes the detail first and the summary naming the
// recipient right after it ("mail.local: unknown user: x" then "554
// <x@example.org>... Service unavailable").
func (nl *noticeLines) summaryOwner(owners []int, li int) int {
	for j := li + 1; j < len(nl.lines) && j <= li+3 && nl.errLine[j]; j++ {
		if owners[j] >= 0 {
			return owners[j]
		}
	}
	return -1
}

// nearestBefore returns the recipient first named nearest before line li,
// or -1.
func nearestBefore(firstLine []int, li int) int {
	best := -1
	for i, fl := range firstLine {
		if fl >= 0 && fl <= li && (best < 0 || fl > firstLine[best]) {
			best = i
		}
	}
	return best
}

// fillUnexplained gives a recipient that no line explains the lines that
// belong to nobody, or, when there are none, what the notice says after
// its address, for people to read.
func (tr *textRecipient) fillUnexplained(shared []string) {
	if tr.explained {
		return
	}
	tr.lines = append(tr.lines, shared...)
	if len(shared) > 0 || tr.segment == "" {
		return
	}
	for _, l := range strings.Split(tr.segment, "\n")[1:] {
		if t := strings.TrimSpace(l); t != "" && !boilerplate(t) && len(tr.lines) < 8 {
			tr.lines = append(tr.lines, t)
		}
	}
}
