package classify

import (
	"fmt"
	"strings"
	"testing"
)

// seed553 lists every 553 variant of the source pages in ../shared/seeds
// (and the neighbouring replies they discuss), with the category each must
// get. The text is the server's reply as a bounce quotes it.
var seed553 = []struct {
	reply string
	want  Category
}{
	// InMotion Hosting's list (pages 000 and 001).
	{"553 5.7.1 Not an open relay, so get lost", RelayDenied},
	{"553 Invalid user.", MailboxUnknown},
	{"553 message blocked, you are not authorized to send mail, authentication is required.", AuthRequired},
	{"553 Null Sender is not allowed.", SenderRejected},
	{"553 5.1.1 sorry, no mailbox here by that name.", MailboxUnknown},
	{"553 #5.1.8 Domain of sender address <sender@example.com> does not exist", SenderRejected},
	{"553 5.3.0 <recipient@remote.example>... Address does not exist", MailboxUnknown},
	{"553 5.3.0 <recipient@remote.example>... No such user", MailboxUnknown},
	{"553 5.3.0 <recipient@remote.example>... No such user here", MailboxUnknown},
	{"553 5.3.0 <recipient@remote.example>... User unknown, not local address", MailboxUnknown},
	{"553-Message filtered. Please see the FAQs section on spam", ContentRejected},
	{"553 <recipient@remote.example> does not have a mailbox here", MailboxUnknown},
	{"553 remote.example does not accept mail sent to recipient@other.example", RelayDenied},
	{"553 sorry, no mail-box here by that name. (#5.1.1)", MailboxUnknown},
	{"553 sorry, no mailbox here by that name (#5.1.1)", MailboxUnknown},
	{"553 sorry, rcpt user invalid (#5.7.1)", MailboxUnknown},
	{"553 sorry, that domain isn't in my list of allowed rcpthosts", RelayDenied},
	{"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", RelayDenied},
	{"553 sorry, the recipient is not a valid user on this domain (#5.7.1)", MailboxUnknown},
	{"553 sorry, the recipient in not a valid user on this domain (#5.7.1)", MailboxUnknown},
	{"553 sorry, this recipient doesn't exist.", MailboxUnknown},
	{"553 sorry, this recipient is not in my validrcptto list (#5.7.1)", MailboxUnknown},
	{"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)", SenderRejected},
	{"553 Your email address is denied.", SenderRejected},
	// The questions at the end of page 000.
	{"553 5.7.1 <sender@example.com>: Sender address rejected: not logged in", AuthRequired},
	{"553 Access Denied", Blocked},
	{"RSP^553 Relaying blocked at this site.[£! REQ^RCPT", RelayDenied},
	{"553 5.7.2 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.example/errors", Blocked},
	// 1-grid's guide (page 002).
	{"553 Invalid user", MailboxUnknown},
	{"553 user unknown", MailboxUnknown},
	{"553 address does not exist", MailboxUnknown},
	{"553 domain of sender address does not exist", SenderRejected},
	{"553 authentication required", AuthRequired},
	{"553 address syntax error", AddressInvalid},
	// Sendmarc's tables (page 003).
	{"553 5.1.2 The recipient address is not a valid RFC-5321 address", AddressInvalid},
	{"553 5.7.1 Connections will not be accepted from 192.0.2.33", Blocked},
	{"553 Message filtered", ContentRejected},
	{"553 you are trying to use me as a relay, but I have not been configured to let you do this", RelayDenied},
	{"553 Relaying disallowed", RelayDenied},
	// Microsoft's relay article (page 004), 553 and its 550 neighbours.
	{"553 Sorry, this domain is not in my list of allowed rcpthosts (#5.7.1)", RelayDenied},
	{"550 <jemand@example.com>... Forwarding Denied", RelayDenied},
	{"550 Authentication is required for relay", AuthRequired},
	{"554 5.7.1 <x@example.com>: Relay access denied", RelayDenied},
}

