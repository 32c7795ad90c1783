package classify_test

import (
	"fmt"

	"github.com/bouncer-mail/bouncer/classify"
)

// A qmail bounce of a mailbox that does not exist: the recipient is dead,
// and bouncer would suppress it.
func ExampleClassify() {
	raw := []byte(`From: MAILER-DAEMON@mail.example.net
To: bounces@lists.example.com
Subject: failure notice

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<ana@example.org>:
192.0.2.7 does not like recipient.
Remote host said: 553 sorry, no mailbox here by that name. (#5.1.1)
Giving up on 192.0.2.7.
`)
	rep, err := classify.Classify(raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rep.Records() {
		fmt.Println(r.Kind, r.Recipient, r.SMTPCode, r.Status, r.Category, r.Severity, r.Suppress)
	}
	// Output: mta_text ana@example.org 553 5.1.1 mailbox_unknown hard true
}

// The same reply code, 553, for a relay refusal: the sender's fault, so the
// subscriber is kept.
func ExampleExplain() {
	raw := []byte(`From: Mail Delivery System <Mailer-Daemon@relay.example.com>
To: bounces@lists.example.com
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: bo@example.org

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  bo@example.org
    SMTP error from remote mail server after RCPT TO:<bo@example.org>:
    host mx.example.org [192.0.2.8]: 553 5.7.1 Not an open relay, so get lost
`)
	rep, _ := classify.Classify(raw)
	rec := rep.Records()[0]
	e := classify.Explain(&rec)
	fmt.Println(rec.Category, rec.Suppress)
	fmt.Println("fault:", e.Fault)
	// Output:
	// relay_denied false
	// fault: sender
}
