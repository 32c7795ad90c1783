package classify

import (
	"strconv"
	"strings"
)

// The decision table: which failures each row covers and what follows.
//
// A failed recipient is first read into evidence (see readEvidence): the
// status that decides (the Status field, or the one the remote quotes in
// its reply when the two disagree), the class of the failure (2, 4 or 5),
// the SMTP stage it answered, and the leading phrase of its words: the
// first phrase family, in the order of phraseRules, that the diagnostic
// contains, else the first of weakRules. Weak phrases are read only where
// the stage leaves room for them (not at the greeting, HELO or MAIL FROM),
// and a weak dead-address phrase ("mailbox unavailable") gives way to a
// status that names another cause ("550 5.7.1 ... mailbox unavailable").
//
// Then the rows of decisionTable are tried in order; the first whose every
// condition holds decides the category and whether the address may be
// suppressed. Precedence is the row order, and nothing else: a row placed
// after another that covers all its cases can never decide, which
// TestDecisionRowsReachable catches through each row's example.
//
// After the table, a few documented steps adjust the outcome (finish):
// a 521 reply, severity and temporariness, a DSN's given-up retries, a
// null MX, the bounce of our own auto-reply.

// supWhen says when a row lets the address be suppressed.
type supWhen uint8

const (
	supNever     supWhen = iota // the sender's side or passing trouble: never
	supNo                       // a dead address not confirmed: recorded, not suppressed
	supPermanent                // a dead address: suppressed unless the failure is temporary
)

func (s supWhen) String() string {
	switch s {
	case supNo:
		return "no (recorded)"
	case supPermanent:
		return "yes, if permanent"
	}
	return "never"
}

// row is one line of the decision table.
type row struct {
	// name identifies the row in `bouncer rules` and in tests.
	name string

	// Conditions; an empty one always holds.
	action string   // the DSN action ("delayed")
	text   string   // the leading phrase's family: a category name, "dead" (any dead-address family), "none"
	strong bool     // the leading phrase is a strong one
	stage  string   // the SMTP stages, space separated; "?" is unknown
	status string   // status patterns, space separated: "x.1.7", "x.7.27"
	code   int      // the reply code
	names  []string // tests on who and what the words name (see wordTests); "!" negates

	// What follows.
	category Category // "" keeps the leading phrase's family
	suppress supWhen
	rule     string // the rule reported: see ruleText for its placeholders

	why     string
	example Recipient // a failure this row decides (TestDecisionRowsReachable)
}

