package classify

import (
	"bytes"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// Wrapper independence (issue 12, item 2). A failure is a fact about one
// recipient: the remote's reply (code, enhanced status, words) and the SMTP
// command it answered. Which MTA wrote the notice around it must not change
// the verdict. TestWrapperIndependence takes every failure of the fixtures
// (testdata/*.eml), of the seeds' 553 replies (seed553, refused at RCPT
// TO) and of the dev corpus (when present, as for TestCorpusRatchet),
// writes it again in each wrapper of wrapFormats, classifies each, and
// requires the same recipient, category, severity and suppress as the
// reference, and the returned original's Message-ID and List-Id.
//
// The reference is the failure written as an RFC 3464 DSN whose
// human-readable part names the SMTP command (wrapFormats[0], "rfc3464"):
// the standard format, carrying every fact the others can carry. Not the
// source message's own verdict: the source carries more than the failure
// (other recipients, its own layout and paraphrase), and its reading may
// be what is wrong; with the DSN as reference every wrapper gets exactly
// the same facts, so a difference is the wrapper's. The source's verdict is
// still compared with the reference, as a round trip (wrapper "source"):
// a difference there says that the real notice and the standard one with
// the same facts disagree, or that the facts lost something on the way.
//
// What each wrapper cannot carry, and so the only differences allowed:
//
//	wrapper          stage  Action  status  returned original   notes
//	rfc3464          yes    yes     field   text/rfc822-headers  the reference; stage in the human part
//	rfc3464-nostage  no     yes     field   text/rfc822-headers  what most DSN writers send
//	postfix-dsn      yes    yes     field   message/rfc822       notice + DSN part (Postfix >= 2.3)
//	postfix-text     yes    no      text    message/rfc822       notice alone (old Postfix, a stripped DSN)
//	exim             yes    no      text    inline copy          X-Failed-Recipients; "after RCPT TO:<x>:"
//	qmail            yes    no      text    inline copy          "does not like recipient", "but greeting failed"
//	sendmail         yes    no      text    inline copy          transcript ">>> RCPT To:<x>" / "<<< 550 ..."
//	exchange         no     no      text    headers in the text  "Remote Server returned '...'" (no DSN part)
//	gmail            no     no      text    message/rfc822       "The response from the remote server was:"
//	bare             no     no      text    quoted below         "Mail delivery failed", address and reply
//
// stage: where a wrapper cannot say which command the reply answered, it
// must give what the words alone give (the DSN without the command) only
// where the command decides and nothing in the reply pins it; everywhere
// else the reference's verdict (wrapStagelessWant). So a failure answered to
// DATA, MAIL FROM, HELO or the greeting may differ; one answered to RCPT
// TO only when the same reply after DATA means a recipient's filter and
// neither a 551/553 code nor an X.1.x status pins RCPT TO. "553 sorry, no
// such user here" must suppress in every wrapper, as the issue asks;
// "550 5.2.1 <x>... User Unknown" may be withheld without the command (the
// dev corpus has the very words from filters, Sisimai's "filtered").
// Action: the DSN's own "Action: failed" for a 4.1.x reply the MTA gave up
// retrying (rule +given_up) has no place in a free-text notice; there the
// reference's suppress may be false.
// status: the status that decided (the quoted one when the source's field
// disagreed) is carried by all: the DSNs in their Status field (X.0.0 of
// the reply's class when there is none, as RFC 3464 §2.3.4 requires it),
// every wrapper in the reply ("550 5.1.1 ..."). A source's overruled
// Status field is not carried.
// recipient and sender: one recipient per message; the envelope sender is
// the source bounce's To, since replies name it ("<bounces@...>: Sender
// address rejected") and real notices are sent to it.
//
// The reply each wrapper writes is the source's diagnostic cut to the
// remote's own words (wrapCleanReply, wrapChooseReply), so that the source's
// wrapper does not leak its stage into wrappers that have no place for it.
//
// Each class of disagreement is one t.Errorf, with its count per wrapper
// and its first examples; BOUNCER_WRAP_REPORT=1 logs every example. The
// classes are read from the rule names ("+stage_unknown", "+given_up",
// "text:<category>:<phrase>"); under other names a disagreement still
// fails, in the class "same facts, other verdict".
func TestWrapperIndependence(t *testing.T) {
	t.Run("fixtures", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no fixtures: %v", err)
		}
		fs, skipped := wrapCollect(t, files)
		wrapRun(t, fs, fmt.Sprintf("%d files", len(files)), skipped)
	})
	t.Run("seeds", func(t *testing.T) {
		wrapRun(t, wrapSeedFailures(), fmt.Sprintf("%d seed replies", len(seed553)), wrapSkips{})
	})
	t.Run("corpus", func(t *testing.T) {
		dir := corpusDir(t)
		var files []string
		for name := range loadExpected(t, dir) {
			files = append(files, filepath.Join(dir, name))
		}
		sort.Strings(files)
		fs, skipped := wrapCollect(t, files)
		wrapRun(t, fs, fmt.Sprintf("%d files", len(files)), skipped)
	})
}

