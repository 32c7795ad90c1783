package classify

import (
	"fmt"
	"strings"
)

// The wrappers of TestWrapperIndependence: each writes one failure the way
// one kind of MTA returns it, with the headers real ones carry (From
// MAILER-DAEMON or postmaster, the Subject that MTA uses, the returned
// original with its Message-ID and List-Id), so that the message is taken
// for a bounce by its structure. None of them writes words chosen from the
// failure's category (Gmail's "Address not found" headline, Office 365's
// "couldn't be found" summary): they would hand the classifier the answer.
// What each wrapper cannot carry is tabled above TestWrapperIndependence.

// wrapFormat is one way of returning a failure.
type wrapFormat struct {
	name  string
	stage bool // it names the SMTP command the reply answered
	dsn   bool // it carries a message/delivery-status part (Action: failed)
	wrap  func(f *wrapFailure) string
}

// wrapFormats are the wrappers; the first is the reference.
var wrapFormats = []wrapFormat{
	{"rfc3464", true, true, func(f *wrapFailure) string { return wrapRFC3464(f, true) }},
	{"rfc3464-nostage", false, true, func(f *wrapFailure) string { return wrapRFC3464(f, false) }},
	{"postfix-dsn", true, true, func(f *wrapFailure) string { return wrapPostfix(f, true) }},
	{"postfix-text", true, false, func(f *wrapFailure) string { return wrapPostfix(f, false) }},
	{"exim", true, false, wrapExim},
	{"qmail", true, false, wrapQmail},
	{"sendmail", true, false, wrapSendmail},
	{"exchange", false, false, wrapExchange},
	{"gmail", false, false, wrapGmail},
	{"bare", false, false, wrapBare},
}

const (
	wrapOurHost = "mx.sender.example"
	wrapIP      = "192.0.2.25"
)

// wrapRemoteHost is the recipient domain's mail server, named in the
// recipient's own domain so that it names no third party.
func wrapRemoteHost(f *wrapFailure) string {
	return "mx1." + strings.ToLower(f.addr[strings.LastIndexByte(f.addr, '@')+1:])
}

// fill puts f's recipient and sender in a wrapper's phrase.
func (f *wrapFailure) fill(p string) string {
	return strings.NewReplacer("{rcpt}", f.addr, "{sender}", f.sender).Replace(p)
}

// charset is the charset parameter of f's text: UTF-8 addresses (RFC
// 6531) and replies are written as UTF-8, as SMTPUTF8 MTAs write them.
func (f *wrapFailure) charset() string {
	for _, s := range []string{f.addr, f.reply, f.sender} {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return "utf-8"
			}
		}
	}
	return "us-ascii"
}