// decisionTable is the table, in order of precedence.
var decisionTable = []row{
	{name: "delayed", action: "delayed", category: Delayed, rule: "action:delayed",
		why:     "Action: delayed is a warning: the reporting MTA is still trying",
		example: Recipient{Action: "delayed", Status: "4.4.1", Diagnostic: "421 4.4.1 Connection timed out"}},
	{name: "suppression_list", text: "suppression_list", category: Unknown, rule: "suppression_list:{phrase}",
		why:     "the sending service refused on its own suppression list: no receiving server was asked, so it proves nothing",
		example: Recipient{Diagnostic: "Amazon SES has suppressed sending to this address because it has a recent history of bouncing"}},

	// The sender's problems, and full or too large: the words decide.
	textRow(RateLimited, "421 4.7.0 Try again later, closing connection: too many connections",
		"the sender is sending too fast or was greylisted"),
	textRow(MailboxFull, "552 5.2.2 Mailbox full",
		"the mailbox exists and may empty: the store's policy decides after repeats"),
	textRow(MessageTooLarge, "552 5.3.4 Message size exceeds fixed limit",
		"the message, not the address, was refused"),
	textRow(Policy, "550 5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy",
		"the message or sender failed a policy (SPF, DKIM, DMARC, TLS, headers, the recipient's own filter)"),
	textRow(AuthRequired, "530 5.7.0 Authentication required",
		"our client did not authenticate"),
	textRow(RelayDenied, "553 5.7.1 <x@example.org>: Relay access denied",
		"the server we reached does not relay for us: a routing problem of ours"),
	textRow(SenderRejected, "553 5.1.8 <s@example.com>: Sender address rejected: Domain not found",
		"the envelope sender was refused"),
	textRow(Blocked, "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
		"our sending host or domain is blocklisted or distrusted"),
	textRow(ContentRejected, "550 5.7.1 Message rejected as spam by Content Filtering",
		"the content was refused as spam or a virus"),

	// Dead-address words: first what shows they are not about the
	// recipient's address, then what shows they are.
	{name: "destination_null_mx", text: string(DomainUnknown), stage: "? RCPT", status: "x.7.27",
		names: []string{"no_sender_words", "!names_other_domain"}, suppress: supPermanent,
		rule: "{text}+destination_null_mx",
		why:  "Sendmail's own 5.7.27 verdict on the recipient domain's null MX (RFC 7505): nothing points at the sender",
		example: Recipient{Address: "x@example.org", Status: "5.7.27",
			Diagnostic: "550 Host does not accept mail"}},
	{name: "sender_stage", text: "dead", status: "x.1.7 x.1.8 x.7.27", category: SenderRejected,
		rule: "text:sender_rejected:{phrase}+sender_stage",
		why:  "a sender status (RFC 3463 X.1.7, X.1.8; RFC 7505 X.7.27): the dead address is the sender's",
		example: Recipient{Status: "5.1.7",
			Diagnostic: "550 5.1.7 No such domain neko.example.com."}},
	{name: "sender_stage_mail", text: "dead", stage: "MAIL", category: SenderRejected,
		rule: "text:sender_rejected:{phrase}+sender_stage",
		why:  "answered to MAIL FROM, before any recipient was named: the dead address is the sender's",
		example: Recipient{Command: "MAIL",
			Diagnostic: "550 Domain does not exist"}},
	{name: "sender_named", text: "dead", names: []string{"names_sender"}, category: SenderRejected,
		rule: "text:sender_rejected:{phrase}+sender_named",
		why:  "the words before the phrase name the sender (\"Sender address does not exist\"), even at RCPT TO",
		example: Recipient{Command: "RCPT",
			Diagnostic: "550 Sender address does not exist"}},
	{name: "before_rcpt", text: "dead", stage: "CONN HELO", category: Blocked,
		rule: "text:blocked:{phrase}+before_rcpt",
		why:  "refused at the greeting or HELO, before any recipient: about our sending host",
		example: Recipient{Command: "HELO",
			Diagnostic: "501 5.5.4 Invalid domain name"}},
	{name: "filtered_after_data", text: string(MailboxUnknown), stage: "DATA",
		names: []string{"!rcpt_evidence", "!names_no_account"}, category: Policy,
		rule: "text:filtered_after_data:{phrase}",
		why:  "\"user unknown\" answered to the message, after the recipient was accepted: the recipient's filter",
		example: Recipient{Command: "DATA",
			Diagnostic: "550 Unknown user x@example.org"}},
	{name: "stage_unknown", text: string(MailboxUnknown), stage: "?",
		names: []string{"!rcpt_evidence"}, suppress: supNo,
		rule: "{text}+stage_unknown",
		why:  "\"user unknown\" with nothing showing it answered RCPT TO (no 5.1.x, no echoed address, no directory words): filters say it after DATA too",
		example: Recipient{
			Diagnostic: "550 : User unknown"}},
	deadRow(MailboxDisabled, "550 5.2.1 <x@example.org>: Account disabled",
		"the mailbox exists no more or refuses all mail"),
	deadRow(AddressInvalid, "553 5.1.3 <x@example..org>: Recipient address syntax error",
		"the address cannot be delivered as written"),
	deadRow(MailboxUnknown, "550 5.1.1 <x@example.org>: Recipient address rejected: User unknown in local recipient table",
		"the recipient's server says the mailbox does not exist"),
	deadRow(DomainUnknown, "550 5.1.2 Host unknown",
		"the recipient's domain does not exist or takes no mail"),

	// Passing trouble.
	textRow(Network, "connect to mx.example.org[192.0.2.1]:25: Connection timed out",
		"the network or DNS failed on the way"),
	textRow(Expired, "retry timeout exceeded",
		"the reporting MTA gave up after retrying"),
	textRow(System, "451 4.3.0 Internal error",
		"the remote server failed"),

	// No words decided: the stage, then the status, then the code.
	{name: "stage_conn", text: "none", stage: "CONN HELO", category: Blocked, rule: "command:{stage}",
		why:     "refused at the greeting or HELO: about our sending host",
		example: Recipient{Command: "CONN", Diagnostic: "554 go away"}},
	{name: "stage_mail", text: "none", stage: "MAIL", category: SenderRejected, rule: "command:{stage}",
		why:     "refused at MAIL FROM: about our sender",
		example: Recipient{Command: "MAIL", Diagnostic: "550 go away"}},
	{name: "status", text: "none", status: "known", suppress: supPermanent, rule: "status:{status}",
		why:     "the enhanced status code names the cause (RFC 3463; statusRules)",
		example: Recipient{Status: "5.1.1", Diagnostic: "550 5.1.1 go away"}},
	{name: "unknown_status", text: "none", status: "any", category: Unknown, rule: "status:{status}",
		why:     "nothing says whose fault it is: kept for review",
		example: Recipient{Status: "5.0.0", Diagnostic: "550 5.0.0 go away"}},
	{name: "unknown_code", text: "none", code: -1, category: Unknown, rule: "code:{code}",
		why:     "nothing says whose fault it is: kept for review",
		example: Recipient{Diagnostic: "550 go away"}},
	{name: "unknown", category: Unknown, rule: "none",
		why:     "nothing at all: kept for review",
		example: Recipient{Diagnostic: "it did not work"}},
}

