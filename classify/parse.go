package classify

import (
	"bytes"
	"io"
	"mime"
	"net/textproto"
	"strings"
	"unicode/utf8"
)

// Classify classifies one raw message (RFC 5322, with LF, CRLF or CR-only
// line ends). It fails only for input it cannot read at all or that breaks
// the limits of Options; anything readable gets a Report, at worst one of
// kind not_bounce.
func (c *Classifier) Classify(raw []byte) (*Report, error) {
	if len(raw) > c.opts.MaxSize {
		return nil, parseErr(ErrTooLarge, "%d bytes, limit %d", len(raw), c.opts.MaxSize)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, parseErr(ErrMalformed, "empty message")
	}
	raw = fixLineEnds(raw)
	if headerTooLarge(raw, c.opts.MaxHeaderSize) {
		return nil, parseErr(ErrHeaderTooLarge, "no blank line within the first %d bytes", c.opts.MaxHeaderSize)
	}
	if n := bytes.Count(raw, []byte("\n--")); n > 4*c.opts.MaxParts+16 {
		return nil, parseErr(ErrTooManyParts, "%d boundary-like lines", n)
	}
	tree, err := c.readTree(raw)
	if err != nil {
		return nil, err
	}
	if len(tree.header) == 0 {
		return nil, parseErr(ErrMalformed, "no header fields")
	}
	m := &message{c: c, tree: tree, h: tree.header}
	rep := m.classify()
	if m.err == nil && len(rep.Recipients) > c.opts.MaxRecipients {
		m.err = parseErr(ErrTooManyRecipients, "%d recipients, limit %d", len(rep.Recipients), c.opts.MaxRecipients)
	}
	if m.err != nil {
		return nil, m.err
	}
	return rep, nil
}

// headerTooLarge reports whether the header block of raw (LF or CRLF line
// ends) is longer than limit bytes: no blank line ends it within them.
func headerTooLarge(raw []byte, limit int) bool {
	if len(raw) <= limit || raw[0] == '\n' || bytes.HasPrefix(raw, []byte("\r\n")) {
		return false
	}
	win := raw[:limit+1]
	return !bytes.Contains(win, []byte("\n\n")) && !bytes.Contains(win, []byte("\n\r\n"))
}

// fixLineEnds turns CR-only line ends (old Macintosh mail) into LF when
// they are most of the line ends, as when a server added a CRLF or two to
// such a message, and a run of CRs before an LF (CRLF converted again by
// a text-mode copy: CR CR LF) into one CR; CRLF and LF are left to the
// MIME reader.
func fixLineEnds(raw []byte) []byte {
	cr := bytes.Count(raw, []byte("\r"))
	if cr == 0 {
		return raw
	}
	if bytes.Contains(raw, []byte("\r\r\n")) {
		raw = collapseCRRuns(raw)
		cr = bytes.Count(raw, []byte("\r"))
	}
	lf := bytes.Count(raw, []byte("\n"))
	crlf := bytes.Count(raw, []byte("\r\n"))
	if bare := cr - crlf; bare == 0 || bare < lf {
		return raw
	}
	out := make([]byte, len(raw))
	for i, c := range raw {
		if c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			c = '\n'
		}
		out[i] = c
	}
	return out
}

// collapseCRRuns returns raw with every run of CRs that ends in an LF cut
// to one CR.
func collapseCRRuns(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		if raw[i] != '\r' {
			out = append(out, raw[i])
			i++
			continue
		}
		j := i
		for j < len(raw) && raw[j] == '\r' {
			j++
		}
		if j < len(raw) && raw[j] == '\n' {
			out = append(out, '\r')
		} else {
			out = append(out, raw[i:j]...)
		}
		i = j
	}
	return out
}

// message is one message being classified.
type message struct {
	c    *Classifier
	tree *mimeTree
	h    textproto.MIMEHeader

	dsn      *part // message/delivery-status or message/global-delivery-status
	arf      *part // message/feedback-report
	original *part // message/rfc822 or message/global
	headers  *part // text/rfc822-headers or message/global-headers
	texts    []*part
	htmls    []*part
	notice   string // the bounce's own words, without the returned original
	quoted   string // the original as quoted in the text, if it was

	subjectText string
	subjectDone bool
	noticeNorm  []byte
	origHeader  textproto.MIMEHeader // the returned original's fields that are read
	cmd         string
	cmdDone     bool

	err error // a limit the message broke while it was read
}

