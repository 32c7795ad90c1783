package classify

import (
	"slices"
	"strings"
	"testing"
)

// recipients returns the addresses Classify reports for raw.
func recipients(t *testing.T, raw string) []string {
	t.Helper()
	rep, err := Classify([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rep.Recipients {
		out = append(out, r.Address)
	}
	return out
}

// The parties of a bounce and of its returned original are never failed
// recipients, wherever the notice names them: the bounce address, the
// original's sender, its reply and errors addresses, its list's posting
// address and the address its List-Id stands for.
func TestNoticeLeavesPartiesOut(t *testing.T) {
	head := "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\nTo: bounces+x1@lists.example.com\n" +
		"Subject: Undelivered Mail Returned to Sender\n\n"
	original := "\n------ This is a copy of the message, including all the headers. ------\n\n" +
		"From: Example News <news@lists.example.com>\nReply-To: editor@example.com\nErrors-To: errors@example.com\n" +
		"List-Id: <weekly.lists.example.com>\nList-Post: <mailto:post@lists.example.com>\nTo: jo@example.net\n" +
		"Message-ID: <w-2026-12.x7@lists.example.com>\n" +
		"Subject: Weekly\n\nHello\n"
	for _, tc := range []struct{ name, notice string }{
		{"named with the recipient", "Your message to weekly@lists.example.com from news@lists.example.com\n" +
			"(replies to editor@example.com, errors to errors@example.com, posts to post@lists.example.com)\n" +
			"could not be delivered:\n\n  jo@example.net\n    550 5.1.1 user unknown\n"},
		{"only the parties named", "Your message from news@lists.example.com to weekly@lists.example.com,\n" +
			"replies to editor@example.com, could not be delivered.\n550 5.1.1 user unknown\n"},
		{"a contact address beside the recipient", "Your message to jo@example.net could not be delivered:\n" +
			"550 5.1.1 user unknown\nFor help, contact the postmaster at help@mx.example.net or write to desk@example.net.\n"},
		{"a message id", "Your message <w-2026-12.x7@lists.example.com> could not be delivered.\n550 5.1.1 user unknown\n"},
		{"the sender named by the reply", "Your message to <jo@example.net> could not be delivered.\n\nThe mail server said:\n" +
			"553 5.7.1 <bounces+x1@lists.example.com>: Sender address rejected: not logged in\n"},
		{"the bounce address strong", "bounces+x1@lists.example.com:\n  the original was refused\n\n" +
			"jo@example.net:\n  550 5.1.1 user unknown\n"},
	} {
		got := recipients(t, head+tc.notice+original)
		if !slices.Equal(got, []string{"jo@example.net"}) {
			t.Errorf("%s: recipients %q, want [jo@example.net]", tc.name, got)
		}
	}
}

// An ARF report gives every recipient it names (RFC 5965 §3.2, RFC 6650
// §5): each Original-Rcpt-To, else the returned message's To.
func TestARFEveryRecipient(t *testing.T) {
	arf := func(fields, to string) string {
		return "From: fbl@isp.example\nTo: abuse@lists.example.com\nSubject: FBL\nMIME-Version: 1.0\n" +
			"Content-Type: multipart/report; report-type=feedback-report; boundary=B\n\n--B\n" +
			"Content-Type: text/plain\n\nAn abuse report.\n--B\nContent-Type: message/feedback-report\n\n" +
			"Feedback-Type: abuse\nVersion: 1\n" + fields + "\n--B\nContent-Type: message/rfc822\n\n" +
			"From: news@lists.example.com\nTo: " + to + "\nSubject: Hi\n\nHello\n--B--\n"
	}
	for _, tc := range []struct {
		name, raw string
		want      []string
	}{
		{"one field each", arf("Original-Rcpt-To: <a@isp.example>\nOriginal-Rcpt-To: b@isp.example\nOriginal-Rcpt-To: rfc822; \"c d\"@isp.example\n", "list@lists.example.com"),
			[]string{"a@isp.example", "b@isp.example", `"c d"@isp.example`}},
		{"several in one field", arf("Original-Rcpt-To: a@isp.example, b@isp.example\n", "x@isp.example"),
			[]string{"a@isp.example", "b@isp.example"}},
		{"repeated", arf("Original-Rcpt-To: a@isp.example\nOriginal-Rcpt-To: A@isp.example\n", "x@isp.example"),
			[]string{"a@isp.example"}},
		{"only the original's To", arf("", "Jo <jo@isp.example>, ann@isp.example"),
			[]string{"jo@isp.example", "ann@isp.example"}},
	} {
		if got := recipients(t, tc.raw); !slices.Equal(got, tc.want) {
			t.Errorf("%s: recipients %q, want %q", tc.name, got, tc.want)
		}
	}
	textReport := strings.Replace(arf("Original-Rcpt-To: <a@isp.example>\n", "x@isp.example"),
		"Content-Type: message/feedback-report", "Content-Type: text/plain", 1)
	if got := recipients(t, textReport); !slices.Equal(got, []string{"a@isp.example"}) {
		t.Errorf("a feedback report labelled text/plain: recipients %q, want [a@isp.example]", got)
	}
	if got := recipients(t, arf("", "undisclosed-recipients:;")); len(got) != 1 || strings.Contains(got[0], "@") {
		t.Errorf("an ARF report naming nobody: recipients %q, want one complaint without an address", got)
	}
}

// classifyString classifies raw, failing the test on an error.
func classifyString(t *testing.T, raw string) *Report {
	t.Helper()
	rep, err := Classify([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// A free-text notice is read as a bounce when it comes from a mailer or
// under a bounce's subject and gives a reason, in words or in codes, even
// when its sender is no daemon and it names no reply code.
func TestSimpleNoticeDetected(t *testing.T) {
	for _, tc := range []struct{ name, raw, want string }{
		{"site-local, words only", "From: root@cs.example.edu\nTo: bounces@lists.example.com\nSubject: Returned mail: User unknown\n\n" +
			"jdoe@cs.example.edu\n    ... User unknown\n\n   ----- Unsent message follows -----\nFrom: news@lists.example.com\nTo: jdoe@cs.example.edu\n\nhi\n",
			"jdoe@cs.example.edu"},
		{"failed mail", "From: MAILER-DAEMON@mx.example.org\nSubject: Failed mail\n\nThe following recipient is unknown here:\n\n\tann@example.org\n",
			"ann@example.org"},
	} {
		rep := classifyString(t, tc.raw)
		if !rep.Bounce() || len(rep.Recipients) != 1 || rep.Recipients[0].Address != tc.want {
			t.Errorf("%s: kind %s, recipients %+v, want a bounce for %s", tc.name, rep.Kind, rep.Recipients, tc.want)
		}
	}
	human := "From: Jo <jo@example.org>\nTo: news@lists.example.com\nSubject: Re: Returned mail\n\nThe user unknown to you is me.\n"
	if rep := classifyString(t, human); rep.Bounce() {
		t.Errorf("a person's reply read as a bounce: %+v", rep.Recipients)
	}
}

// Delay warnings are warnings, whatever words say so.
func TestTextDelayWarning(t *testing.T) {
	for _, words := range []string{
		"Warning: message still undelivered after 4 hours",
		"Delivery attempts will continue for 5 days.",
		"The server will retry delivery for up to 48 hours.",
		"We will keep trying to deliver your message.",
	} {
		raw := "From: MAILER-DAEMON@relay.example.net\nSubject: Mail delivery notification\n\n" +
			"Your message could not be delivered to:\n\n  noor@slow.example.org\n\n421 4.4.2 connection dropped\n" + words + "\n"
		rep := classifyString(t, raw)
		if rep.Kind != KindDelayed || len(rep.Recipients) != 1 || rep.Recipients[0].Action != "delayed" || rep.Recipients[0].Suppress {
			t.Errorf("%q: kind %s, recipients %+v, want one delayed recipient", words, rep.Kind, rep.Recipients)
		}
	}
}

// A mailing list refusing a post is a bounce of the post, never a dead
// address: whatever it says, nobody is suppressed.
func TestListRefusalNeverSuppresses(t *testing.T) {
	for _, words := range []string{
		"You are not a member of this list; non-members are not allowed to post.",
		"You do not have permission to post to this group.",
		"Posting is restricted to subscribers of this closed list.",
	} {
		raw := "From: club-owner@lists.example.org\nTo: news@lists.example.com\nSubject: Your message to Club was rejected\n" +
			"Auto-Submitted: auto-replied\n\nYour message to club@lists.example.org has been rejected.\n" + words + "\n"
		rep := classifyString(t, raw)
		if !rep.Bounce() || rep.Kind == KindAutoReply {
			t.Errorf("%q: kind %s, want a bounce of the post", words, rep.Kind)
		}
		for _, r := range rep.Recipients {
			if r.Suppress || deadCategory(r.Category) {
				t.Errorf("%q: %s is %s, suppress %v (rule %s)", words, r.Address, r.Category, r.Suppress, r.Rule)
			}
		}
	}
}

// Auto-Submitted marks every Exim bounce (RFC 3834 §5): with a bounce's
// evidence and no recipient found, the message is left for a person, not
// taken for a vacation reply.
func TestAutoSubmittedBounceIsNoAutoReply(t *testing.T) {
	raw := "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\nAuto-Submitted: auto-replied\n" +
		"Subject: Mail delivery failed: returning message to sender\n\n" +
		"This message was created automatically by mail delivery software.\n" +
		"A message that you sent could not be delivered to one or more of its recipients.\n"
	if rep := classifyString(t, raw); rep.Kind == KindAutoReply {
		t.Errorf("an Exim failure read as %s", rep.Kind)
	}
}

// A notice that names nobody falls back on the returned original's To, but
// not when that is the list's own address (the members were in Bcc).
func TestNoticeFallbackNotTheList(t *testing.T) {
	raw := "From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail Returned to Sender\n\n" +
		"Delivery failed: 550 5.1.1 user unknown\n\n------ This is a copy of the message, including all the headers. ------\n\n" +
		"From: news@lists.example.com\nTo: TO\nList-Post: <mailto:weekly@lists.example.com>\nSubject: Weekly\n\nHello\n"
	if got := recipients(t, strings.Replace(raw, "TO", "jo@example.net", 1)); !slices.Equal(got, []string{"jo@example.net"}) {
		t.Errorf("original To a member: recipients %q, want [jo@example.net]", got)
	}
	if rep := classifyString(t, strings.Replace(raw, "TO", "weekly@lists.example.com", 1)); len(rep.Recipients) > 0 && rep.Recipients[0].Address == "weekly@lists.example.com" {
		t.Errorf("original To the list: the list reported as failed (%+v)", rep.Recipients)
	}
}

// A DSN block without an Action in a delay warning is a delay; one with a
// permanent status, or with its own Action, keeps what it says.
func TestDSNWarningWithoutAction(t *testing.T) {
	dsn := func(block string) string {
		return "From: MAILER-DAEMON@mx.example.net\nSubject: Delivery status notification\nMIME-Version: 1.0\n" +
			"Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n--B\nContent-Type: text/plain\n\n" +
			"Your message has not been delivered yet. Delivery attempts will continue for 4 days.\n\n" +
			"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n" +
			"Final-Recipient: rfc822; jo@example.org\n" + block + "\n--B--\n"
	}
	for _, tc := range []struct{ block, action string }{
		{"Status: 4.4.1\nDiagnostic-Code: smtp; 421 4.4.1 timed out\n", "delayed"},
		{"", "delayed"},
		{"Status: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n", ""},
		{"Action: failed\nStatus: 4.4.7\n", "failed"},
	} {
		rep := classifyString(t, dsn(tc.block))
		if len(rep.Recipients) != 1 || rep.Recipients[0].Action != tc.action {
			t.Errorf("%q: recipients %+v, want action %q", tc.block, rep.Recipients, tc.action)
		}
	}
}

// A notice in another language, with no reply code, is read by its
// subject and words like an English one.
func TestForeignNoticeDetected(t *testing.T) {
	for _, tc := range []struct{ subject, body string }{
		{"Non remis : Nouvelles de décembre", "Votre message n'a pas pu être remis à <marie@exemple.fr>.\n\nmarie@exemple.fr : utilisateur inconnu\n"},
		{"Nicht zustellbar: Dezember-Neuigkeiten", "Ihre Nachricht konnte nicht zugestellt werden.\n\n<jonas@beispiel.de>: Benutzer unbekannt\n"},
		{"Non recapitabile: novità", "Il messaggio non è stato possibile recapitare a:\n\n<luca@esempio.it>: utente sconosciuto\n"},
	} {
		raw := "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@lists.example.com\r\nSubject: " + tc.subject +
			"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(tc.body, "\n", "\r\n")
		rep := classifyString(t, raw)
		if !rep.Bounce() || len(rep.Recipients) != 1 || rep.Recipients[0].Category != MailboxUnknown {
			t.Errorf("%q: kind %s, recipients %+v; want one mailbox_unknown", tc.subject, rep.Kind, rep.Recipients)
		}
	}
}

// listmonk names its campaign in X-Listmonk-Campaign.
func TestListmonkCampaignHeader(t *testing.T) {
	raw := "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@lists.example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n<ana@example.org>: host mx.example.org[192.0.2.1] said: 550 5.1.1 User unknown (in reply to RCPT TO command)\r\n\r\n" +
		"--- Below this line is a copy of the message.\r\n\r\nFrom: news@lists.example.com\r\nTo: ana@example.org\r\nMessage-ID: <lm1@lists.example.com>\r\n" +
		"X-Listmonk-Campaign: 5e2e0a35-1f0e-4c7b-9d0a-3f1c2b7f9a11\r\nSubject: News\r\n\r\nhi\r\n"
	rep := classifyString(t, raw)
	if got := rep.Original.CampaignID; got != "5e2e0a35-1f0e-4c7b-9d0a-3f1c2b7f9a11" {
		t.Errorf("campaign %q, want listmonk's", got)
	}
}