// textRow is the row of a family whose words decide alone.
func textRow(c Category, example, why string) row {
	return row{name: string(c), text: string(c), rule: "{text}", why: why,
		example: Recipient{Diagnostic: example}}
}

// deadRow is the row of a dead-address family that passed the rows above.
func deadRow(c Category, example, why string) row {
	return row{name: string(c), text: string(c), suppress: supPermanent, rule: "{text}", why: why,
		example: Recipient{Command: "RCPT", Diagnostic: example}}
}

// wordTests are the tests a row's names field may ask for: who and what the
// words of the diagnostic name.
var wordTests = map[string]struct {
	doc string
	fn  func(ev *evidence) bool
}{
	"names_sender": {"the four words before the phrase, in its clause, name the sender (sender, from, your, return-path...)",
		func(ev *evidence) bool { return namesSender(ev.text, ev.phrase) }},
	"no_sender_words": {"the reply says \"does not accept mail\" with no word of the sender's side (sender, from, envelope, return, you); the reporting MTA's own prose before the reply code (\"your message to ...\") does not count",
		func(ev *evidence) bool { return noSenderWords(ev.reply) }},
	"names_other_domain": {"the reply names a domain other than the recipient's",
		func(ev *evidence) bool { return namesOtherDomain(ev.reply, ev.r.Address) }},
	"names_no_account": {"the words say the account does not exist (\"This user doesn't have a example.com account\"): a mailbox host's own lookup, which some (Yahoo) answer after DATA",
		func(ev *evidence) bool { return namesNoAccount(ev.text) }},
	"rcpt_evidence": {"a recipient status (X.1.x but X.1.0, X.1.7, X.1.8), the reply echoing the address (\"<x@y>: User unknown\"), a mailbox host's directory words, or a server's reply (with a code) naming no account",
		func(ev *evidence) bool {
			return recipientStatus(ev.status) || directoryPhrase(ev.text) || echoesRecipient(ev.text) ||
				ev.r.SMTPCode != 0 && namesNoAccount(ev.text)
		}},
}