// normNotice returns the notice normalized (lower case, folded white
// space), computed once.
func (m *message) normNotice() []byte {
	if m.noticeNorm == nil {
		m.noticeNorm = appendNorm(make([]byte, 0, len(m.notice)), m.notice)
	}
	return m.noticeNorm
}

// noticeCommand is commandIn(m.notice), computed once.
func (m *message) noticeCommand() string {
	if !m.cmdDone {
		m.cmd = commandInNorm(m.normNotice(), m.notice)
		m.cmdDone = true
	}
	return m.cmd
}

// subject returns the bounce's decoded Subject, decoded once.
func (m *message) subject() string {
	if !m.subjectDone {
		m.subjectText = decodeHeader(m.h.Get("Subject"))
		m.subjectDone = true
	}
	return m.subjectText
}

// decodeHeader decodes the RFC 2047 encoded-words of a header field value
// (Subject, From, ...) in any charset charsetEncoding knows. A word in a
// charset nobody knows keeps its ASCII (see charsetReader), and a value
// that does not decode at all is kept as it came. A value in raw
// ISO-2022-JP, which older Japanese mailers write into headers unencoded
// (it is 7-bit), is decoded as such: its escape sequence names it.
func decodeHeader(v string) string {
	if strings.Contains(v, "\x1b$B") || strings.Contains(v, "\x1b$@") {
		v = toUTF8([]byte(v), "iso-2022-jp")
	}
	if !strings.Contains(v, "=?") {
		return v
	}
	s, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		return v
	}
	return s
}

// wordDecoder decodes encoded-words (RFC 2047 §4) through x/text: the
// standard library's decoder knows UTF-8, US-ASCII and ISO-8859-1 only.
var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// charsetReader converts input from charset to UTF-8. It never fails: text
// in a charset no index knows keeps its ASCII and valid UTF-8, the rest
// becoming U+FFFD, as part text does (toUTF8).
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(input)
	if err != nil {
		return nil, err
	}
	return strings.NewReader(toUTF8(b, charset)), nil
}

func (m *message) classify() *Report {
	rep := &Report{
		MessageID: strings.Trim(m.h.Get("Message-Id"), "<> \t"),
		From:      decodeHeader(m.h.Get("From")),
		Subject:   m.subject(),
	}
	for _, p := range m.tree.leaves {
		switch p.ctype {
		case "message/delivery-status", "message/global-delivery-status":
			if m.dsn == nil {
				m.dsn = p
			}
		case "message/feedback-report":
			if m.arf == nil {
				m.arf = p
			}
		case "message/rfc822", "message/global", "message/rfc822-headers":
			if m.original == nil {
				m.original = p
			}
		case "text/rfc822-headers", "message/global-headers", "text/rfc822-header":
			if m.headers == nil {
				m.headers = p
			}
		case "text/plain", "text/x-plain", "text":
			m.texts = append(m.texts, p)
		case "text/html":
			m.htmls = append(m.htmls, p)
		}
	}
	m.readNotice()
	rep.Original = m.readOriginal()
	rep.ReturnPaths = m.returnPaths()
	if m.arf == nil {
		m.arf = m.textFeedbackReport()
	}
	switch {
	case m.arf != nil:
		m.complaint(rep)
	case m.isJMRP():
		m.jmrp(rep)
	case m.isUnsubscribe():
		rep.Kind = KindComplaint
		rep.FeedbackType = "opt-out"
		rep.Recipients = []Recipient{complaintRecipient(firstAddress(m.h.Get("From")), "unsubscribe request", "unsubscribe:opt-out")}
	case m.fromSES(rep):
	case m.dsn != nil && m.fromDSN(rep, parseDSN(m.dsn.text(), m.c.opts.MaxRecipients)):
	case m.fromEmbeddedDSN(rep):
	case !m.fromNotice(rep):
		return rep
	}
	if m.err != nil {
		return rep
	}
	m.decideAll(rep)
	return rep
}

// fromNotice fills rep from a message without report fields: a free-text
// bounce, else an automatic reply, else not a bounce. It reports whether
// rep has failures to decide.
func (m *message) fromNotice(rep *Report) bool {
	bounce := m.isBounce()
	switch {
	case bounce && m.fromText(rep):
		return true
	case m.isAutoReply() && !bounce:
		// An automatic reply (RFC 3834) only without the evidence of a
		// bounce: every Exim bounce says "Auto-Submitted: auto-replied".
		rep.Kind = KindAutoReply
		rep.Recipients = []Recipient{{
			Address: firstAddress(m.h.Get("From")), Category: AutoReply, Severity: None, Rule: "auto_reply:" + m.autoReplySign(),
		}}
	default:
		rep.Kind = KindNotBounce
	}
	return false
}