// seedFormats wrap a reply the way three kinds of MTA return it after a
// refused RCPT TO: a Postfix DSN, an Exim notice and a qmail notice.
var seedFormats = []struct {
	name string
	wrap func(rcpt, reply string) string
}{
	{"postfix-dsn", func(rcpt, reply string) string {
		status := quotedStatus(reply)
		if status == "" {
			status = "5.0.0"
		}
		return fmt.Sprintf(`From: MAILER-DAEMON@mx.sender.example (Mail Delivery System)
To: bounces@sender.example
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.sender.example.

<%[1]s>: host mx.remote.example[192.0.2.10] said: %[2]s (in reply to RCPT TO
    command)

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.sender.example

Final-Recipient: rfc822; %[1]s
Original-Recipient: rfc822;%[1]s
Action: failed
Status: %[3]s
Remote-MTA: dns; mx.remote.example
Diagnostic-Code: smtp; %[2]s

--B1
Content-Type: text/rfc822-headers

From: news@sender.example
To: %[1]s
Subject: November news
Message-ID: <n1@sender.example>

--B1--
`, rcpt, reply, status)
	}},
	{"exim-text", func(rcpt, reply string) string {
		return fmt.Sprintf(`From: Mail Delivery System <Mailer-Daemon@mx.sender.example>
To: bounces@sender.example
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: %[1]s
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  %[1]s
    SMTP error from remote mail server after RCPT TO:<%[1]s>:
    host mx.remote.example [192.0.2.10]: %[2]s

------ This is a copy of the message, including all the headers. ------

From: news@sender.example
To: %[1]s
Subject: November news
Message-ID: <n1@sender.example>

Hello.
`, rcpt, reply)
	}},
	{"qmail-text", func(rcpt, reply string) string {
		return fmt.Sprintf(`From: MAILER-DAEMON@mx.sender.example
To: bounces@sender.example
Subject: failure notice

Hi. This is the qmail-send program at mx.sender.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<%[1]s>:
192.0.2.10 does not like recipient.
Remote host said: %[2]s
Giving up on 192.0.2.10.

--- Below this line is a copy of the message.

From: news@sender.example
To: %[1]s
Subject: November news
Message-ID: <n1@sender.example>

Hello.
`, rcpt, reply)
	}},
}

func TestSeed553Variants(t *testing.T) {
	const rcpt = "recipient@remote.example"
	for _, s := range seed553 {
		for _, f := range seedFormats {
			t.Run(f.name+"/"+s.reply, func(t *testing.T) {
				raw := strings.ReplaceAll(f.wrap(rcpt, s.reply), "\n", "\r\n")
				rep, err := Classify([]byte(raw))
				if err != nil {
					t.Fatalf("Classify: %v", err)
				}
				recs := rep.Records()
				if len(recs) != 1 || !recs[0].Bounce {
					t.Fatalf("Records() = %+v, want one bounce", recs)
				}
				r := recs[0]
				if r.Recipient != rcpt {
					t.Errorf("recipient = %q, want %q", r.Recipient, rcpt)
				}
				if r.Category != s.want {
					t.Errorf("category = %s (rule %s), want %s", r.Category, r.Rule, s.want)
				}
				// Refused at RCPT TO: a dead address is suppressed, and
				// nothing else ever is.
				if want := deadCategory(s.want); r.Suppress != want {
					t.Errorf("suppress = %v (rule %s), want %v", r.Suppress, r.Rule, want)
				}
				if code := findReplyCode(s.reply); code != 0 && r.SMTPCode != code {
					t.Errorf("smtp_code = %d, want %d", r.SMTPCode, code)
				}
				if !r.Hard {
					t.Errorf("hard = false, want true for a permanent %q", s.reply)
				}
			})
		}
	}
}

// The Status field and the diagnostic disagree (page 000's last question):
// Status 5.1.1 with "553 information. (#5.7.1)". The remote's own quoted
// 5.7.1 decides: a policy refusal, and nobody is suppressed.
func TestSeedStatusDisagreement(t *testing.T) {
	raw := `From: Mail Delivery System <MAILER-DAEMON@mx.sender.example>
To: bounces@sender.example
Subject: Undelivered Mail
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B2"

--B2
Content-Type: text/plain

Delivery failed.

--B2
Content-Type: message/delivery-status

Reporting-MTA: dns; [192.0.2.219]
Received-From-MTA: dns; localhost [192.0.2.134]
Arrival-Date: Tue, 24 May 2016 04:35:03 -0700

Final-recipient: rfc822; simon@remote.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 553 information. (#5.7.1)
Last-attempt-Date: Tue, 24 May 2016 04:35:08 -0700

--B2--
`
	rep, err := Classify([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Recipients[0]
	if r.Category != Policy || r.Suppress || r.Status != "5.7.1" || r.SMTPCode != 553 {
		t.Errorf("got %s suppress=%v status %s code %d (rule %s), want policy, not suppressed, 5.7.1, 553",
			r.Category, r.Suppress, r.Status, r.SMTPCode, r.Rule)
	}
	if !strings.Contains(r.Rule, "status_field:5.1.1") {
		t.Errorf("rule %q does not record the overruled Status field", r.Rule)
	}
}