// evidence is what the table reads of one failed recipient.
type evidence struct {
	r        *Recipient
	text     string // the diagnostic, normalized, without the reporting MTA's prose
	reply    string // text from the remote's reply code on (all of text when there is none)
	status   string // the status that decides
	conflict string // "+status_field:X" when the quoted status overruled the field
	class    byte   // '2', '4', '5' or 0
	stage    string // the SMTP stage: the bounce's word for it, else inferStage's; "?" unknown
	family   string // the leading phrase's family ("" none)
	phrase   string
	weak     bool
}

// readEvidence reads a failed recipient for the table.
func readEvidence(r *Recipient) *evidence {
	ev := &evidence{r: r, text: withoutProse(normalize(r.Diagnostic))}
	ev.reply = replyPart(ev.text, r.SMTPCode)
	quoted := quotedStatus(r.Diagnostic)
	ev.status, ev.conflict = decidingStatus(r.Status, quoted)
	ev.class = statusClass(ev.status, r.SMTPCode)
	if r.SMTPCode >= 400 && r.SMTPCode < 500 && ev.class == '5' && ev.status == quoted {
		ev.class = '4' // "451 ... 5.x.x" is still a temporary reply
	}
	if p := sendingSuppression(ev.text); p != "" {
		ev.family, ev.phrase = "suppression_list", p
		return ev
	}
	c, p, weak := matchPhrase(ev.text, r.Command != "CONN" && r.Command != "HELO" && r.Command != "MAIL")
	if weak && deadCategory(c) {
		if sc := statusCategory(ev.status); sc != "" && sc != Unknown && !deadCategory(sc) {
			// "550 5.7.1 Requested action not taken: mailbox unavailable":
			// words this general do not outrank a status that names a
			// policy, network or system cause.
			c, p, weak = "", "", false
		}
	}
	ev.family, ev.phrase, ev.weak = string(c), p, weak
	ev.stage = inferStage(r)
	return ev
}

// inferStage is the SMTP stage a failure answered: what the bounce says
// (Recipient.Command), else what the reply code shows, else "?".
//
// A 551 or 553 reply shows RCPT TO: RFC 5321 §4.3.2 gives those codes only
// to MAIL FROM and RCPT TO, never to DATA, and a refusal of the sender's
// own address names the sender, which the rows test first. This is what
// gives the same "553 sorry, rcpt user invalid" the same verdict whether or
// not its wrapper has a place for the stage: Exim and Postfix write it,
// Gmail and Office 365 do not.
func inferStage(r *Recipient) string {
	switch {
	case r.Command != "":
		return r.Command
	case r.SMTPCode == 551 || r.SMTPCode == 553:
		return "RCPT"
	}
	return "?"
}

// decidingStatus reconciles the Status field with the status the remote
// quotes in its reply: the quote decides when they differ, as the remote
// server's own word (the field is often the reporting MTA's guess from the
// reply code), and a generic field (X.0.0) gives way to a specific quote of
// the same class. conflict records an overruled specific field.
func decidingStatus(field, quoted string) (status, conflict string) {
	switch {
	case quoted == "" || quoted == field:
		return field, ""
	case field == "":
		return quoted, ""
	case generic(field) && quoted[0] == field[0]:
		return quoted, "" // "Status: 5.0.0" says less than the reply's 5.2.2
	case !generic(quoted):
		return quoted, "+status_field:" + field
	}
	return field, ""
}

// matches reports whether every condition of w holds for ev.
func (w *row) matches(ev *evidence) bool {
	r := ev.r
	switch {
	case w.action != "" && r.Action != w.action,
		w.text != "" && !familyIs(ev.family, w.text),
		w.strong && ev.weak,
		w.stage != "" && !inList(w.stage, ev.stage),
		w.status != "" && !statusMatches(w.status, ev.status),
		w.code > 0 && r.SMTPCode != w.code,
		w.code < 0 && r.SMTPCode == 0:
		return false
	}
	for _, n := range w.names {
		want := !strings.HasPrefix(n, "!")
		if wordTests[strings.TrimPrefix(n, "!")].fn(ev) != want {
			return false
		}
	}
	return true
}