// readNotice collects the bounce's own text: its text/plain parts (or, when
// there are none, its HTML with the tags taken out), cut where a quoted
// original starts.
func (m *message) readNotice() {
	srcs := m.texts
	if len(srcs) == 0 {
		srcs = m.htmls
	}
	var text string
	for i, p := range srcs {
		if p.attach && i > 0 {
			continue
		}
		t := p.text()
		if p.ctype == "text/html" {
			t = stripHTML(t)
		}
		if i == 0 {
			text = t
		} else {
			text += "\n" + t
		}
		if m.original != nil || m.headers != nil || len(text) > maxNotice {
			break // the original has its own part: one text part is the notice
		}
	}
	text = unquote(text)
	if len(text) > maxNotice {
		// Notices are short; what follows is the returned message. The cap
		// bounds the work on hostile input.
		cut := maxNotice
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	m.notice, m.quoted = splitNotice(text)
}

// unquote removes one level of "> " quoting when most lines carry it: a
// bounce forwarded by a person, read as the bounce it quotes.
func unquote(text string) string {
	quoted, lines := 0, 0
	for line := range strings.SplitSeq(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		lines++
		if strings.HasPrefix(line, ">") {
			quoted++
		}
	}
	if lines < 4 || quoted*2 < lines {
		return text
	}
	var sb strings.Builder
	sb.Grow(len(text))
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, ">") {
			line = strings.TrimPrefix(line[1:], " ")
		}
		sb.WriteString(line)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// maxNotice is how much of a bounce's text is read for its notice.
const maxNotice = 64 << 10

// stripHTML reduces HTML to its text, one line per block.
func stripHTML(s string) string {
	var sb strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '<':
			in = true
			rest := strings.ToLower(s[i+1 : min(len(s), i+4)])
			if strings.HasPrefix(rest, "br") || strings.HasPrefix(rest, "p") || strings.HasPrefix(rest, "/p") ||
				strings.HasPrefix(rest, "div") || strings.HasPrefix(rest, "/di") || strings.HasPrefix(rest, "tr") || strings.HasPrefix(rest, "li") {
				sb.WriteByte('\n')
			}
		case c == '>' && in:
			in = false
		case !in:
			sb.WriteByte(c)
		}
	}
	r := strings.NewReplacer("&nbsp;", " ", "&lt;", "<", "&gt;", ">", "&amp;", "&", "&quot;", `"`, "&#39;", "'")
	return r.Replace(sb.String())
}

// readOriginal finds the returned original message and reads its header.
func (m *message) readOriginal() Original {
	switch {
	case m.original != nil:
		m.origHeader = m.originalHeader(m.original.headerText())
		return m.originalFrom(m.origHeader, "message/rfc822")
	case m.headers != nil:
		m.origHeader = m.originalHeader(m.headers.headerText())
		return m.originalFrom(m.origHeader, "text/rfc822-headers")
	case m.quoted != "":
		m.origHeader = m.originalHeader(m.quoted)
		return m.originalFrom(m.origHeader, "quoted")
	}
	return Original{}
}

// partyAddresses are the addresses, lower case, that a notice may name but
// that are never a failed recipient: the bounce's own sender and addressee,
// the returned original's sender, reply and bounce addresses and its
// mailing list (List-Post, and the address its List-Id stands for), and
// the message ids (RFC 5322 §3.6.4) that look like addresses ("Your
// message <20021104.abc@host.example.com> to ...").
func (m *message) partyAddresses() map[string]bool {
	out := map[string]bool{}
	add := func(h textproto.MIMEHeader, names ...string) {
		for _, n := range names {
			for _, v := range h.Values(n) {
				for _, a := range addressList(v) {
					out[strings.ToLower(a)] = true
				}
			}
		}
	}
	add(m.h, "From", "To", "Return-Path", "Sender", "Reply-To", "In-Reply-To", "References")
	if m.origHeader != nil {
		add(m.origHeader, "From", "Sender", "Reply-To", "Return-Path", "Errors-To", "List-Post", "Message-Id")
		if id := listID(m.origHeader.Get("List-Id")); strings.Count(id, ".") >= 2 {
			dot := strings.IndexByte(id, '.')
			out[strings.ToLower(id[:dot]+"@"+id[dot+1:])] = true // RFC 2919 §3: list@host as list.host
		}
	}
	return out
}