// wrapRun re-wraps the failures fs and reports the disagreements, one
// t.Errorf per class.
func wrapRun(t *testing.T, fs []*wrapFailure, from string, skipped wrapSkips) {
	if len(fs) == 0 {
		t.Fatalf("no failures found in %s", from)
	}
	rep := newWrapReport()
	c := New(Options{})
	for _, f := range fs {
		wrapCheck(c, f, rep)
	}
	t.Logf("%s, %d distinct failures (%d skipped: %s), %d wrapped messages, %d disagreements in %d classes; "+
		"verdicts the command decides (allowed to differ without it): %s",
		from, len(fs), skipped.total(), skipped, rep.checked, rep.disagreements(), len(rep.classes),
		wrapSkips(rep.stageDecides))
	rep.fail(t, os.Getenv("BOUNCER_WRAP_REPORT") != "")
}

// wrapSeedFailures are the 553 replies of ../shared/seeds (seed553), each
// refused at RCPT TO: the set the issue scores "in every wrapper". They
// have no source message, so no round trip.
func wrapSeedFailures() []*wrapFailure {
	const sender = "sender@example.com" // the address the seeds' sender refusals name
	var out []*wrapFailure
	for i, s := range seed553 {
		// A reply to RCPT TO that echoes an address other than the
		// sender's echoes the recipient ("550 <x@example.com>: Relay
		// access denied"), so that address is the recipient here.
		rcpt := "recipient@remote.example"
		for _, a := range wrapAddrRE.FindAllString(s.reply, -1) {
			if a = strings.ToLower(a); a != sender {
				rcpt = a
				break
			}
		}
		f := &wrapFailure{
			id: i + 1, source: "seed553", addr: rcpt, sender: sender,
			status: quotedStatus(s.reply), code: findReplyCode(s.reply), stage: "RCPT",
		}
		f.reply = wrapCleanReply(s.reply, f.code, f.status, true)
		out = append(out, f)
	}
	return out
}

// wrapFailure is one failed recipient, as the wrappers write it.
type wrapFailure struct {
	id        int    // numbers the returned original's Message-ID
	source    string // the file it came from
	addr      string
	sender    string // the envelope sender: the source bounce's To
	status    string // enhanced status, or ""
	code      int    // SMTP reply code, or 0
	reply     string // the remote's reply, code and status included where known
	stage     string // CONN, HELO, MAIL, RCPT, DATA or "" (Recipient.Command)
	autoReply bool   // the returned original was itself an automatic reply
	verdict   Recipient
}

// wrapSkips counts the failures that are not re-wrapped, by reason.
type wrapSkips map[string]int

func (s wrapSkips) total() int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

func (s wrapSkips) String() string {
	var parts []string
	for _, k := range wrapSortedKeys(s) {
		parts = append(parts, fmt.Sprintf("%s %d", k, s[k]))
	}
	return strings.Join(parts, ", ")
}

