package classify

import (
	"strings"
	"testing"
)

// The precedence of the rule table, case by case: what decides when words,
// status, reply code and SMTP command point different ways.
func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name      string
		r         Recipient
		autoReply bool
		cat       Category
		sev       Severity
		suppress  bool
		rule      string // a part of the rule that must be named
	}{
		{"relay table is not a relay refusal",
			Recipient{Diagnostic: "550 5.1.1 <x@example.org>: Recipient address rejected: User unknown in relay recipient table", Command: "RCPT"},
			false, MailboxUnknown, Hard, true, "user unknown"},
		{"not logged in is auth, not the sender",
			Recipient{Diagnostic: "553 5.7.1 <s@example.com>: Sender address rejected: not logged in"},
			false, AuthRequired, Hard, false, "not logged in"},
		{"an unknown sender is the sender's problem",
			Recipient{Diagnostic: "550 5.1.0 <s@example.com>: Sender address rejected: User unknown in local recipient table"},
			false, SenderRejected, Hard, false, "sender address rejected"},
		{"blocklist",
			Recipient{Diagnostic: "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"},
			false, Blocked, Hard, false, "blocked"},
		{"spam filter",
			Recipient{Diagnostic: "550 5.7.1 Message rejected as spam by Content Filtering"},
			false, ContentRejected, Hard, false, "spam"},
		{"full mailbox, temporary",
			Recipient{Diagnostic: "452 4.2.2 <x@example.org>: Recipient address rejected: Mailbox full"},
			false, MailboxFull, Soft, false, "mailbox full"},
		{"full mailbox is soft even when 5xx",
			Recipient{Status: "5.2.2", Diagnostic: "552 5.2.2 Over quota"},
			false, MailboxFull, Soft, false, "over quota"},
		{"refused at HELO is about our host",
			Recipient{Diagnostic: "501 5.5.4 Invalid domain name", Command: "HELO"},
			false, Blocked, Hard, false, "before_rcpt"},
		{"no such domain answered to MAIL FROM is the sender's",
			Recipient{Diagnostic: "550 5.1.7 No such domain neko.example.com.", Command: "MAIL"},
			false, SenderRejected, Hard, false, "sender_stage"},
		{"5.1.1 confirms the mailbox even after DATA",
			Recipient{Status: "5.1.1", Diagnostic: "550 5.1.1 <x@example.org>... User unknown", Command: "DATA"},
			false, MailboxUnknown, Hard, true, "user unknown"},
		{"user unknown after DATA is a filter",
			Recipient{Diagnostic: "550 Unknown user x@example.org", Command: "DATA"},
			false, Policy, Hard, false, "filtered_after_data"},
		{"user unknown at an unknown stage is recorded, not suppressed",
			Recipient{Diagnostic: "550 : User unknown"},
			false, MailboxUnknown, Hard, false, "stage_unknown"},
		{"the reply echoing the address answers RCPT TO",
			Recipient{Diagnostic: "550 <x@example.org>: User unknown"},
			false, MailboxUnknown, Hard, true, "user unknown"},
		{"a temporary user unknown is not suppressed",
			Recipient{Status: "4.1.1", Diagnostic: "450 4.1.1 <x@example.org>: Recipient address rejected: User unknown", Command: "RCPT"},
			false, MailboxUnknown, Soft, false, "temporary"},
		{"DMARC",
			Recipient{Status: "5.7.26", Diagnostic: "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy"},
			false, Policy, Hard, false, "dmarc"},
		{"Status 5.1.1 against a quoted (#5.7.1): the quote decides",
			Recipient{Status: "5.1.1", Diagnostic: "553 information. (#5.7.1)"},
			false, Policy, Hard, false, "status_field:5.1.1"},
		{"a delayed action is a warning",
			Recipient{Action: "delayed", Status: "4.4.1", Diagnostic: "421 4.4.1 Connection timed out"},
			false, Delayed, None, false, "action:delayed"},
		{"the bounce of an auto-reply never suppresses",
			Recipient{Status: "5.1.1", Diagnostic: "550 5.1.1 user unknown", Command: "RCPT"},
			true, MailboxUnknown, Hard, false, "original_auto_reply"},
		{"rate limit",
			Recipient{Diagnostic: "421 4.7.0 Try again later, closing connection: too many connections"},
			false, RateLimited, Soft, false, "too many connections"},
		{"network",
			Recipient{Diagnostic: "connect to mx.example.org[192.0.2.1]:25: Connection timed out"},
			false, Network, Soft, false, "connection timed out"},
		{"expired",
			Recipient{Diagnostic: "retry timeout exceeded"},
			false, Expired, Soft, false, "retry timeout exceeded"},
		{"a null MX is final whatever the class",
			Recipient{Status: "4.0.0", Diagnostic: "DNS type 'mx' lookup of example.org responded with code NOERROR; the domain example.org doesn't receive email (null MX)"},
			false, DomainUnknown, Soft, true, "null_mx"},
		{"Microsoft's directory refusal",
			Recipient{Diagnostic: "550 5.4.1 <x@example.com>: Recipient address rejected: Access denied. AS(201806281)"},
			false, MailboxUnknown, Hard, true, "access denied"},
		{"521: the host accepts no mail (RFC 7504)",
			Recipient{Diagnostic: "521 5.3.2 <x@example.org>: Recipient address rejected: System not accepting network messages", Command: "RCPT"},
			false, DomainUnknown, Hard, true, "code:521"},
		{"a 521 that names a block stays a block",
			Recipient{Diagnostic: "521 5.2.1 : AOL will not accept delivery of this message: blocked by our blacklist"},
			false, Blocked, Hard, false, "blacklist"},
		{"sendmail's own verdict on a recipient domain's null MX, with 5.7.27",
			Recipient{Address: "x@example.org", Status: "5.7.27", Diagnostic: "550 Host does not accept mail"},
			false, DomainUnknown, Hard, true, "destination_null_mx"},
		{"5.7.27 naming the recipient's own domain",
			Recipient{Address: "x@example.org", Status: "5.7.27", Diagnostic: "550 5.7.27 Domain example.org does not accept mail", Command: "RCPT"},
			false, DomainUnknown, Hard, true, "destination_null_mx"},
		{"5.7.27 for the sender's null MX at RCPT (Postfix) is the sender's",
			Recipient{Address: "x@example.org", Status: "5.7.27", Diagnostic: "550 5.7.27 <s@example.com>: Sender address rejected: Domain example.com does not accept mail (nullMX)", Command: "RCPT"},
			false, SenderRejected, Hard, false, "sender address rejected"},
		{"5.7.27 naming another domain than the recipient's is the sender's",
			Recipient{Address: "x@example.org", Status: "5.7.27", Diagnostic: "550 5.7.27 Domain example.com does not accept mail"},
			false, SenderRejected, Hard, false, "sender_stage"},
		{"5.7.27 answered to MAIL FROM is the sender's",
			Recipient{Address: "x@example.org", Status: "5.7.27", Diagnostic: "550 Host does not accept mail", Command: "MAIL"},
			false, SenderRejected, Hard, false, "sender_stage"},
		{"5.7.27 answered to the message is not the recipient's domain",
			Recipient{Address: "x@example.org", Status: "5.7.27", Diagnostic: "550 Host does not accept mail", Command: "DATA"},
			false, SenderRejected, Hard, false, "sender_stage"},
		{"5.7.27 speaking of a From domain is the sender's",
			Recipient{Address: "x@example.org", Status: "5.7.27", Diagnostic: "554 5.7.27 From domain does not accept mail"},
			false, SenderRejected, Hard, false, "sender_stage"},
		{"a dead sender address answered to RCPT TO is the sender's",
			Recipient{Diagnostic: "550 Sender address does not exist", Command: "RCPT"},
			false, SenderRejected, Hard, false, "sender_named"},
		{"the reply speaking of the client's own domain is the sender's",
			Recipient{Status: "5.1.1", Diagnostic: "550 5.1.1 Your domain does not exist", Command: "RCPT"},
			false, SenderRejected, Hard, false, "sender_named"},
		{"a MAIL FROM domain named in a reply to RCPT TO is the sender's",
			Recipient{Diagnostic: "550 MAIL FROM domain not found", Command: "RCPT"},
			false, SenderRejected, Hard, false, "sender_named"},
		{"a sender named in another clause leaves the recipient's words alone",
			Recipient{Status: "5.1.1", Diagnostic: "550 5.1.1 Sender verify OK, user unknown", Command: "RCPT"},
			false, MailboxUnknown, Hard, true, "user unknown"},
		{"Postfix reports a HELO refusal at RCPT TO: it is about our host",
			Recipient{Diagnostic: "550 5.7.1 <x@example.org>: Helo command rejected: Domain does not exist", Command: "RCPT"},
			false, Blocked, Hard, false, "helo command rejected"},
		{"recipient unknown at RCPT TO",
			Recipient{Diagnostic: "550 Recipient unknown", Command: "RCPT"},
			false, MailboxUnknown, Hard, true, "recipient unknown"},
		{"no such account at RCPT TO",
			Recipient{Diagnostic: "550 No such account", Command: "RCPT"},
			false, MailboxUnknown, Hard, true, "no such account"},
		{"a closed account",
			Recipient{Diagnostic: "550 Recipient address rejected: Mailbox closed", Command: "RCPT"},
			false, MailboxDisabled, Hard, true, "mailbox closed"},
		{"a relay quota is the sender's limit, not a full mailbox",
			Recipient{Diagnostic: "554 You've reached your daily relay quota", Command: "CONN"},
			false, Blocked, Hard, false, "command:CONN"},
		{"a mailbox over its owner's quota",
			Recipient{Diagnostic: "552 user has exceeded their quota"},
			false, MailboxFull, Soft, false, "exceeded their quota"},
		{"general dead-mailbox words do not outrank a policy status",
			Recipient{Status: "5.7.1", Diagnostic: "550 5.7.1 Requested action not taken: mailbox unavailable", Command: "RCPT"},
			false, Policy, Hard, false, "status:5.7.1"},
		{"general dead-mailbox words at RCPT TO with a generic status",
			Recipient{Status: "5.0.0", Diagnostic: "550 Requested action not taken: mailbox unavailable", Command: "RCPT"},
			false, MailboxUnknown, Hard, true, "weak_text"},
		{"a sending service's suppression list says nothing of the mailbox",
			Recipient{Status: "5.1.1", Diagnostic: "550 5.1.1 Amazon SES has suppressed sending to this address because it has a recent history of bouncing as an invalid address."},
			false, Unknown, Hard, false, "suppression_list:suppressed sending"},
		{"an ESP that will not send to a previously bounced address",
			Recipient{Diagnostic: "550 Not delivering to previously bounced address", Command: "RCPT"},
			false, Unknown, Hard, false, "suppression_list:previously bounced"},
		{"a refusal of our host's PTR record, whatever words follow",
			Recipient{Diagnostic: "550 Requested action not taken: mailbox unavailable (invalid DNS PTR resource record, IP=192.0.2.1)", Command: "RCPT"},
			false, Blocked, Hard, false, "dns ptr"},
		{"a mailbox that does not accept mail from us is not a dead domain",
			Recipient{Diagnostic: "554 5.7.1 <x@example.org>: Recipient address rejected: This mailbox does not accept mail from your domain", Command: "RCPT"},
			false, SenderRejected, Hard, false, "does not accept mail from"},
		{"a domain that does not accept mail at all is dead",
			Recipient{Diagnostic: "550 5.1.2 Domain does not accept mail", Command: "RCPT"},
			false, DomainUnknown, Hard, true, "does not accept mail"},
		{"a deactivated sending domain is the sender's",
			Recipient{Diagnostic: "550 5.7.1 The sending domain has been deactivated", Command: "RCPT"},
			false, SenderRejected, Hard, false, "sender_named"},
		{"an unknown client host is ours",
			Recipient{Diagnostic: "550 5.7.1 Client host unknown", Command: "RCPT"},
			false, Blocked, Hard, false, "client host unknown"},
		{"content denied",
			Recipient{Diagnostic: "550 Mail content denied"},
			false, ContentRejected, Hard, false, "content denied"},
		{"a bare 553 decides nothing",
			Recipient{Diagnostic: "553"},
			false, Unknown, Hard, false, "code:553"},
		{"nothing at all",
			Recipient{},
			false, Unknown, Hard, false, "none"},

		// The stage a wrapper cannot carry is read from the reply itself.
		{"553 is an envelope reply (RFC 5321 §4.3.2): no such user here suppresses with no stage",
			Recipient{Status: "5.3.0", Diagnostic: "553 5.3.0 <x@example.org>... No such user here"},
			false, MailboxUnknown, Hard, true, "text:mailbox_unknown:no such user"},
		{"553 sorry, rcpt user invalid with no stage",
			Recipient{Diagnostic: "553 sorry, rcpt user invalid (#5.7.1)"},
			false, MailboxUnknown, Hard, true, "rcpt user invalid"},
		{"553 user unknown, stage unknown",
			Recipient{Diagnostic: "553 user unknown"},
			false, MailboxUnknown, Hard, true, "user unknown"},
		{"a 550 user unknown with no stage stays unconfirmed",
			Recipient{Diagnostic: "550 unknown user"},
			false, MailboxUnknown, Hard, false, "stage_unknown"},
		{"a 553 naming the sender is still the sender's",
			Recipient{Diagnostic: "553 sender address does not exist"},
			false, SenderRejected, Hard, false, "sender"},

		// Words that say the mailbox exists outrank a status.
		{"the recipient's preferences under 5.1.1 are the recipient's filter",
			Recipient{Status: "5.1.1", Diagnostic: "550 5.1.1 Message rejected due to recipient preferences", Command: "RCPT"},
			false, Policy, Hard, false, "recipient preferences"},
		{"a recipient who blocked the sender",
			Recipient{Status: "5.1.1", Diagnostic: "550 5.1.1 The recipient has blocked messages from this sender"},
			false, Policy, Hard, false, "recipient has blocked"},

		// Phrase families.
		{"no mail exchanger nor IP address is a dead domain, not a block",
			Recipient{Diagnostic: "DNS Error: The domain example.org couldn't find a mail exchanger (MX record) nor IP address"},
			false, DomainUnknown, Hard, true, "couldn't find a mail exchanger"},
		{"a DNS lookup failure of the recipient's host",
			Recipient{Status: "5.4.4", Diagnostic: "DNS lookup failure: host example.org not found"},
			false, DomainUnknown, Hard, true, "dns lookup failure"},
		{"a temporary DNS lookup failure is soft",
			Recipient{Status: "4.4.3", Diagnostic: "451 4.4.3 DNS lookup failure, try again"},
			false, DomainUnknown, Soft, false, "temporary"},
		{"no account at the provider, after DATA, is a dead mailbox",
			Recipient{Diagnostic: "554 delivery error: dd This user doesn't have a example.com account (x@example.com) [0]", Command: "DATA"},
			false, MailboxUnknown, Hard, true, "doesn't have a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			if r.SMTPCode == 0 {
				r.SMTPCode = findReplyCode(r.Diagnostic)
			}
			d := decide(&r, facts{autoReply: tc.autoReply})
			if d.category != tc.cat || d.severity != tc.sev || d.suppress != tc.suppress || !strings.Contains(d.rule, tc.rule) {
				t.Errorf("decide(%q) = %s %s suppress=%v rule %q; want %s %s suppress=%v rule with %q",
					r.Diagnostic, d.category, d.severity, d.suppress, d.rule, tc.cat, tc.sev, tc.suppress, tc.rule)
			}
		})
	}
}

