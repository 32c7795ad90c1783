package classify

import (
	"strings"
)

// The words, codes and small tests the decision table (table.go) reads:
// the phrase families (phraseRules, strong, then weakRules), the status
// codes (statusRules), and the tests on who the words name. The order of
// the families is the order a leading phrase is found in: the sender's
// problems before the recipient's, so that "553 5.7.1 Not an open relay"
// is relay_denied and "553 sorry, no mailbox here by that name" is
// mailbox_unknown.

// phraseRule maps phrases of a diagnostic to a category. A phrase matches
// on word boundaries; one that ends in '*' is a stem that any word ending
// may follow ("blacklist*" is in "blacklisted"); '#' stands for a number.
type phraseRule struct {
	category Category
	phrases  []string // lower case, single spaces
}

// phraseRules is the ordered table of step 2.
var phraseRules = []phraseRule{
	// Things that look like a dead mailbox but are not: the remote refused
	// the sending host, or was speaking of the sender.
	{RateLimited, []string{
		"frequency limited", "rate limit*", "ratelimit*", "rate-limit*", "receiving mail at a rate",
		"too many connections", "too many concurrent", "too many sessions", "connection rate",
		"too many messages", "sending rate", "exceeded the rate", "throttl*", "greylist*", "grey-list*",
		"graylist*", "gray-list*", "too many recipients", "try again in a few minutes",
		"sending quota", "send quota", "daily quota", "hourly quota",
	}},
	{MailboxFull, []string{
		"mailbox full", "mailbox is full", "mailbox is over", "mailfolder is full", "over quota",
		"overquota", "quota exceeded", "exceeded quota", "exceeds quota", "quota exceed*",
		"disk quota", "user is over", "account is over quota", "exceeded storage allocation",
		"mailbox has exceeded", "mailbox exceeded", "storage quota", "full mailbox", "mailbox size limit",
		"insufficient disk space", "out of storage", "no space left on the mailbox", "box is full",
		"is over its quota", "exceeded their quota", "over their quota", "mailbox size exceeded",
		"mailbox exceeds allowed size", "mailbox exceeds its size",
	}},
	{MessageTooLarge, []string{
		"message too large", "message is too large", "message too big", "message is too big",
		"message size exceeds", "size exceeds", "exceeds the maximum size", "exceeds size limit",
		"message length exceeds", "too large for this recipient", "recipsizelimit", "mail size",
		"message exceeds", "size limit exceeded", "exceeded maximum message size", "file too large",
	}},
	{Policy, []string{
		"dmarc*", "spf*", "dkim*", "sender is unauthenticated", "unauthenticated email",
		"not accepted for policy reasons", "policy violation", "local policy", "policy reasons",
		"denied by policy",
		// The recipient's own filter: the mailbox exists and chose to refuse
		// ("rejected due to recipient preferences", even under 5.1.1).
		"recipient preferences", "recipient's preferences", "recipient preference",
		"blocked by the recipient", "blocked by recipient", "recipient has blocked",
		"recipient's filter", "recipient filter", "recipient's spam filter", "recipient's rules",
		// A mailing list refusing our post: the list exists and chose not
		// to take it; nothing about the address.
		"not a member of", "non-members are not allowed", "not allowed to post", "do not have permission to post",
		"posting is restricted", "closed list", "only members can post", "posting to this list is restricted",
		"header error", "multiple addresses in from", "duplicate header*", "not rfc 5322", "rfc 5322",
		"rfc5322", "rfc 2822", "rfc2822", "not compliant", "host network not allowed",
		"starttls", "tls required", "tls is required", "encryption required", "must issue a starttls",
	}},
	{AuthRequired, []string{
		"authentication required", "authentication is required", "auth required", "authrequired",
		"requires authentication", "not logged in", "must authenticate", "please authenticate",
		"must be authenticated", "unauthenticated senders", "authentication failed",
		"not authorized to send", "smtp auth*", "sender not authenticated", "need authentication",
		"authentication needed", "delivery not authorized", "not authorized to relay",
		"send mail as",
	}},
	{RelayDenied, []string{
		"not an open relay", "relay access denied", "relaying denied", "relay denied",
		"relay not permitted", "relaying not permitted", "relaying not allowed", "relay not allowed",
		"relaying disallowed", "relay prohibited", "relaying prohibited", "unable to relay",
		"we do not relay", "use me as a relay", "configured to relay", "not permitted to relay",
		"not configured to let you", "list of allowed rcpthosts", "relaying blocked", "relaying is blocked",
		"forwarding denied", "does not accept mail sent to", "no relaying", "relaying to",
		"relay attempt", "open relay denied",
	}},
	{SenderRejected, []string{
		"sender address rejected", "domain of sender address", "sender domain", "envelope sender",
		"badmailfrom", "null sender", "your email address is denied", "sender was rejected",
		"sender rejected", "sender verify failed", "sender verification failed", "unroutable sender",
		"unrouteable sender", "sender denied", "invalid sender", "bad sender", "sender address is invalid",
		"from: domain is invalid", "sender's domain", "sender address denied", "sender unknown",
		"sender is not allowed", "sender not allowed", "mail from address", "return path",
		"to/from an address that has been blacklisted", "you cannot send e-mail to yourself",
		"your e-mail is redundant", "mail from rejected", "sender email address rejected",
		"sender address domain", "address of the sender",
		"does not accept mail from", "does not accept email from", "does not accept messages from",
		"doesn't accept mail from", "not accept mail from", "not accepting mail from",
	}},
	{Blocked, []string{
		"blacklist*", "blocklist*", "black list*", "block list*", "spamhaus", "spamcop", "sorbs",
		"barracudacentral", "dnsbl", "rbl", "banned sending ip", "client host rejected",
		"client host blocked", "helo command rejected", "ehlo command rejected", "client host unknown",
		"connections will not be accepted", "connections not accepted",
		"not accepting connections", "permanently deferred", "temporarily deferred", "[tss0*",
		"reputation", "reverse dns", "ptr record*", "no ptr", "dns ptr", "ptr resource record", "rdns",
		"refused to talk to me",
		"service refuse*", "blocked using", "invalid ip for sending", "is an open relay",
		"ip address blocked", "ip blocked", "my name was rejected",
		"dynamic ip*", "dial-up", "dialup", "residential", "not allowed to send mail from",
	}},
	{ContentRejected, []string{
		"message filtered", "spam*", "virus*", "malware", "content rejected", "message content",
		"blacklisted url", "uribl", "surbl", "phishing",
		"prohibited attachment*", "mail rejete", "bulk mail*",
		"content filter*", "content presents", "unsolicited", "content denied",
	}},

	// The recipient's problems.
	{MailboxDisabled, []string{
		"temporary locked", "temporarily locked", "tried to reach is disabled", "account is disabled", "account has been disabled", "account disabled", "disabled recipient",
		"mailbox disabled", "mailbox is disabled", "account is inactive", "inactive account",
		"account has been suspended", "account suspended", "account is suspended", "mailbox suspended",
		"account is blocked", "compte du destinataire est bloque", "no longer on server",
		"mailbox is no longer", "account is no longer", "address is no longer", "has moved", "discontinued", "mailbox is frozen",
		"account is frozen", "account has been frozen", "deactivated", "account expired",
		"account is locked", "account locked", "mailbox inactive", "inactive mailbox",
		"no longer accepts mail", "account closed", "account has been closed", "account is closed",
		"mailbox closed", "mailbox is closed", "mailbox has been removed", "mailbox has been deleted",
		"account has been removed", "account has been deleted",
		"mailbox is inactive", "account has expired", "account is expired",
	}},
	{AddressInvalid, []string{
		"address syntax", "not a valid rfc-5321 address", "not a valid rfc 5321", "bad address syntax",
		"syntax error in address", "malformed address", "invalid address format", "address is invalid",
		"bad recipient address syntax", "illegal address", "invalid mailbox name",
		"recipient address syntax",
	}},
	{MailboxUnknown, []string{
		"recipient address rejected: access denied", "recipient name is not recognized", "user unknown", "unknown user", "no such user", "invalid user", "no mailbox here",
		"no mail-box here", "address does not exist", "does not have a mailbox", "rcpt user invalid",
		"not a valid user", "validrcptto", "recipient doesn't exist", "recipient does not exist",
		"recipient not found", "recipnotfound", "recipientnotfound", "mailbox not found",
		"mailbox does not exist", "mailbox doesn't exist", "invalid recipient*", "unknown recipient*",
		"no such recipient*", "user not found", "address couldn't be found", "account that you tried to reach does not exist",
		"not listed in domino directory", "not listed in public name", "invalid final delivery userid",
		"no such mailbox", "unknown address", "user doesn't exist", "user does not exist",
		"doesn't have a", "invalid mailbox", "bad destination mailbox", "unknown local part",
		"inactive email address",
		"destinataire invalide", "is not a known user", "not our customer", "user not exist",
		"unknown or illegal alias",
		"not a valid mailbox",
		"recipient unknown", "addressee unknown", "no such local user", "user is unknown",
		"mailbox unknown", "unknown mailbox", "address unknown", "unknown account", "no such account",
		"no such address", "no such person", "not a valid recipient", "account does not exist",
		"account doesn't exist", "unknown local user", "bad recipient", "user invalid", "mailbox invalid",
		"no account by that name",
		"unknown local-part", "recipient not exist", "mailbox not exist", "no such email",
		"unknown email address", "email address is unknown", "no such login",
	}},
	{DomainUnknown, []string{
		"because the domain is not reachable", "host unknown", "domain does not exist", "no such domain", "unrouteable address",
		"unroutable address", "domain not found", "domain couldn't be found", "domain name not found",
		"host or domain name not found", "does not accept mail", "no mx record*", "no smtp service",
		"null mx", "nullmx", "domain is not valid", "domain not exist", "no route for",
		"invalid domain", "unknown domain", "domain unknown", "domain does not accept",
		"couldn't find a mail exchanger", "could not find a mail exchanger", "no mail exchanger",
		"dns lookup failure", "nxdomain", "unable to find mx", "no mx or a record",
	}},

	// Passing trouble.
	{Network, []string{
		"did not accept our requests to connect", "socket error", "connection timed out", "no route to host", "host not found, try again", "name service error",
		"unable to connect", "network is unreachable", "lost connection",
		"temporary failure in name resolution", "dns error", "routing loop", "hop count exceeded",
		"could not connect", "connection reset", "starttls",
	}},
	{Expired, []string{
		"delivery failed # attempts", "failed after # attempts", "retry timeout exceeded", "in the queue too long", "could not deliver for the last",
		"all hosts have been failing", "delivery time expired", "message expired", "envelope expired",
		"unable to deliver this message after", "retry time*",
		"no longer attempting", "message timed out", "delivery expired", "could not find a gateway",
		"too long in queue",
	}},
	{System, []string{
		"internal error", "system error", "server error", "local error",
		"mailer error", "pipe to |", "could not load", "insufficient system storage",
		"system not accepting", "operating system error", "transaction failed",
		"insufficient permission", "duplicated message-id",
		"error writing", "i/o error", "temporarily unable", "resources temporarily",
	}},
}

