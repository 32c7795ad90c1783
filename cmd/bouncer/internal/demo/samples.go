package demo

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/bouncer-mail/bouncer/worker"
)

// samplesFS holds the sample bounces written for the project (copies of
// classify/testdata fixtures: every category, several MTA formats, a
// person's reply, one message that cannot be classified). Nothing here
// comes from a real mailbox.
//
//go:embed samples/*.eml
var samplesFS embed.FS

// Sample is one message the demo seeds into its mailbox.
type Sample struct {
	// Name is a file name: samples/NAME for the shipped ones, 553-NN-... or
	// soft-... for the generated ones.
	Name string
	// Raw is the message with CRLF line ends, as IMAP carries it.
	Raw []byte
	// AgeDays is how many days before now the message arrived (its
	// INTERNALDATE): the soft-bounce series spreads over three days, as
	// the soft policy counts distinct days.
	AgeDays int
}

// Samples returns the demo's messages in a stable order: the shipped
// files, the 553 variants and the soft-bounce series. Every one is
// distinct, so none is a duplicate of another.
func Samples() ([]Sample, error) {
	names, err := fs.Glob(samplesFS, "samples/*.eml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Sample
	for _, n := range names {
		raw, err := samplesFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, Sample{Name: path.Base(n), Raw: worker.ToCRLF(raw)})
	}
	for i, v := range variants553 {
		name := fmt.Sprintf("553-%02d-%s.eml", i+1, v.format)
		raw := mta553[v.format](v.rcpt, v.reply, fmt.Sprintf("v%02d", i+1))
		out = append(out, Sample{Name: name, Raw: worker.ToCRLF([]byte(raw))})
	}
	for i, d := range softDays {
		out = append(out, Sample{
			Name:    fmt.Sprintf("soft-%d-mailbox_full-postfix.eml", i+1),
			Raw:     worker.ToCRLF([]byte(softBounce(d, i+1))),
			AgeDays: len(softDays) - 1 - i,
		})
	}
	return out, nil
}

// variants553 are replies with code 553 as real servers word them, each to
// its own recipient: the code alone says nothing about whose fault it is,
// the text decides (DESIGN.md). Only a dead address may be suppressed.
var variants553 = []struct {
	format, rcpt, reply string
}{
	// The recipient does not exist: suppress.
	{"postfix", "lena@mail.example.net", "553 5.1.1 sorry, no mailbox here by that name."},
	{"qmail", "omar@example.com", "553 sorry, no mailbox here by that name (#5.1.1)"},
	{"qmail", "pia@hosting.example", "553 sorry, rcpt user invalid (#5.7.1)"},
	{"qmail", "raj@hosting.example", "553 sorry, this recipient is not in my validrcptto list (#5.7.1)"},
	{"exim", "sven@example.org", "553 <sven@example.org> does not have a mailbox here"},
	{"exim", "tina@mx.example.biz", "553 5.3.0 <tina@mx.example.biz>... No such user here"},
	{"qmail", "uwe@example.de", "553 sorry, the recipient is not a valid user on this domain (#5.7.1)"},
	// The address cannot be an address: suppress.
	{"postfix", "vera@example.org", "553 5.1.2 The recipient address is not a valid RFC-5321 address"},
	// Our server or our sender setup is at fault: never suppress.
	{"postfix", "will@example.com", "553 5.7.1 Not an open relay, so get lost"},
	{"exim", "xavi@example.com", "553 Relaying disallowed"},
	{"exim", "yara@example.net", "553 you are trying to use me as a relay, but I have not been configured to let you do this"},
	{"postfix", "zane@example.net", "553 5.7.1 <news@lists.example.com>: Sender address rejected: not logged in"},
	{"exim", "abel@example.org", "553 authentication required"},
	{"qmail", "bea@example.org", "553 #5.1.8 Domain of sender address <news@lists.example.com> does not exist"},
	{"qmail", "cleo@example.net", "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"},
	{"exim", "dirk@example.com", "553 Null Sender is not allowed."},
	// Our sending IP or our content is refused: never suppress.
	{"postfix", "emil@example.com", "553 5.7.1 Connections will not be accepted from 192.0.2.5"},
	{"exim", "faye@example.net", "553 Access Denied"},
	{"exim", "gus@example.org", "553 Message filtered. Please see the FAQs section on spam"},
}

// mta553 wraps a refused RCPT TO the way three kinds of MTA return it: a
// Postfix DSN (RFC 3464), an Exim notice and a qmail notice (free text).
// returnedHeaders are the headers of the newsletter every notice returns
// (the Postfix DSN as text/rfc822-headers), and returnedMessage the whole
// of it, which the Exim and qmail notices quote back: %[1]s is the
// recipient, %[3]s the sample's id.
const (
	returnedHeaders = `From: Lists at Example <news@lists.example.com>
To: %[1]s
Subject: Your November newsletter
Date: Mon, 02 Nov 2026 09:10:00 +0000
Message-ID: <nl-2026-11.%[3]s@lists.example.com>
List-Id: Example News <news.lists.example.com>
X-Campaign-Id: cmp-2026-11
`
	returnedMessage = returnedHeaders + `MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello from the list.
`
)