// familyIs reports whether the leading phrase's family is the one a row
// names: a family, "dead" for any dead-address family, "none" for none.
func familyIs(family, want string) bool {
	switch want {
	case "none":
		return family == ""
	case "dead":
		return deadCategory(Category(family))
	}
	return family == want
}

func inList(list, s string) bool {
	for f := range strings.FieldsSeq(list) {
		if f == s {
			return true
		}
	}
	return false
}

// statusMatches reports whether st matches one of the patterns of list:
// "x.1.7" (any class), "known" (a status statusRules maps to a category
// other than unknown), "any" (some status).
func statusMatches(list, st string) bool {
	for p := range strings.FieldsSeq(list) {
		switch {
		case p == "any" && st != "":
			return true
		case p == "known":
			if c := statusCategory(st); c != "" && c != Unknown {
				return true
			}
		case strings.HasPrefix(p, "x.") && len(st) > 1 && st[1:] == p[1:]:
			return true
		}
	}
	return false
}

// decideRow returns the first row of the table that holds for ev.
func decideRow(ev *evidence) *row {
	for i := range decisionTable {
		if decisionTable[i].matches(ev) {
			return &decisionTable[i]
		}
	}
	return &decisionTable[len(decisionTable)-1]
}

// ruleText fills a row's rule: {text} is "text:<family>:<phrase>" (with a
// "weak_" prefix for a weak phrase), {phrase}, {status}, {stage} and
// {code} what they say.
func ruleText(w *row, ev *evidence) string {
	s := w.rule
	if strings.Contains(s, "{text}") {
		t := "text:" + ev.family + ":" + ev.phrase
		if ev.weak {
			t = "weak_" + t
		}
		s = strings.Replace(s, "{text}", t, 1)
	}
	return fillPlaceholders(s, ev)
}

// fillPlaceholders replaces {phrase}, {status}, {stage} and {code} in s in
// one pass, left to right, as a strings.Replacer of the four would; built
// per recipient, that Replacer was most of what classifying a DSN of
// 75,000 recipients allocated.
func fillPlaceholders(s string, ev *evidence) string {
	if strings.IndexByte(s, '{') < 0 {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s) + len(ev.phrase))
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			sb.WriteString(s)
			return sb.String()
		}
		sb.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "{phrase}"):
			sb.WriteString(ev.phrase)
			s = s[len("{phrase}"):]
		case strings.HasPrefix(s, "{status}"):
			sb.WriteString(ev.status)
			s = s[len("{status}"):]
		case strings.HasPrefix(s, "{stage}"):
			sb.WriteString(ev.stage)
			s = s[len("{stage}"):]
		case strings.HasPrefix(s, "{code}"):
			sb.WriteString(strconv.Itoa(ev.r.SMTPCode))
			s = s[len("{code}"):]
		default:
			sb.WriteByte('{')
			s = s[1:]
		}
	}
}

// noSenderWords reports whether text says "does not accept mail" with no
// word of the sender's side.
func noSenderWords(text string) bool {
	if !strings.Contains(text, "does not accept mail") {
		return false
	}
	for _, w := range []string{"sender", "from", "envelope", "return", "you"} {
		if strings.Contains(text, w) {
			return false
		}
	}
	return true
}

// decide applies the table, then the steps after it, to one recipient.
func decide(r *Recipient, in facts) decision {
	ev := readEvidence(r)
	w := decideRow(ev)
	cat := w.category
	switch {
	case cat == "" && w.name == "status":
		cat = statusCategory(ev.status)
	case cat == "":
		cat = Category(ev.family)
	}
	d := decision{status: ev.status, category: cat, rule: ruleText(w, ev), row: w.name}
	if cat == Delayed {
		d.severity = None
		return d
	}
	d.rule += ev.conflict
	finish(&d, w, ev, in)
	return d
}