// The table's invariant: no sender-side category ever suppresses.
func TestNeverSuppressSenderSide(t *testing.T) {
	for _, r := range phraseRules {
		for _, p := range r.phrases {
			d := decide(&Recipient{Status: "5.0.0", SMTPCode: 550, Diagnostic: "550 " + p, Command: "RCPT"}, facts{})
			if d.suppress && NeverSuppress(d.category) {
				t.Errorf("phrase %q: %s suppressed", p, d.category)
			}
		}
	}
}

// Facts from the DSN around the recipient: an Action field stated by the
// reporting MTA itself.
func TestDecideDSNAction(t *testing.T) {
	const userUnknown450 = "450 4.1.1 <x@example.org>: Recipient address rejected: User unknown in local recipient table"
	for _, tc := range []struct {
		name     string
		r        Recipient
		in       facts
		cat      Category
		suppress bool
		rule     string
	}{
		{"a temporary user unknown at RCPT, given up by the reporting MTA",
			Recipient{Action: "failed", Status: "4.1.1", Diagnostic: userUnknown450, Command: "RCPT"},
			facts{dsnAction: true}, MailboxUnknown, true, "given_up"},
		{"the same still being retried is a warning",
			Recipient{Action: "delayed", Status: "4.1.1", Diagnostic: userUnknown450, Command: "RCPT"},
			facts{dsnAction: true}, Delayed, false, "action:delayed"},
		{"a free-text notice's failed is our reading, not the MTA's",
			Recipient{Action: "failed", Status: "4.1.1", Diagnostic: userUnknown450, Command: "RCPT"},
			facts{}, MailboxUnknown, false, "temporary"},
		{"given up, the stage not said (RFC 3464 has no field for it): the X.1.1 status is the recipient's",
			Recipient{Action: "failed", Status: "4.1.1", Diagnostic: "450 4.1.1 User unknown"},
			facts{dsnAction: true}, MailboxUnknown, true, "given_up"},
		{"given up, but the stage is DATA",
			Recipient{Action: "failed", Status: "4.1.1", Diagnostic: "450 4.1.1 User unknown", Command: "DATA"},
			facts{dsnAction: true}, MailboxUnknown, false, "temporary"},
		{"given up on a temporary sender refusal at RCPT is the sender's",
			Recipient{Action: "failed", Status: "4.1.8", Diagnostic: "450 4.1.8 <s@example.com>: Sender address rejected: Domain not found", Command: "RCPT"},
			facts{dsnAction: true}, SenderRejected, false, "sender address rejected"},
		{"given up on a temporary unknown sender (X.1.7) at RCPT is the sender's",
			Recipient{Action: "failed", Status: "4.1.7", Diagnostic: "450 4.1.7 <s@example.com>: User unknown", Command: "RCPT"},
			facts{dsnAction: true}, SenderRejected, false, "sender_stage"},
		{"given up on a vague 4.1.1 (a weak phrase) is not enough",
			Recipient{Action: "failed", Status: "4.1.1", Diagnostic: "450 4.1.1 Mailbox unavailable", Command: "RCPT"},
			facts{dsnAction: true}, MailboxUnknown, false, "temporary"},
		{"given up on a temporary status without words is not enough",
			Recipient{Action: "failed", Status: "4.1.1", Diagnostic: "450 4.1.1 Try again", Command: "RCPT"},
			facts{dsnAction: true}, MailboxUnknown, false, "status:4.1.1+temporary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			r.SMTPCode = findReplyCode(r.Diagnostic)
			d := decide(&r, tc.in)
			if d.category != tc.cat || d.suppress != tc.suppress || !strings.Contains(d.rule, tc.rule) {
				t.Errorf("decide(%q, %+v) = %s suppress=%v rule %q; want %s suppress=%v rule with %q",
					r.Diagnostic, tc.in, d.category, d.suppress, d.rule, tc.cat, tc.suppress, tc.rule)
			}
		})
	}
}

// The notice of a sending service's suppression list is explained as what
// it is, not as words that matched nothing.
func TestExplainSuppressionList(t *testing.T) {
	rec := Record{Bounce: true, Category: Unknown, Severity: Hard, Rule: "suppression_list:ses:Suppressed"}
	if e := Explain(&rec); e.Fault != FaultSender || !strings.Contains(e.What, "suppression list") {
		t.Errorf("Explain(%s) = %+v", rec.Rule, e)
	}
	rec.Rule = "status:5.0.0"
	if e := Explain(&rec); e != explanations[Unknown] {
		t.Errorf("Explain(%s) = %+v, want the unknown category's", rec.Rule, e)
	}
}