// weakRules is the table of step 3b: phrases too general to outrank what
// the SMTP command says.
var weakRules = []phraseRule{
	{Blocked, []string{"your ip", "ip address", "blocked by", "access denied", "connection refused"}},
	{ContentRejected, []string{"looks like", "suspicious", "attachment*", "mail rejected", "message rejected"}},
	{MailboxUnknown, []string{"mailbox unavailable", "mailbox not available", "no mailbox", "address not found", "invalid address", "recipient rejected", "no account", "mailbox is unavailable", "no valid recipients",
		"invalid email address"}},
	{Network, []string{"timed out"}},
	{Policy, []string{"tls", "certificate"}},
	{Expired, []string{"giving up", "gave up", "expired"}},
	{System, []string{"try again later", "please try later", "not available", "unavailable", "temporary failure"}},
}

// statusRules maps enhanced status codes (RFC 3463 §3, and the IANA
// registry's later additions) to categories: first the exact subject.detail,
// then the subject alone (".1." etc.).
var statusRules = map[string]Category{
	"1.1":  MailboxUnknown,  // bad destination mailbox address
	"1.2":  DomainUnknown,   // bad destination system address
	"1.3":  AddressInvalid,  // bad destination mailbox address syntax
	"1.4":  MailboxUnknown,  // destination mailbox address ambiguous
	"1.6":  MailboxDisabled, // destination mailbox has moved
	"1.7":  SenderRejected,  // bad sender's mailbox address syntax
	"1.8":  SenderRejected,  // bad sender's system address
	"1.0":  MailboxUnknown,  // other address status: at RCPT, the recipient's
	"1.10": DomainUnknown,   // recipient address has null MX (RFC 7505)
	"2.1":  MailboxDisabled, // mailbox disabled, not accepting messages
	"2.2":  MailboxFull,     // mailbox full
	"2.3":  MessageTooLarge, // message length exceeds administrative limit
	"3.1":  System,          // mail system full
	"3.2":  System,          // system not accepting network messages
	"3.4":  MessageTooLarge, // message too big for system
	"4.1":  Network,         // no answer from host
	"4.2":  Network,         // bad connection
	"4.3":  Network,         // directory server failure (DNS)
	"4.4":  DomainUnknown,   // unable to route
	"4.6":  Network,         // routing loop detected
	"4.7":  Expired,         // delivery time expired
	"7.1":  Policy,          // delivery not authorized, message refused
	"7.7":  ContentRejected, // message integrity failure
	"7.8":  AuthRequired,    // authentication credentials invalid
	"7.9":  Policy,          // authentication mechanism too weak
	"7.11": AuthRequired,    // encryption required
	"7.13": MailboxDisabled, // user account disabled
	"7.17": MailboxDisabled, // mailbox owner has changed
	"7.18": MailboxDisabled, // domain owner has changed
	"7.20": Policy,          // no passing DKIM signature
	"7.21": Policy,
	"7.22": Policy,
	"7.23": Policy,  // SPF validation failed
	"7.24": Policy,  // SPF validation error
	"7.25": Blocked, // reverse DNS validation failed
	"7.26": Policy,  // multiple authentication checks failed
	"7.27": SenderRejected,
	"7.28": Blocked,
	"2":    Unknown, // other mailbox status
	"3":    System,
	"4":    Network,
	"5":    Unknown, // protocol status: says nothing of fault
	"6":    ContentRejected,
	"7":    Policy,
}