var mta553 = map[string]func(rcpt, reply, id string) string{
	"postfix": func(rcpt, reply, id string) string {
		status := "5.0.0"
		if f := strings.Fields(reply); len(f) > 1 && strings.Count(f[1], ".") == 2 {
			status = f[1]
		}
		return fmt.Sprintf(`Return-Path: <>
Date: Mon,  2 Nov 2026 09:10:05 +0000 (UTC)
From: MAILER-DAEMON@mx.lists.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: bounces+%[3]s@lists.example.com
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="%[3]s.1730538605/mx.lists.example.com"
Message-Id: <20261102091005.%[3]s@mx.lists.example.com>

This is a MIME-encapsulated message.

--%[3]s.1730538605/mx.lists.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.lists.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<%[1]s>: host mx.remote.example[192.0.2.10] said: %[2]s (in reply to RCPT TO
    command)

--%[3]s.1730538605/mx.lists.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.lists.example.com
Arrival-Date: Mon,  2 Nov 2026 09:10:01 +0000 (UTC)

Final-Recipient: rfc822; %[1]s
Original-Recipient: rfc822;%[1]s
Action: failed
Status: %[4]s
Remote-MTA: dns; mx.remote.example
Diagnostic-Code: smtp; %[2]s

--%[3]s.1730538605/mx.lists.example.com
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

`+returnedHeaders+`
--%[3]s.1730538605/mx.lists.example.com--
`, rcpt, reply, id, status)
	},
	"exim": func(rcpt, reply, id string) string {
		return fmt.Sprintf(`Return-path: <>
X-Failed-Recipients: %[1]s
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@relay.lists.example.com>
To: bounces+%[3]s@lists.example.com
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1t%[3]s-000123-EF@relay.lists.example.com>
Date: Mon, 02 Nov 2026 09:10:05 +0000

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  %[1]s
    host mx.remote.example [192.0.2.10]
    SMTP error from remote mail server after RCPT TO:<%[1]s>:
    %[2]s

------ This is a copy of the message, including all the headers. ------

`+returnedMessage, rcpt, reply, id)
	},
	"qmail": func(rcpt, reply, id string) string {
		return fmt.Sprintf(`Return-Path: <>
Date: 2 Nov 2026 09:10:05 -0000
From: MAILER-DAEMON@mail.lists.example.com
To: bounces+%[3]s@lists.example.com
Subject: failure notice
Message-ID: <20261102091005.%[3]s.qmail@mail.lists.example.com>

Hi. This is the qmail-send program at mail.lists.example.com.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<%[1]s>:
192.0.2.10 does not like recipient.
Remote host said: %[2]s
Giving up on 192.0.2.10.

--- Below this line is a copy of the message.

`+returnedMessage, rcpt, reply, id)
	},
}

// softDays are the dates of the soft-bounce series: one full mailbox on
// three days in a row, which the default soft policy (3 distinct days
// within 15) suppresses, with an expiry.
var softDays = []string{"Sat, 31 Oct 2026", "Sun, 01 Nov 2026", "Mon, 02 Nov 2026"}

// softBounce is a Postfix DSN for a full mailbox on day d.
func softBounce(d string, n int) string {
	return fmt.Sprintf(`Return-Path: <>
Date: %[1]s 08:00:05 +0000 (UTC)
From: MAILER-DAEMON@mx.lists.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: bounces+soft%[2]d@lists.example.com
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="S%[2]d.1730448005/mx.lists.example.com"
Message-Id: <soft%[2]d.S%[2]d@mx.lists.example.com>

This is a MIME-encapsulated message.

--S%[2]d.1730448005/mx.lists.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.lists.example.com.

<hana@example.net>: host mx.example.net[192.0.2.25] said: 452 4.2.2 <hana@example.net>: Recipient address rejected: Mailbox full (in reply to RCPT TO
    command)

--S%[2]d.1730448005/mx.lists.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.lists.example.com
Arrival-Date: %[1]s 08:00:01 +0000 (UTC)

Final-Recipient: rfc822; hana@example.net
Original-Recipient: rfc822;hana@example.net
Action: failed
Status: 4.2.2
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 452 4.2.2 <hana@example.net>: Recipient address rejected: Mailbox full

--S%[2]d.1730448005/mx.lists.example.com
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Lists at Example <news@lists.example.com>
To: hana@example.net
Subject: Daily digest
Date: %[1]s 08:00:00 +0000
Message-ID: <digest-%[2]d.hana@lists.example.com>
List-Id: Example News <news.lists.example.com>
X-Campaign-Id: digest-%[2]d

--S%[2]d.1730448005/mx.lists.example.com--
`, d, n)
}