// finish runs the documented steps after the table:
//
//  1. A 521 reply (RFC 7504: the host accepts no mail at all) that left the
//     failure system or unknown makes it domain_unknown.
//  2. Severity follows the category (severityOf); a failure of no class
//     that says nothing more is hard; a temporary (4xx) one is soft.
//  3. Suppress: only a row that allows it, only a dead-address category,
//     only a permanent failure.
//  4. Given up at RCPT TO: a temporary "user unknown" answered to RCPT TO
//     with a 4.1.x status, that the reporting MTA's own DSN says it has
//     stopped retrying (Action: failed), suppresses all the same.
//  5. A null MX (RFC 7505) is the domain's own permanent statement that it
//     takes no mail, whatever class the reporting MTA gave it.
//  6. The bounce of our own auto-reply never suppresses a list member.
func finish(d *decision, w *row, ev *evidence, in facts) {
	allow := w.suppress == supPermanent
	if ev.r.SMTPCode == 521 && (d.category == System || d.category == Unknown) {
		d.category, d.rule, allow = DomainUnknown, "code:521"+ev.conflict, true
	}
	d.severity = severityOf(d.category)
	switch {
	case d.category == Unknown && ev.class == 0:
		d.severity = Hard
	case ev.class == '4' && d.severity == Hard:
		d.severity = Soft
		d.rule += "+temporary"
	}
	d.suppress = allow && deadCategory(d.category) && ev.class != '4'
	if ev.class == '4' && givenUpAtRCPT(ev.r, in, d.category, ev.family != "" && !ev.weak, ev.status) {
		d.suppress = true
		d.rule += "+given_up"
	}
	if d.category == DomainUnknown && nullMX(ev.text) && !d.suppress {
		d.suppress = true
		d.rule += "+null_mx"
	}
	if d.suppress && in.autoReply {
		d.suppress = false
		d.rule += "+original_auto_reply"
	}
}

// namesNoAccount reports whether text says the recipient has no account:
// "doesn't have a" or "does not have a", then "account" within a few words.
func namesNoAccount(text string) bool {
	for _, p := range []string{"doesn't have a", "does not have a", "does not have an", "doesn't have an"} {
		if i := strings.Index(text, p); i >= 0 {
			rest := text[i+len(p):]
			if len(rest) > 60 {
				rest = rest[:60]
			}
			if strings.Contains(rest, " account") {
				return true
			}
		}
	}
	return false
}

// wrapperProse are the words a reporting MTA writes about its own attempt,
// around the remote's reply, that say nothing of the reason: qmail's
// "Connected to 192.0.2.1 but sender was rejected." (the stage, read by
// commandIn) and "Giving up on 192.0.2.1." after any permanent error. They
// are blanked before the phrases are matched, so that the remote's words
// decide whichever MTA wrapped them.
var wrapperProse = []string{"but sender was rejected", "giving up on"}

// withoutProse blanks wrapperProse in the normalized text.
func withoutProse(text string) string {
	for _, p := range wrapperProse {
		if strings.Contains(text, p) {
			text = strings.ReplaceAll(text, p, strings.Repeat(" ", len(p)))
		}
	}
	return text
}

// replyPart returns text from where the remote's reply code stands, or all
// of text: what comes before it is the reporting MTA's account ("There was
// a problem delivering your message to ...", "Remote Server returned").
func replyPart(text string, code int) string {
	if code == 0 {
		return text
	}
	c := strconv.Itoa(code)
	for i := 0; ; {
		j := strings.Index(text[i:], c)
		if j < 0 {
			return text
		}
		j += i
		if (j == 0 || !isAlnum(text[j-1]) && text[j-1] != '.') && (j+3 == len(text) || !isAlnum(text[j+3])) {
			return text[j:]
		}
		i = j + 1
	}
}

// rowWhy returns the reason of the table's row called name, or "".
func rowWhy(name string) string {
	for i := range decisionTable {
		if decisionTable[i].name == name {
			return decisionTable[i].why
		}
	}
	return ""
}