// deadCategories are the categories that mean the address itself is dead.
func deadCategory(c Category) bool {
	switch c {
	case MailboxUnknown, DomainUnknown, AddressInvalid, MailboxDisabled:
		return true
	}
	return false
}

// severityOf gives the category's severity for a permanent failure.
func severityOf(c Category) Severity {
	switch c {
	case MailboxFull, RateLimited, Network, Expired, System:
		return Soft
	case Delayed, AutoReply, Complaint:
		return None
	}
	return Hard
}

// decision is the outcome of the rules for one recipient.
type decision struct {
	status   string // the status that decided: the quoted one on conflict
	category Category
	severity Severity
	suppress bool
	rule     string
	row      string // the name of the table's row that decided
}

// normalize lower-cases s and folds runs of white space to one space, so
// that the phrases match across the line breaks of folded diagnostics.
func normalize(s string) string {
	var sb strings.Builder
	sb.Grow(len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			space = sb.Len() > 0
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if space {
			sb.WriteByte(' ')
			space = false
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// matchPhrase returns the category and phrase of the first rule of the
// strong table (phraseRules) that text matches, or of weakRules when
// withWeak is set and no strong one does.
func matchPhrase(text string, withWeak bool) (c Category, phrase string, weak bool) {
	strong, w := match(rules, text)
	switch {
	case strong != nil:
		return strong.category, strong.phrase, false
	case w != nil && withWeak:
		return w.category, w.phrase, true
	}
	return "", "", false
}

// statusCategory runs step 4: the category an enhanced status names.
func statusCategory(st string) Category {
	if len(st) < 5 {
		return ""
	}
	rest := st[2:] // "1.1"
	if c, ok := statusRules[rest]; ok {
		return c
	}
	if dot := strings.IndexByte(rest, '.'); dot > 0 {
		if c, ok := statusRules[rest[:dot]]; ok {
			return c
		}
	}
	return ""
}

// statusClass is the class digit of a status or reply code: '2', '4', '5'
// or 0.
func statusClass(status string, code int) byte {
	if status != "" {
		return status[0]
	}
	if code >= 200 && code < 600 {
		return byte('0' + code/100)
	}
	return 0
}

// facts is what decide knows of the message around one recipient.
type facts struct {
	// autoReply: the returned original was itself an automatic reply.
	autoReply bool
	// dsnAction: r.Action is the reporting MTA's own Action field (RFC
	// 3464 §2.3.3), not one read into a free-text notice.
	dsnAction bool
}

// sendingSuppression returns the words of text that say the sending
// service refused to send because the address is on its own suppression
// list, or "". Such a notice is second-hand: the list may hold the address
// for an old bounce, a complaint or a mistake, so it never suppresses.
func sendingSuppression(text string) string {
	for _, p := range suppressionPhrases {
		if strings.Contains(text, p) {
			return p
		}
	}
	return ""
}

// suppressionPhrases say that the sending service's suppression list refused.
var suppressionPhrases = []string{
	"suppression list", "suppressionlist", "suppressed sending", "previously bounced",
	"address suppressed", "recipient suppressed", "address is suppressed", "recipient is suppressed",
}

// givenUpAtRCPT reports whether a temporary failure is a dead mailbox the
// reporting MTA has stopped retrying: its own DSN says Action: failed, the
// status is one of the recipient address codes (X.1.x), the reply answered
// RCPT TO (or the DSN does not say, as RFC 3464 has no field for it: the
// X.1.x status is the recipient's address then), and the words (a strong
// phrase, not a weak one) name a dead mailbox. A deferral still being
// retried (Action: delayed), a free-text notice (whose "failed" is our
// reading), a sender status (X.1.7, X.1.8) or a refusal at another
// command does not qualify.
func givenUpAtRCPT(r *Recipient, in facts, cat Category, strongText bool, status string) bool {
	return in.dsnAction && r.Action == "failed" && (r.Command == "RCPT" || r.Command == "") &&
		cat == MailboxUnknown && strongText && recipientStatus(status)
}

// namesOtherDomain reports whether text names a domain, or an address at a
// domain, that is neither the domain of addr nor one of its subdomains or
// parents. Dotted numbers (status codes, IP addresses) are no domains.
func namesOtherDomain(text, addr string) bool {
	own := strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
	for _, tok := range strings.FieldsFunc(text, func(r rune) bool {
		return r == ' ' || strings.ContainsRune("<>[](){}\"',;:=", r)
	}) {
		if at := strings.LastIndexByte(tok, '@'); at >= 0 {
			tok = tok[at+1:]
		}
		tok = strings.ToLower(strings.Trim(tok, ".-"))
		if !strings.Contains(tok, ".") || strings.Trim(tok, "0123456789.") == "" {
			continue
		}
		if own == "" || tok != own && !strings.HasSuffix(tok, "."+own) && !strings.HasSuffix(own, "."+tok) {
			return true
		}
	}
	return false
}

// namesSender reports whether the four words before phrase in text, within
// its clause, name the sender as the one the phrase speaks of: "sender
// address does not exist", "mail from address does not exist", "the
// sender's account is disabled", "your domain does not exist" (the reply
// speaks to the sending client). A clause ends at punctuation, so in
// "Sender verify ok; <x@example.org>: user unknown" the phrase is the
// recipient's.
func namesSender(text, phrase string) bool {
	i := strings.Index(text, phrase)
	if i < 0 {
		return false
	}
	clause := text[strings.LastIndexAny(text[:i], ":;,.!?<>()[]\"")+1 : i]
	words := strings.Fields(clause)
	if len(words) > 4 {
		words = words[len(words)-4:]
	}
	for _, w := range words {
		switch w {
		case "sender", "sender's", "senders", "sending", "from", "your", "originator", "envelope-from",
			"mail-from", "return-path", "reverse-path", "bounce":
			return true
		}
	}
	return false
}

// recipientStatus reports whether a status is one of the X.1.x codes about
// the recipient's address (RFC 3463 §3.2), the sender's (X.1.7, X.1.8)
// excepted.
func recipientStatus(st string) bool {
	if len(st) < 5 || st[1:4] != ".1." {
		return false
	}
	return st[4:] != "7" && st[4:] != "8" && st[4:] != "0"
}

// directoryPhrase reports whether a mailbox_unknown phrase is one a
// mailbox host writes after looking the address up in its own directory,
// rather than an SMTP reply of unknown stage: such words need no RCPT-stage
// evidence.
func directoryPhrase(text string) bool {
	for _, m := range directoryPhrases {
		if strings.Contains(text, m) {
			return true
		}
	}
	return false
}

// directoryPhrases are words that come from a mailbox host's own directory
// lookup (Domino, Exchange, qmail's validrcptto, local delivery agents), not
// from an SMTP reply whose stage is unknown.
var directoryPhrases = []string{
	"not listed in domino directory", "not listed in public name", "invalid final delivery userid",
	"recipnotfound", "recipientnotfound", "no mailbox here", "no mail-box here", "validrcptto",
	"account that you tried to reach does not exist", "address couldn't be found", "unknown recipient",
	"recipient name is not recognized", "destinataire invalide", "recipient address rejected: access denied",
	"mail.local:", "local delivery", "maildrop:", "lmtp", "procmail:",
	"(user not found)", // GroupWise: "user@example.org (user not found)"
}

func nullMX(text string) bool {
	return strings.Contains(text, "null mx") || strings.Contains(text, "nullmx") || strings.Contains(text, "doesn't receive email")
}

// echoesRecipient reports whether the reply names the refused address right
// before its reason, "550 <user@example.org>: User unknown": the answer to
// RCPT TO, whose argument it repeats. Filters refusing after DATA answer
// without it ("550 : User unknown").
func echoesRecipient(text string) bool {
	i := strings.Index(text, ">: user unknown")
	if i < 0 {
		return false
	}
	j := strings.LastIndexByte(text[:i], '<')
	return j >= 0 && strings.IndexByte(text[j:i], '@') > 0 && !strings.Contains(text[j:i], " ")
}

// generic reports whether a status says nothing beyond its class (X.0.0).
func generic(st string) bool {
	return strings.HasSuffix(st, ".0.0")
}