// wrapCollect classifies files and returns their failed recipients,
// each distinct failure once (the corpus holds CRLF copies of its files).
// Warnings, complaints and auto-replies are not failures of an address
// and are skipped, as is a failure that says nothing to wrap.
func wrapCollect(t *testing.T, files []string) ([]*wrapFailure, wrapSkips) {
	t.Helper()
	skipped := wrapSkips{}
	seen := map[string]bool{}
	c := New(Options{})
	var out []*wrapFailure
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Classify(raw)
		if err != nil {
			continue
		}
		sender := wrapBounceTo(raw)
		for _, r := range rep.Recipients {
			if !r.Failed() {
				continue
			}
			if why := wrapSkipReason(rep, &r); why != "" {
				skipped[why]++
				continue
			}
			f := &wrapFailure{
				source: filepath.Base(file), addr: r.Address, sender: sender, status: r.Status, code: r.SMTPCode,
				stage: r.Command, autoReply: rep.Original.AutoReply, verdict: r,
			}
			wrapChooseReply(c, f, r.Diagnostic)
			if strings.TrimSpace(f.reply) == "" {
				skipped["nothing to wrap"]++
				continue
			}
			key := strings.ToLower(f.addr) + "|" + f.stage + "|" + f.reply + "|" + fmt.Sprint(f.autoReply)
			if seen[key] {
				skipped["duplicate"]++
				continue
			}
			seen[key] = true
			f.id = len(out) + 1
			out = append(out, f)
		}
	}
	return out, skipped
}

// wrapBounceTo returns the address a bounce was sent to, its envelope sender
// (RFC 3464 §2: the DSN goes to the return path), or a stand-in. A reply
// may name that address ("<bounces@...>: Sender address rejected"); real
// notices carry it in their To and in the returned original's
// Return-Path, so the wrappers do too.
func wrapBounceTo(raw []byte) string {
	const standIn = "bounces@sender.example"
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return standIn
	}
	to, err := mail.ParseAddressList(msg.Header.Get("To"))
	if err != nil || len(to) == 0 || !wrapValidAddr(to[0].Address) {
		return standIn
	}
	return to[0].Address
}

// wrapSkipReason says why a failed recipient is not re-wrapped, or "".
func wrapSkipReason(rep *Report, r *Recipient) string {
	switch {
	case rep.Kind == KindComplaint || r.Category == Complaint:
		return "complaint"
	case r.Action == "delayed" || r.Category == Delayed:
		return "delayed"
	case r.Category == AutoReply:
		return "auto-reply"
	case !wrapValidAddr(r.Address) || strings.ContainsAny(r.Address, " \t<>"):
		return "no address"
	}
	return ""
}

// wrapCleanReply cuts a diagnostic to the remote server's reply: from its reply
// code on (the words before it are usually the reporting MTA's: "host mx
// said:", "Remote Server returned '", "Connected to ip but sender was
// rejected. Remote host said:", and may name the stage), without a
// trailing "(in reply to ... command)", qmail's "Giving up on <ip>." or a
// closing quote, on one line. The code and the status are put in front
// when the text lacks them, so that a free-text wrapper carries them too.
// With cut false, the words before the code are kept.
func wrapCleanReply(diag string, code int, status string, cut bool) string {
	s := strings.Join(strings.Fields(diag), " ")
	if i := wrapCodeIndex(s, code); cut && code != 0 && i > 0 {
		s = s[i:]
	}
	if i := strings.Index(strings.ToLower(s), "(in reply to "); i >= 0 && strings.HasSuffix(s, "command)") {
		s = strings.TrimSpace(s[:i])
	}
	if i := strings.LastIndex(s, " Giving up on "); i > 0 && strings.HasSuffix(s, ".") {
		s = s[:i] // qmail's own last line
	}
	if strings.HasSuffix(s, "'") && strings.Count(s, "'")%2 == 1 {
		s = strings.TrimSpace(strings.TrimSuffix(s, "'"))
	}
	rest, prefix := s, ""
	if code != 0 {
		prefix = fmt.Sprint(code)
		if wrapCodeIndex(s, code) == 0 {
			rest = strings.TrimLeft(s[3:], " -")
		} else if findReplyCode(s) == code {
			prefix = "" // the code stands later in the text, where its MTA put it
		}
	}
	if status != "" && quotedStatus(s) == "" {
		rest = strings.TrimSpace(status + " " + rest)
	}
	return strings.TrimSpace(prefix + " " + rest)
}