// finish turns the LF line ends of a wrapper's template into CRLF, as IMAP
// hands messages over, and declares the charset f's text needs.
func (f *wrapFailure) finish(s string) string {
	s = strings.ReplaceAll(s, "charset=us-ascii", "charset="+f.charset())
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// wrapOriginal is the header (and a line of body) of the message that
// bounced: a list mailing with its Message-ID, List-Id and campaign header,
// itself an automatic reply when the source's was one.
func wrapOriginal(f *wrapFailure, withBody bool) string {
	auto := ""
	if f.autoReply {
		auto = "Auto-Submitted: auto-replied\n"
	}
	s := fmt.Sprintf(`Return-Path: <%[3]s>
From: November News <news@sender.example>
To: <%[1]s>
Subject: November news
Date: Wed, 02 Dec 2026 09:00:00 +0000
Message-ID: <wrap-%[2]d@sender.example>
List-Id: November news <news.sender.example>
List-Unsubscribe: <mailto:unsubscribe@sender.example>
X-Campaign-Id: nov-2026
%[4]sMIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii
`, f.addr, f.id, f.sender, auto)
	if withBody {
		s += "\nHello, here is our November news.\n"
	}
	return s
}

// wrapFold breaks s at spaces into lines of at most width bytes, the lines
// after the first indented by indent, as Postfix folds its notices and
// header fields are folded (RFC 5322 §2.2.3). A word longer than the line
// stays whole.
func wrapFold(s string, width int, indent string) string {
	var sb strings.Builder
	line := 0
	for i, w := range strings.Fields(s) {
		switch {
		case i == 0:
		case line+1+len(w) > width:
			sb.WriteString("\n" + indent)
			line = len(indent)
		default:
			sb.WriteByte(' ')
			line++
		}
		sb.WriteString(w)
		line += len(w)
	}
	return sb.String()
}

// wrapDSNStatus is the Status field for f: its status, else X.0.0 of the
// reply's class, since RFC 3464 §2.3.4 requires one.
func wrapDSNStatus(f *wrapFailure) string {
	switch {
	case f.status != "":
		return f.status
	case f.code >= 400 && f.code < 500:
		return "4.0.0"
	}
	return "5.0.0"
}

// wrapDeliveryStatus is the message/delivery-status body (RFC 3464 §2).
func wrapDeliveryStatus(f *wrapFailure, extra string) string {
	s := fmt.Sprintf(`Reporting-MTA: dns; %s
%sArrival-Date: Fri, 04 Dec 2026 10:00:00 +0000

Final-Recipient: rfc822; %s
Original-Recipient: rfc822;%s
Action: failed
Status: %s
`, wrapOurHost, extra, f.addr, f.addr, wrapDSNStatus(f))
	if f.code != 0 {
		s += "Remote-MTA: dns; " + wrapRemoteHost(f) + "\n"
	}
	s += wrapFold("Diagnostic-Code: smtp; "+f.reply, 78, "    ") + "\n"
	return s + "Last-Attempt-Date: Fri, 04 Dec 2026 10:00:05 +0000\n"
}

// wrapRFC3464Stage is how the reference's human-readable part names the
// command, in the words most MTAs use for it.
var wrapRFC3464Stage = map[string]string{
	"RCPT": "after RCPT TO:<{rcpt}>",
	"DATA": "after end of data",
	"MAIL": "after MAIL FROM:<{sender}>",
	"HELO": "after EHLO " + wrapOurHost,
	"CONN": "after initial connection",
}

// wrapRFC3464 writes a plain RFC 3464 DSN (RFC 6522 multipart/report) with
// the returned header as text/rfc822-headers; with stage, its
// human-readable part says which command the reply answered.
func wrapRFC3464(f *wrapFailure, stage bool) string {
	reason := "Reason:"
	if p, ok := wrapRFC3464Stage[f.stage]; ok && stage {
		p = f.fill(p)
		reason = fmt.Sprintf("The server %s [%s] answered %s:", wrapRemoteHost(f), wrapIP, p)
	}
	return f.finish(fmt.Sprintf(`From: Mail Delivery Subsystem <MAILER-DAEMON@%[1]s>
To: <%[2]s>
Subject: Delivery Status Notification (Failure)
Date: Fri, 04 Dec 2026 10:00:06 +0000
Message-ID: <dsn-%[3]d@%[1]s>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="=_dsn_%[3]d"

This is a MIME-encapsulated message.

--=_dsn_%[3]d
Content-Type: text/plain; charset=us-ascii

This is an automatically generated Delivery Status Notification.

Delivery to the following recipient failed permanently:

    %[4]s

%[5]s

    %[6]s

--=_dsn_%[3]d
Content-Type: message/delivery-status

%[7]s
--=_dsn_%[3]d
Content-Type: text/rfc822-headers

%[8]s
--=_dsn_%[3]d--
`, wrapOurHost, f.sender, f.id, f.addr, reason, wrapFold(f.reply, 72, "    "), wrapDeliveryStatus(f, ""),
		wrapOriginal(f, false)))
}

// wrapPostfixStage is the command as Postfix's "(in reply to ... command)"
// names it.
var wrapPostfixStage = map[string]string{
	"RCPT": "RCPT TO", "DATA": "end of DATA", "MAIL": "MAIL FROM", "HELO": "EHLO",
}

// wrapPostfixLine is Postfix's line for one recipient (bounce(8), smtp(8)):
// "<rcpt>: host mx[ip] said: reply (in reply to RCPT TO command)",
// "host mx[ip] refused to talk to me: reply" for the greeting, "<rcpt>:
// reply" when no SMTP command was involved; folded at 78 columns.
func wrapPostfixLine(f *wrapFailure) string {
	var s string
	switch f.stage {
	case "":
		s = fmt.Sprintf("<%s>: %s", f.addr, f.reply)
	case "CONN":
		s = fmt.Sprintf("<%s>: host %s[%s] refused to talk to me: %s", f.addr, wrapRemoteHost(f), wrapIP, f.reply)
	default:
		s = fmt.Sprintf("<%s>: host %s[%s] said: %s (in reply to %s command)", f.addr, wrapRemoteHost(f), wrapIP,
			f.reply, wrapPostfixStage[f.stage])
	}
	return wrapFold(s, 78, "    ")
}

// wrapPostfix writes Postfix's bounce: its notice, with the DSN part
// (Postfix 2.3 and later) or without (older Postfix, or a relay that
// dropped it), and the returned message.
func wrapPostfix(f *wrapFailure, dsn bool) string {
	ctype, report := "multipart/mixed", ""
	if dsn {
		ctype = "multipart/report; report-type=delivery-status"
		report = fmt.Sprintf(`Content-Description: Delivery report
Content-Type: message/delivery-status

%s
--B%d.1733306406/%s
`, wrapDeliveryStatus(f, "X-Postfix-Queue-ID: 4SXYZ12abc\nX-Postfix-Sender: rfc822; "+f.sender+"\n"), f.id, wrapOurHost)
	}
	return f.finish(fmt.Sprintf(`From: MAILER-DAEMON@%[1]s (Mail Delivery System)
To: %[2]s
Subject: Undelivered Mail Returned to Sender
Date: Fri, 04 Dec 2026 10:00:06 +0000
Message-Id: <20261204100006.4SXYZ12abc@%[1]s>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: %[3]s;
	boundary="B%[4]d.1733306406/%[1]s"

This is a MIME-encapsulated message.

--B%[4]d.1733306406/%[1]s
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host %[1]s.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

%[5]s

--B%[4]d.1733306406/%[1]s
%[6]sContent-Description: Undelivered Message
Content-Type: message/rfc822

%[7]s
--B%[4]d.1733306406/%[1]s--
`, wrapOurHost, f.sender, ctype, f.id, wrapPostfixLine(f), report, wrapOriginal(f, true)))
}

// wrapEximStage is Exim's "SMTP error from remote mail server after ...:".
var wrapEximStage = map[string]string{
	"RCPT": "after RCPT TO:<{rcpt}>:",
	"DATA": "after end of data:",
	"MAIL": "after MAIL FROM:<{sender}> SIZE=1853:",
	"HELO": "after EHLO " + wrapOurHost + ":",
	"CONN": "after initial connection:",
}

// wrapExim writes Exim's bounce: X-Failed-Recipients, the address, the
// command and host, the reply, then an inline copy of the message. With no
// command known, the reply alone stands under the address, as Exim writes
// a local delivery's failure.
func wrapExim(f *wrapFailure) string {
	detail := "    " + f.reply
	if p, ok := wrapEximStage[f.stage]; ok {
		p = f.fill(p)
		detail = fmt.Sprintf("    SMTP error from remote mail server %s\n    host %s [%s]: %s", p, wrapRemoteHost(f), wrapIP, f.reply)
	}
	return f.finish(fmt.Sprintf(`From: Mail Delivery System <Mailer-Daemon@%[1]s>
To: %[2]s
Subject: Mail delivery failed: returning message to sender
Date: Fri, 04 Dec 2026 10:00:06 +0000
Message-Id: <E1tIxyz-000%[3]d-AB@%[1]s>
X-Failed-Recipients: %[4]s
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  %[4]s
%[5]s

------ This is a copy of the message, including all the headers. ------

%[6]s`, wrapOurHost, f.sender, f.id, f.addr, detail, wrapOriginal(f, true)))
}

// wrapQmailStage is qmail-remote's account of the command that failed.
var wrapQmailStage = map[string]string{
	"RCPT": wrapIP + " does not like recipient.",
	"DATA": wrapIP + " failed after I sent the message.",
	"MAIL": "Connected to " + wrapIP + " but sender was rejected.",
	"HELO": "Connected to " + wrapIP + " but my name was rejected.",
	"CONN": "Connected to " + wrapIP + " but greeting failed.",
}

// wrapQmail writes qmail-send's "failure notice": the address, qmail-remote's
// account of the command, "Remote host said:" and the reply. With no
// command known, the reply alone, as qmail-local writes a local failure.
func wrapQmail(f *wrapFailure) string {
	detail := f.reply
	if p, ok := wrapQmailStage[f.stage]; ok {
		detail = fmt.Sprintf("%s\nRemote host said: %s\nGiving up on %s.", p, f.reply, wrapIP)
	}
	return f.finish(fmt.Sprintf(`From: MAILER-DAEMON@%[1]s
To: %[2]s
Subject: failure notice
Date: 4 Dec 2026 10:00:06 -0000
Message-ID: <1733306406.%[3]d.qmail@%[1]s>

Hi. This is the qmail-send program at %[1]s.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<%[4]s>:
%[5]s

--- Below this line is a copy of the message.

%[6]s`, wrapOurHost, f.sender, f.id, f.addr, detail, wrapOriginal(f, true)))
}

// wrapSendmailTranscript is the session transcript Sendmail writes for the
// command that failed (">>> RCPT To:<x>", "<<< 550 ..."); a refused
// greeting has no command line. Empty when the command is unknown.
func wrapSendmailTranscript(f *wrapFailure) string {
	var cmd string
	switch f.stage {
	case "RCPT":
		cmd = fmt.Sprintf(">>> RCPT To:<%s>\n", f.addr)
	case "DATA":
		cmd = ">>> DATA\n<<< 354 Enter mail, end with \".\" on a line by itself\n>>> .\n"
	case "MAIL":
		cmd = ">>> MAIL From:<" + f.sender + "> SIZE=1853\n"
	case "HELO":
		cmd = ">>> EHLO " + wrapOurHost + "\n"
	case "CONN":
	default:
		return ""
	}
	return fmt.Sprintf("... while talking to %s.:\n%s<<< %s\n", wrapRemoteHost(f), cmd, f.reply)
}

// wrapSendmailSummary is Sendmail's own line for the recipient, "550 5.1.1
// <x>... User unknown": the reply's code and status, the address, the
// reply's words. Empty when there is no code.
func wrapSendmailSummary(f *wrapFailure) string {
	if f.code == 0 {
		return ""
	}
	words := f.reply
	if wrapCodeIndex(words, f.code) == 0 {
		words = strings.TrimLeft(words[3:], " -")
	}
	st := ""
	if f.status != "" {
		st = f.status + " "
		words = strings.TrimSpace(strings.TrimPrefix(words, f.status))
	}
	for _, echo := range []string{"<" + f.addr + ">:", "<" + f.addr + ">...", "<" + f.addr + ">"} {
		if strings.HasPrefix(words, echo) {
			words = strings.TrimSpace(words[len(echo):]) // the summary names the address itself
			break
		}
	}
	return fmt.Sprintf("%d %s<%s>... %s\n", f.code, st, f.addr, words)
}

// wrapSendmail writes Sendmail's notice without a DSN part (as Sendmail
// does when the DSN is not wanted, and as many relays pass it on): the
// permanent fatal errors with their reason, the session transcript, the
// returned message.
func wrapSendmail(f *wrapFailure) string {
	return f.finish(fmt.Sprintf(`From: Mail Delivery Subsystem <MAILER-DAEMON@%[1]s>
To: <%[2]s>
Subject: Returned mail: see transcript for details
Date: Fri, 4 Dec 2026 10:00:06 GMT
Message-Id: <202612041000.4B4A06x%[3]d@%[1]s>
Auto-Submitted: auto-generated (failure)
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

The original message was received at Fri, 4 Dec 2026 10:00:00 GMT
from localhost [127.0.0.1]

   ----- The following addresses had permanent fatal errors -----
<%[4]s>
    (reason: %[5]s)

   ----- Transcript of session follows -----
%[6]s%[7]s
   ----- Original message follows -----

%[8]s`, wrapOurHost, f.sender, f.id, f.addr, f.reply, wrapSendmailTranscript(f), wrapSendmailSummary(f),
		wrapOriginal(f, true)))
}

// wrapExchange writes the text of an Exchange Server / Office 365
// non-delivery report: the generic user-facing paragraph, then
// "Diagnostic information for administrators" with "Remote Server returned
// '...'" and the original's headers. The DSN part Office 365 adds is left
// out: with it, this would be rfc3464-nostage again.
func wrapExchange(f *wrapFailure) string {
	return f.finish(fmt.Sprintf(`From: Microsoft Outlook <postmaster@sender.example>
To: <%[1]s>
Subject: Undeliverable: November news
Date: Fri, 4 Dec 2026 10:00:06 +0000
Message-ID: <ndr-%[2]d@mail.sender.example>
Auto-Submitted: auto-replied
X-MS-Exchange-Message-Is-Ndr:
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Delivery has failed to these recipients or groups:

%[3]s
A problem occurred while delivering this message to this email address. Try sending your message again. If the problem continues, please contact your helpdesk.






Diagnostic information for administrators:

Generating server: mail.sender.example

%[3]s
Remote Server returned '%[4]s'

Original message headers:

%[5]s`, f.sender, f.id, f.addr, f.reply, wrapOriginal(f, false)))
}

// wrapGmail writes Gmail's notice: "** Message not delivered **", the
// address, "The response from the remote server was:" and the reply, with
// the message returned as message/rfc822. Gmail's headline depends on the
// failure ("Address not found"); the neutral one is used so as not to hand
// the classifier the verdict.
func wrapGmail(f *wrapFailure) string {
	return f.finish(fmt.Sprintf(`From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: %[1]s
Subject: Delivery Status Notification (Failure)
Date: Fri, 04 Dec 2026 02:00:06 -0800 (PST)
Message-ID: <gm-%[2]d@mx.google.com>
X-Failed-Recipients: %[3]s
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="000000000000gm%[2]d"

--000000000000gm%[2]d
Content-Type: text/plain; charset="UTF-8"


** Message not delivered **

There was a problem delivering your message to %[3]s. See the technical details below.



The response from the remote server was:
%[4]s

--000000000000gm%[2]d
Content-Type: message/rfc822

%[5]s
--000000000000gm%[2]d--
`, f.sender, f.id, f.addr, f.reply, wrapOriginal(f, true)))
}

// wrapBare writes the shortest notice a site-local mailer sends: "Mail
// delivery failed", the address, the reply, the original quoted below.
func wrapBare(f *wrapFailure) string {
	return f.finish(fmt.Sprintf(`From: postmaster@relay.sender.example
To: %[1]s
Subject: Mail delivery failed
Date: Fri, 4 Dec 2026 10:00:06 +0000
Message-ID: <fail-%[2]d@relay.sender.example>

Your message to <%[3]s> could not be delivered.

The mail server said:
%[4]s

----- Original message -----
%[5]s`, f.sender, f.id, f.addr, f.reply, wrapOriginal(f, true)))
}
