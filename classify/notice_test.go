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
		"Subject: Weekly\n\nHello\n"
	for _, tc := range []struct{ name, notice string }{
		{"named with the recipient", "Your message to weekly@lists.example.com from news@lists.example.com\n" +
			"(replies to editor@example.com, errors to errors@example.com, posts to post@lists.example.com)\n" +
			"could not be delivered:\n\n  jo@example.net\n    550 5.1.1 user unknown\n"},
		{"only the parties named", "Your message from news@lists.example.com to weekly@lists.example.com,\n" +
			"replies to editor@example.com, could not be delivered.\n550 5.1.1 user unknown\n"},
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
	if got := recipients(t, arf("", "undisclosed-recipients:;")); len(got) != 1 || strings.Contains(got[0], "@") {
		t.Errorf("an ARF report naming nobody: recipients %q, want one complaint without an address", got)
	}
}