// wrapChooseReply sets f.reply: the diagnostic cut to the remote's reply,
// unless the words before the reply code decide something (Sendmail's
// "mail.local: unknown user" before its own "554 ... Service
// unavailable"): when the reference verdict of the cut reply differs from
// that of the whole diagnostic, the whole one is kept.
func wrapChooseReply(c *Classifier, f *wrapFailure, diag string) {
	f.reply = wrapCleanReply(diag, f.code, f.status, true)
	whole := wrapCleanReply(diag, f.code, f.status, false)
	if whole == f.reply {
		return
	}
	cut := wrapClassify(c, wrapRFC3464(f, true)).find(f.addr)
	g := *f
	g.reply = whole
	full := wrapClassify(c, wrapRFC3464(&g, true)).find(f.addr)
	if full != nil && (cut == nil || cut.Category != full.Category || cut.Severity != full.Severity ||
		cut.Suppress != full.Suppress) {
		f.reply = whole
	}
}

// wrapValidAddr reports whether a has a local part and a domain.
func wrapValidAddr(a string) bool {
	at := strings.LastIndexByte(a, '@')
	return at > 0 && at < len(a)-1
}

// wrapAddrRE matches a plain ASCII address, as the wrappers need one.
var wrapAddrRE = regexp.MustCompile(`[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+`)