// originalFrom describes the returned original from the fields of its
// header that originalHeader read, found at source.
func (m *message) originalFrom(h textproto.MIMEHeader, source string) Original {
	if len(h) == 0 {
		return Original{}
	}
	o := Original{Source: source}
	o.MessageID = strings.Trim(h.Get("Message-Id"), "<> \t")
	o.ListID = listID(firstField(h, m.c.opts.ListHeaders))
	o.SubscriberID = firstField(h, m.c.opts.SubscriberHeaders)
	o.From = decodeHeader(h.Get("From"))
	o.To = decodeHeader(h.Get("To"))
	o.Subject = decodeHeader(h.Get("Subject"))
	for _, name := range m.c.opts.CampaignHeaders {
		if v := strings.TrimSpace(h.Get(name)); v != "" {
			if o.Campaign == nil {
				o.Campaign = map[string]string{}
			}
			o.Campaign[textproto.CanonicalMIMEHeaderKey(name)] = v
			if o.CampaignID == "" {
				o.CampaignID = v
			}
		}
	}
	o.AutoReply = autoReplyHeader(h) != ""
	return o
}

// firstField returns the value of the first of names present in h, trimmed,
// or "".
func firstField(h textproto.MIMEHeader, names []string) string {
	for _, n := range names {
		if v := strings.TrimSpace(h.Get(n)); v != "" {
			return v
		}
	}
	return ""
}

// originalFields are the fields read from the returned original.
var originalFields = []string{
	"Message-Id", "List-Id", "From", "To", "Subject", "Auto-Submitted", "X-Autorespond", "X-Autoreply",
	"X-Autoresponder", "Precedence", "X-Precedence", "X-Hmxmroriginalrecipient",
	"Sender", "Reply-To", "Return-Path", "Errors-To", "List-Post",
}

// originalHeader reads the fields of the original that matter: the ones
// above and the configured list, campaign and subscriber headers.
func (m *message) originalHeader(b string) textproto.MIMEHeader {
	h, _ := headerBlockOnly(b, func(name string) bool {
		for _, f := range originalFields {
			if strings.EqualFold(name, f) {
				return true
			}
		}
		for _, fields := range [][]string{m.c.opts.ListHeaders, m.c.opts.CampaignHeaders, m.c.opts.SubscriberHeaders} {
			for _, f := range fields {
				if strings.EqualFold(name, f) {
					return true
				}
			}
		}
		return false
	})
	return h
}

// listID extracts the id of a List-Id field (RFC 2919): the part in angle
// brackets, or the whole value.
func listID(v string) string {
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
	}
	return strings.TrimSpace(v)
}

// autoReplyHeader returns which header field marks h as an automatic reply
// (RFC 3834 §5), or "".
func autoReplyHeader(h textproto.MIMEHeader) string {
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" && v != "no" {
		return "auto-submitted"
	}
	if h.Get("X-Autorespond") != "" {
		return "x-autorespond"
	}
	if h.Get("X-Autoreply") != "" || h.Get("X-Autoresponder") != "" {
		return "x-autoreply"
	}
	if p := strings.ToLower(h.Get("Precedence")); strings.Contains(p, "auto_reply") || strings.Contains(p, "auto-reply") {
		return "precedence"
	}
	if strings.EqualFold(h.Get("X-Precedence"), "auto_reply") {
		return "precedence"
	}
	return ""
}

// complaint fills rep from an ARF report (RFC 5965 §3.1).
func (m *message) complaint(rep *Report) {
	rep.Kind = KindComplaint
	h, _ := headerBlock(m.arf.text())
	rep.FeedbackType = strings.ToLower(strings.TrimSpace(h.Get("Feedback-Type")))
	rep.ReportingMTA = strings.TrimSpace(stripType(h.Get("Reporting-Mta")))
	addrs := fieldAddresses(h.Values("Original-Rcpt-To"))
	if len(addrs) == 0 {
		addrs = fieldAddresses(h.Values("Removal-Recipient"))
	}
	if len(addrs) == 0 {
		addrs = fieldAddresses(addressList(rep.Original.To))
	}
	if len(addrs) == 0 {
		addrs = []string{""} // a complaint about nobody named: still a complaint
	}
	for _, a := range addrs {
		rep.Recipients = append(rep.Recipients, complaintRecipient(a, "feedback report: "+rep.FeedbackType, "arf:"+rep.FeedbackType))
	}
}

// fieldAddresses reads the addresses of field values, each of which may
// list several (RFC 5965 §3.2 allows Original-Rcpt-To more than once, and
// reports put several in one), without repeats.
func fieldAddresses(values []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		found := addressList(v)
		if len(found) == 0 {
			if a := fieldAddress(v); validAddress(a) {
				found = []string{a}
			}
		}
		for _, a := range found {
			if k := strings.ToLower(a); !seen[k] {
				seen[k] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// textFeedbackReport finds the feedback report of a multipart/report of
// report-type feedback-report (RFC 5965 §2) whose report part is labelled
// text/plain, as some feedback loops send it: the text part whose first
// field is Feedback-Type. It returns nil for any other message.
func (m *message) textFeedbackReport() *part {
	if !containsFold(m.h.Get("Content-Type"), "feedback-report") {
		return nil
	}
	for _, p := range m.texts {
		if hasPrefixFold(strings.TrimSpace(p.text()), "feedback-type:") {
			return p
		}
	}
	return nil
}

// isUnsubscribe reports whether the message is an automatic unsubscribe
// request (a mail client acting on a List-Unsubscribe mailto: link, RFC
// 2369): generated automatically, with the subject "unsubscribe".
func (m *message) isUnsubscribe() bool {
	s := strings.ToLower(strings.TrimSpace(m.subject()))
	return s == "unsubscribe" && autoReplyHeader(m.h) != ""
}

// isJMRP reports whether the message is a complaint in the format of
// Microsoft's Junk Mail Reporting Program: no ARF part, the subject
// "complaint about message from IP" and the reported message attached.
func (m *message) isJMRP() bool {
	s := strings.ToLower(strings.TrimSpace(m.h.Get("Subject")))
	return m.original != nil && strings.HasPrefix(s, "complaint about message from")
}

// jmrp fills rep from a JMRP complaint: the complaining recipient is named
// by X-HmXmrOriginalRecipient in the attached message, else its To.
func (m *message) jmrp(rep *Report) {
	rep.Kind = KindComplaint
	rep.FeedbackType = "abuse"
	h, _ := headerBlock(m.original.text())
	addr := firstAddress(h.Get("X-Hmxmroriginalrecipient"))
	if addr == "" {
		addr = firstAddress(h.Get("To"))
	}
	rep.Recipients = []Recipient{complaintRecipient(addr, "complaint (Microsoft JMRP)", "jmrp:abuse")}
}

// complaintRecipient is the recipient of a complaint (ARF, JMRP, SES, an
// unsubscribe request): decided by the report's kind, not by any words.
func complaintRecipient(addr, diagnostic, rule string) Recipient {
	return Recipient{
		Address: addr, Action: "failed", Category: Complaint, Severity: None,
		Diagnostic: diagnostic, Rule: rule,
	}
}

// fromDSN fills rep from the fields of a delivery-status part. It reports
// false when the part names no recipient.
func (m *message) fromDSN(rep *Report, d dsnReport) bool {
	if d.tooMany {
		m.err = parseErr(ErrTooManyRecipients, "more than %d recipient blocks", m.c.opts.MaxRecipients)
		return true
	}
	if len(d.recipients) == 0 {
		return false
	}
	rep.Kind = KindDSN
	rep.ReportingMTA = d.reportingMTA
	rep.ArrivalDate = d.arrival
	rep.Recipients = d.recipients
	m.delayWithoutAction(rep)
	m.enrichFromNotice(rep)
	return true
}

// delayWithoutAction marks as delayed the recipient blocks that give no
// Action (RFC 3464 §2.3.3 requires one) and no permanent status when the
// notice is a delay warning ("delivery attempts will continue"): what the
// notice says is then all there is to go by.
func (m *message) delayWithoutAction(rep *Report) {
	for i := range rep.Recipients {
		r := &rep.Recipients[i]
		if r.Action == "" && !strings.HasPrefix(r.Status, "5.") && !strings.HasPrefix(r.Status, "2.") && m.isWarning() {
			r.Action = "delayed"
		}
	}
}

// fromEmbeddedDSN reads DSN fields that an MTA wrote into its text part
// instead of a message/delivery-status part.
func (m *message) fromEmbeddedDSN(rep *Report) bool {
	for _, p := range append(m.texts, m.headers) {
		if p == nil {
			continue
		}
		t := p.text()
		l := strings.ToLower(t)
		i := strings.Index(l, "final-recipient:")
		if i < 0 || !strings.Contains(l, "action:") && !strings.Contains(l, "status:") {
			continue
		}
		// Back up to the start of the per-message block, if there is one.
		start := strings.LastIndex(l[:i], "reporting-mta:")
		if start < 0 {
			start = i
		}
		d := parseDSN(t[start:], m.c.opts.MaxRecipients)
		if len(d.recipients) == 0 {
			continue
		}
		// The fields are not the notice: when human words come first, they
		// end where the fields start, so that a recipient's explanation is
		// not read from its own Final-Recipient and Status lines.
		if j := strings.Index(m.notice, t[start:min(len(t), start+64)]); j > 0 && strings.TrimSpace(m.notice[:j]) != "" {
			m.notice, m.noticeNorm, m.cmdDone = m.notice[:j], nil, false
		}
		if m.fromDSN(rep, d) {
			return true
		}
	}
	return false
}

// enrichFromNotice completes DSN recipients from the text part: a missing
// or code-less diagnostic, and the SMTP command.
func (m *message) enrichFromNotice(rep *Report) {
	if strings.TrimSpace(m.notice) == "" {
		return
	}
	if len(rep.Recipients) == 1 && validAddress(rep.Recipients[0].Address) {
		// One recipient (the common case): the notice is all about it, and
		// only the command needs finding, unless the fields say nothing.
		r := &rep.Recipients[0]
		if r.Command == "" {
			r.Command = commandIn(r.Diagnostic)
		}
		if r.Command == "" {
			r.Command = m.noticeCommand()
		}
		d := r.Diagnostic
		if strings.TrimSpace(d) != "" && (findReplyCode(d) != 0 || quotedStatus(d) != "" || hasPhrase(d)) {
			return
		}
	}
	var failed []string
	for _, r := range rep.Recipients {
		failed = append(failed, r.Address)
	}
	trs := noticeRecipients(m.notice, failed, nil)
	if broken := brokenAddresses(rep.Recipients); broken > 0 {
		// Some Final-Recipient is not an address ("@host"): take the text's.
		named := noticeRecipients(m.notice, nil, nil)
		if len(named) == len(rep.Recipients) {
			for i := range rep.Recipients {
				if !validAddress(rep.Recipients[i].Address) {
					rep.Recipients[i].Address = named[i].addr
				}
			}
			trs = named
		}
	}
	globalCmd := transcriptCommand(m.notice)
	for i := range rep.Recipients {
		r := &rep.Recipients[i]
		var lines []string
		segment := ""
		if i < len(trs) {
			lines, segment = trs[i].lines, trs[i].segment
		}
		text := strings.Join(lines, "\n")
		if r.Command == "" {
			r.Command = commandIn(r.Diagnostic)
		}
		if r.Command == "" {
			r.Command = commandIn(text)
		}
		if r.Command == "" && segment != "" {
			r.Command = commandIn(segment)
		}
		if r.Command == "" {
			r.Command = globalCmd
		}
		if strings.TrimSpace(r.Diagnostic) == "" || findReplyCode(r.Diagnostic) == 0 && findStatus(r.Diagnostic) == "" &&
			(findReplyCode(text) != 0 || findStatus(text) != "") && !hasPhrase(r.Diagnostic) {
			if text != "" {
				r.Diagnostic = strings.TrimSpace(strings.Join(strings.Fields(r.Diagnostic+" "+text), " "))
			}
		}
	}
}

// validAddress reports whether a has a local part and a domain.
func validAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	return at > 0 && at < len(a)-1
}

func brokenAddresses(rs []Recipient) int {
	n := 0
	for _, r := range rs {
		if !validAddress(r.Address) {
			n++
		}
	}
	return n
}

func hasPhrase(s string) bool {
	c, _, _ := matchPhrase(normalize(s), false)
	return c != ""
}

// fromText fills rep from a free-text notice. It reports false when no
// failed recipient can be found.
func (m *message) fromText(rep *Report) bool {
	failed := addressList(m.h.Get("X-Failed-Recipients"))
	parties := m.partyAddresses()
	trs := noticeRecipients(m.notice, failed, parties)
	if len(trs) == 0 {
		// Nobody named: the returned original's recipient is the one,
		// unless that is the list itself (members in Bcc).
		to := addressList(rep.Original.To)
		if len(to) != 1 || parties[strings.ToLower(to[0])] {
			return false
		}
		trs = []textRecipient{{addr: to[0], lines: errorLines(m.notice)}}
	}
	rep.Kind = KindMTAText
	delayed := m.isWarning()
	if delayed {
		rep.Kind = KindDelayed
	}
	for _, tr := range trs {
		diag := strings.Join(tr.lines, " ")
		if diag == "" {
			diag = strings.Join(errorLines(m.notice), " ")
		}
		r := Recipient{Address: tr.addr, Action: "failed", Diagnostic: strings.Join(strings.Fields(diag), " ")}
		if delayed {
			r.Action = "delayed"
		}
		r.Command = commandIn(diag)
		if r.Command == "" {
			r.Command = commandIn(tr.segment)
		}
		if r.Command == "" {
			r.Command = m.noticeCommand()
		}
		rep.Recipients = append(rep.Recipients, r)
	}
	return true
}

// errorLines returns the lines of a notice that explain a failure.
func errorLines(notice string) []string {
	var out []string
	for line := range strings.SplitSeq(notice, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !boilerplate(t) && isErrorLine(t) {
			out = append(out, t)
		}
	}
	return out
}

// isWarning reports whether a free-text notice is a delay warning rather
// than a failure.
func (m *message) isWarning() bool {
	s := strings.ToLower(m.h.Get("Subject"))
	if strings.Contains(s, "delayed") || strings.Contains(s, "warning:") || strings.Contains(s, "delivery status notification (delay)") {
		return true
	}
	return matchAny(warningMarkers, m.normNotice())
}

var warningMarkers = newMatcher([]phraseRule{{"", []string{
	"this is a warning message only", "will be retried", "has not yet been delivered", "still trying",
	"will continue trying", "delivery has been delayed", "has been delayed", "delivery attempts will continue",
	"still undelivered after", "will retry", "will keep trying", "not been delivered yet", "could not be delivered yet",
}}})

// bounceSubjects are subject words of delivery failure notices.
var bounceSubjects = []string{
	"undeliver", "delivery fail", "failure notice", "returned mail", "delivery status notification",
	"mail delivery failed", "non-delivery", "nondeliverable", "non delivery", "could not be delivered",
	"returned to sender", "delivery problem", "delivery notification", "permanent error",
	"could not send", "delayed mail", "not delivered", "mail system error", "delivery error",
	"failed delivery", "delivery failure", "unzustellbar", "bounce", "mail error", "rejected",
	"delivery report", "message status", "email returned", "returned email", "unable to deliver",
	"delivery has failed", "failed to deliver", "undelivered", "failed mail", "mail failure", "returned message",
	"not deliverable", "nondelivery", "message status - undeliverable", "couldn't be delivered",
	"error sending", "ndn:", "mail system error", "delivery final", "returned undeliverable", "not be delivered",
	// Other languages' notices (their subjects, lower-cased).
	"non remis", "non distribuable", "échec de la remise", "echec de la remise", "impossible de remettre",
	"nicht zustellbar", "zustellung fehlgeschlagen", "non recapitabile", "mancato recapito",
	"no se puede entregar", "no entregado", "não entregue", "nao entregue", "não foi possível entregar",
	"недоставленное сообщение", "не доставлено", "配信不能", "配送不能", "未配達", "系统退信", "退信", "投递失败",
}

// bounceMarkers are phrases of the bodies of delivery failure notices.
var bounceMarkers = []string{
	"could not be delivered", "couldn't be delivered", "wasn't able to deliver", "was not able to deliver",
	"could not deliver", "couldn't deliver", "unable to deliver", "undeliverable", "delivery failed",
	"delivery has failed", "failed to deliver", "permanent error", "permanent failure", "following address",
	"following recipient", "transcript of session", "qmail-send program", "not delivered", "wasn't delivered",
	"delivery to the following", "returned to you", "has been delayed", "was rejected", "message could not",
	"unable to be delivered", "delivery attempts", "could not reach", "cannot be delivered", "can't be delivered",
	"delivery status", "mail delivery", "failed recipient", "remote host said", "smtp error",
	"rejected by", "not be reached", "cannot be reached", "giving up", "delivery problem", "undelivered",
	// A mailing list refusing a post: the post failed, the address did not.
	"has been rejected", "not a member of", "non-members are not allowed", "not allowed to post",
	"do not have permission to post", "posting is restricted", "closed list",
	// Other languages' notices.
	"konnte nicht zugestellt werden", "nicht zugestellt", "n'a pas pu être remis", "n'a pas pu etre remis",
	"no se pudo entregar", "no ha podido ser entregado", "non è stato possibile recapitare", "non e' stato possibile recapitare",
	"não pôde ser entregue", "nao pode ser entregue", "не может быть доставлено", "не удалось доставить",
	"配信できませんでした", "届けることができませんでした", "无法投递", "投递失败", "退信",
}

var bounceMarkerMatcher = newMatcher([]phraseRule{{"", bounceMarkers}})

// isBounce reports whether a message without DSN fields is a delivery
// failure notice: it comes from a mailer daemon or says so in its subject,
// and its body reads like one.
func (m *message) isBounce() bool {
	if m.h.Get("X-Failed-Recipients") != "" {
		return true
	}
	from := strings.ToLower(m.h.Get("From"))
	daemon := false
	for _, w := range []string{"mailer-daemon", "mailer_daemon", "mailer daemon", "postmaster", "post_master", "mail delivery", "maildelivery",
		"mail-daemon", "maildaemon", "delivery subsystem", "mail administrator", "mail system", "mailadmin",
		"delivery-notification", "ndr@", "bounce@", "auto-notify", "dispatcher", "system administrator",
		"mail router", "smtp gateway", "internet mail delivery", "mmdf", "mail.delivery"} {
		if strings.Contains(from, w) {
			daemon = true
			break
		}
	}
	subj := strings.ToLower(m.subject())
	subject := false
	for _, w := range bounceSubjects {
		if strings.Contains(subj, w) {
			subject = true
			break
		}
	}
	if strings.HasPrefix(subj, "re:") || strings.HasPrefix(subj, "aw:") || strings.HasPrefix(subj, "sv:") {
		subject = false // a person answering
	}
	marker := matchAny(bounceMarkerMatcher, m.normNotice())
	if (daemon && (subject || marker)) || (subject && marker) {
		return true
	}
	// A notice that returns the original, or comes from a daemon or under
	// a bounce's subject and gives a reason (a reply code, or the words of
	// a failure: "Returned mail: User unknown" over an address and "...
	// User unknown"), is one whatever else it says.
	returned := m.original != nil || m.headers != nil
	return (marker && returned) || ((daemon || subject) && (hasCodeLine(m.notice) || len(errorLines(m.notice)) > 0))
}

// hasCodeLine reports whether some line of s carries a 4xx or 5xx reply
// code or an enhanced status code.
func hasCodeLine(s string) bool {
	for line := range strings.SplitSeq(s, "\n") {
		if c := findReplyCode(line); c >= 400 {
			return true
		}
		if st := findStatus(line); st != "" && st[0] != '2' {
			return true
		}
	}
	return false
}

// isAutoReply reports whether the message is an automatic reply (RFC 3834).
func (m *message) isAutoReply() bool {
	return m.autoReplySign() != ""
}

func (m *message) autoReplySign() string {
	if s := autoReplyHeader(m.h); s != "" {
		return s
	}
	subj := strings.ToLower(m.subject())
	for _, w := range []string{"out of office", "out of the office", "auto reply", "autoreply", "auto-reply",
		"automatic reply", "automatische antwort", "abwesenheitsnotiz", "vacation", "away from", "réponse automatique",
		"respuesta automática", "auto:"} {
		if strings.Contains(subj, w) {
			return "subject"
		}
	}
	return ""
}

// decideAll extracts the codes of each recipient and applies the rules.
func (m *message) decideAll(rep *Report) {
	allDelayed := true
	for i := range rep.Recipients {
		r := &rep.Recipients[i]
		r.Diagnostic = strings.TrimSpace(r.Diagnostic)
		if r.SMTPCode == 0 {
			r.SMTPCode = findReplyCode(r.Diagnostic)
		}
		if r.Status == "" {
			r.Status = quotedStatus(r.Diagnostic)
		}
		if r.Command == "" {
			r.Command = commandIn(r.Diagnostic)
		}
		if !r.Failed() {
			r.Severity, r.Rule = None, "action:"+r.Action
			continue
		}
		if r.Category == "" {
			d := decide(r, facts{autoReply: rep.Original.AutoReply, dsnAction: rep.Kind == KindDSN})
			r.Status, r.Category, r.Severity, r.Suppress, r.Rule = d.status, d.category, d.severity, d.suppress, d.rule
			r.Why = rowWhy(d.row)
		}
		if r.Failed() && r.Action != "delayed" {
			allDelayed = false
		}
	}
	if allDelayed && rep.Kind == KindDSN && rep.Bounce() {
		rep.Kind = KindDelayed
	}
}