// wrapNorm lower-cases s and folds its runs of white space to one space, so
// that a rule's phrase is found in text the way the rules match it.
func wrapNorm(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// wrapCodeIndex returns where the reply code code stands in s as a number of
// its own, or -1.
func wrapCodeIndex(s string, code int) int {
	if code < 100 || code > 999 {
		return -1
	}
	c := fmt.Sprint(code)
	for i := 0; ; {
		j := strings.Index(s[i:], c)
		if j < 0 {
			return -1
		}
		j += i
		before := j == 0 || !isAlnum(s[j-1]) && s[j-1] != '.' && s[j-1] != '#'
		after := j+3 == len(s) || !isAlnum(s[j+3]) && s[j+3] != '.'
		if before && after {
			return j
		}
		i = j + 1
	}
}

// wrapOutcome is what the classifier made of one wrapped message.
type wrapOutcome struct {
	kind     Kind
	failed   []Recipient
	original Original
	err      error
}

func wrapClassify(c *Classifier, raw string) wrapOutcome {
	rep, err := c.Classify([]byte(raw))
	if err != nil {
		return wrapOutcome{err: err}
	}
	o := wrapOutcome{kind: rep.Kind, original: rep.Original}
	for _, r := range rep.Recipients {
		if r.Failed() {
			o.failed = append(o.failed, r)
		}
	}
	return o
}

// find returns the failed recipient of o whose address is addr, or nil.
func (o wrapOutcome) find(addr string) *Recipient {
	for i := range o.failed {
		if strings.EqualFold(o.failed[i].Address, addr) {
			return &o.failed[i]
		}
	}
	return nil
}

// wrapCheck wraps f in every format and records each disagreement with
// the reference in rep.
func wrapCheck(c *Classifier, f *wrapFailure, rep *wrapReport) {
	ref := wrapClassify(c, wrapFormats[0].wrap(f))
	refR := ref.find(f.addr)
	rep.checked++
	if refR == nil {
		rep.add("rfc3464", f, "reference (rfc3464 with stage): recipient not found", nil, ref)
		return
	}
	stageless := wrapStagelessWant(c, f, refR, rep)
	for _, w := range wrapFormats[1:] {
		got := wrapClassify(c, w.wrap(f))
		rep.checked++
		want := refR
		if !w.stage && stageless != nil {
			want = stageless
		}
		if !w.dsn && strings.Contains(refR.Rule, "+given_up") {
			relaxed := *want
			relaxed.Suppress = false
			want = &relaxed
		}
		for _, class := range wrapDiagnose(w, f, want, got) {
			rep.add(w.name, f, class, want, got)
		}
	}
	// The round trip: the source's own verdict against the reference.
	if f.verdict.Address == "" {
		return
	}
	src := wrapOutcome{kind: KindDSN, failed: []Recipient{f.verdict}}
	for _, class := range wrapDiagnose(wrapFormat{name: "source", stage: true, dsn: true}, f, refR, src) {
		rep.add("source", f, "round trip: "+class, refR, src)
	}
}

// wrapStagelessWant returns what a wrapper that cannot name the SMTP command
// must report for f when that differs from the reference by right: the
// verdict of the same DSN without the command (the words alone), or nil
// when it must report the reference's. By right means: the command decides
// the verdict (the classifier's own rules give another one at another
// command), and nothing else in the reply pins the command. A failure
// answered to DATA, MAIL FROM, HELO or the greeting qualifies whenever
// its verdict differs without the command. One answered to RCPT TO
// qualifies only when the same reply after DATA would get another verdict
// (the words also mean a recipient's filter: "550 5.2.1 <x>... User
// Unknown") and neither its code nor its status pins RCPT TO: 551 and 553
// are no replies to DATA (RFC 5321 §4.3.2), and an X.1.x status (RFC 3463
// §3.2) is about the recipient's address. So "553 sorry, no such user here"
// must get the reference's verdict in every wrapper, as the issue asks.
// It counts the qualifying failures in rep.stageDecides.
func wrapStagelessWant(c *Classifier, f *wrapFailure, refR *Recipient, rep *wrapReport) *Recipient {
	if f.stage == "" {
		return nil
	}
	bare := wrapClassify(c, wrapRFC3464(f, false)).find(f.addr)
	if bare == nil || wrapSameVerdict(bare, refR) {
		return nil
	}
	if f.stage == "RCPT" {
		if f.code == 551 || f.code == 553 || wrapAddressStatus(f.status) {
			return nil
		}
		g := *f
		g.stage = "DATA"
		if data := wrapClassify(c, wrapRFC3464(&g, true)).find(f.addr); data == nil || wrapSameVerdict(data, refR) {
			return nil
		}
	}
	rep.stageDecides[f.stage]++
	return bare
}

func wrapSameVerdict(a, b *Recipient) bool {
	return a.Category == b.Category && a.Severity == b.Severity && a.Suppress == b.Suppress
}

// wrapAddressStatus reports whether st is one of the X.1.x codes about the
// recipient's address (RFC 3463 §3.2), other than X.1.0 (other), X.1.7 and
// X.1.8 (the sender's).
func wrapAddressStatus(st string) bool {
	if len(st) < 5 || st[1:4] != ".1." {
		return false
	}
	return st[4:] != "0" && st[4:] != "7" && st[4:] != "8"
}

// wrapDiagnose names the classes of disagreement between want and got: none
// when they agree on recipient, category, severity and suppress and the
// message reports no other address as failed. A verdict that differs is
// put in the first class that explains it, in the order below.
func wrapDiagnose(w wrapFormat, f *wrapFailure, want *Recipient, got wrapOutcome) []string {
	switch {
	case got.err != nil:
		return []string{"classify error"}
	case len(got.failed) == 0:
		class := fmt.Sprintf("not detected as a bounce (kind %s)", got.kind)
		if !wrapIsASCII(f.addr) {
			class += ": UTF-8 address not extracted from the text"
		}
		return []string{class}
	}
	r := got.find(f.addr)
	if r == nil {
		for _, o := range got.failed {
			if strings.Contains(strings.ToLower(f.reply), strings.ToLower(o.Address)) {
				return []string{"recipient not extracted: an address the reply names was taken instead"}
			}
		}
		return []string{"recipient not extracted"}
	}
	var classes []string
	if w.name != "source" && (got.original.MessageID != fmt.Sprintf("wrap-%d@sender.example", f.id) ||
		got.original.ListID == "") {
		classes = append(classes, "returned original's Message-ID or List-Id not read")
	}
	same := r.Category == want.Category && r.Severity == want.Severity && r.Suppress == want.Suppress
	switch {
	case len(got.failed) > 1 && same:
		classes = append(classes, "other addresses (named in the reply) reported as failed recipients")
	case len(got.failed) > 1:
		// The text reader took an address inside the reply for another
		// recipient and gave it the words after it.
		mark := ""
		if r.Suppress && !want.Suppress {
			mark = " [FALSE SUPPRESSION]"
		}
		classes = append(classes, "the reply split at an address it names: that address reported as failed, "+
			"the recipient's diagnostic cut short"+mark)
	case !same:
		classes = append(classes, wrapVerdictClass(w, f, want, r))
	}
	return classes
}

// wrapVerdictClass explains why r's verdict differs from want's. The class
// names the mechanism; the verdicts are in the examples, except a false
// suppression, which is marked in the class.
func wrapVerdictClass(w wrapFormat, f *wrapFailure, want, r *Recipient) string {
	mark := ""
	if r.Suppress && !want.Suppress {
		mark = " [FALSE SUPPRESSION]"
	}
	phrase := wrapRulePhrase(r.Rule)
	switch {
	case strings.Contains(r.Rule, "+stage_unknown") && !strings.Contains(want.Rule, "+stage_unknown"):
		return "stage-unknown guard withholds suppression (decide: +stage_unknown)" + mark
	case w.stage && f.stage != "" && r.Command != f.stage:
		return fmt.Sprintf("stage %s not read from the wrapper's words%s", f.stage, mark)
	case strings.Contains(want.Rule, "+given_up") && !strings.Contains(r.Rule, "+given_up"):
		return "given_up needs the RCPT stage (givenUpAtRCPT)" + mark
	case phrase != "" && !strings.Contains(wrapNorm(f.reply), phrase):
		return fmt.Sprintf("the wrapper's own words read as the failure: %q%s", phrase, mark)
	case r.SMTPCode != want.SMTPCode || r.Status != want.Status:
		return "reply code or status lost: the diagnostic was cut short" + mark
	case wrapNorm(r.Diagnostic) != wrapNorm(want.Diagnostic):
		return fmt.Sprintf("the wrapper's words in the diagnostic change a guard (%s -> %s)%s",
			wrapRuleFamily(want.Rule), wrapRuleFamily(r.Rule), mark)
	}
	return fmt.Sprintf("same facts, other verdict (%s -> %s)%s", wrapRuleFamily(want.Rule), wrapRuleFamily(r.Rule), mark)
}

// wrapRulePhrase is the phrase a text rule matched: "user unknown" in
// "text:mailbox_unknown:user unknown+stage_unknown", or "".
func wrapRulePhrase(rule string) string {
	head, _, _ := strings.Cut(rule, "+")
	parts := strings.SplitN(head, ":", 3)
	if len(parts) < 3 || !strings.HasSuffix(parts[0], "text") {
		return ""
	}
	return parts[2]
}

func wrapIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func wrapSup(b bool) string {
	if b {
		return "suppress"
	}
	return "keep"
}

// wrapRuleFamily is a rule without its phrase: "text:mailbox_unknown:user
// unknown+stage_unknown" is "text:mailbox_unknown+stage_unknown".
func wrapRuleFamily(rule string) string {
	head, mods, _ := strings.Cut(rule, "+")
	if parts := strings.SplitN(head, ":", 3); len(parts) == 3 {
		head = parts[0] + ":" + parts[1]
	}
	if mods != "" {
		return head + "+" + mods
	}
	return head
}

// wrapReport gathers the disagreements by class.
type wrapReport struct {
	checked int
	classes map[string]*wrapClass
	// stageDecides counts, by command, the failures whose verdict the
	// command decides: stage-less wrappers may differ there.
	stageDecides map[string]int
}

type wrapClass struct {
	count    int
	wrappers map[string]int
	examples []string
}

func newWrapReport() *wrapReport {
	return &wrapReport{classes: map[string]*wrapClass{}, stageDecides: map[string]int{}}
}

func (rep *wrapReport) add(wrapper string, f *wrapFailure, class string, want *Recipient, got wrapOutcome) {
	cl := rep.classes[class]
	if cl == nil {
		cl = &wrapClass{wrappers: map[string]int{}}
		rep.classes[class] = cl
	}
	cl.count++
	cl.wrappers[wrapper]++
	ex := fmt.Sprintf("[%s] %s <%s> stage=%q reply=%q", wrapper, f.source, f.addr, f.stage, f.reply)
	if want != nil {
		ex += fmt.Sprintf("\n      want %s/%s/%s rule %s", want.Category, want.Severity, wrapSup(want.Suppress), want.Rule)
	}
	if r := got.find(f.addr); r != nil {
		d := r.Diagnostic
		if len(d) > 200 {
			d = d[:200] + "..."
		}
		ex += fmt.Sprintf("\n      got  %s/%s/%s rule %s (status %q code %d command %q)\n      got diagnostic %q",
			r.Category, r.Severity, wrapSup(r.Suppress), r.Rule, r.Status, r.SMTPCode, r.Command, d)
	} else {
		var addrs []string
		for _, o := range got.failed {
			addrs = append(addrs, o.Address)
		}
		ex += fmt.Sprintf("\n      got  kind %s, failed %q", got.kind, addrs)
	}
	cl.examples = append(cl.examples, ex)
}

func (rep *wrapReport) disagreements() int {
	n := 0
	for _, cl := range rep.classes {
		n += cl.count
	}
	return n
}

// fail reports one error per class, with its count and first examples, and
// with full set every example.
func (rep *wrapReport) fail(t *testing.T, full bool) {
	t.Helper()
	names := wrapSortedKeys(rep.classes)
	sort.SliceStable(names, func(i, j int) bool { return rep.classes[names[i]].count > rep.classes[names[j]].count })
	for _, name := range names {
		cl := rep.classes[name]
		var ws []string
		for _, w := range wrapSortedKeys(cl.wrappers) {
			ws = append(ws, fmt.Sprintf("%s %d", w, cl.wrappers[w]))
		}
		n := min(3, len(cl.examples))
		t.Errorf("%d disagreements: %s [%s]\n    %s", cl.count, name, strings.Join(ws, ", "),
			strings.Join(cl.examples[:n], "\n    "))
		if full {
			t.Logf("class %q, all %d:\n    %s", name, cl.count, strings.Join(cl.examples, "\n    "))
		}
	}
}

func wrapSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestWrapFormatsReadable checks the harness itself on a plain failure:
// every wrapper is taken for a bounce of the one recipient, with its
// returned original, and every wrapper that has a place for the SMTP
// command gets it read back. A wrapper failing here is written wrongly,
// not the classifier; TestWrapperIndependence's classes are then the
// classifier's. (The greeting, CONN, is left out: qmail's "but greeting
// failed" and Sendmail's command-less transcript are not read today, one
// of TestWrapperIndependence's classes.)
func TestWrapFormatsReadable(t *testing.T) {
	c := New(Options{})
	for _, stage := range []string{"RCPT", "DATA", "MAIL", "HELO", ""} {
		f := &wrapFailure{
			id: 1, addr: "kim@example.org", sender: "bounces@sender.example", status: "5.1.1", code: 550,
			reply: "550 5.1.1 <kim@example.org>: Recipient address rejected: User unknown in local recipient table",
			stage: stage,
		}
		for _, w := range wrapFormats {
			got := wrapClassify(c, w.wrap(f))
			r := got.find(f.addr)
			switch {
			case got.err != nil:
				t.Errorf("%s/%q: Classify: %v", w.name, stage, got.err)
			case r == nil || len(got.failed) != 1:
				t.Errorf("%s/%q: failed recipients = %+v (kind %s), want %s alone", w.name, stage, got.failed, got.kind, f.addr)
			case w.stage && r.Command != stage:
				t.Errorf("%s/%q: command = %q, want %q", w.name, stage, r.Command, stage)
			case r.SMTPCode != f.code || r.Status != f.status:
				t.Errorf("%s/%q: code, status = %d, %q, want %d, %q", w.name, stage, r.SMTPCode, r.Status, f.code, f.status)
			case got.original.MessageID != "wrap-1@sender.example" || got.original.ListID != "news.sender.example":
				t.Errorf("%s/%q: original Message-ID, List-Id = %q, %q", w.name, stage, got.original.MessageID, got.original.ListID)
			}
		}
	}
}
