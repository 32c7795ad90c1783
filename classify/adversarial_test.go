package classify

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Hostile shapes that could make the text reading slow. Each must classify
// (or fail) quickly; the time bound is generous, it only catches blow-ups.
func TestAdversarialInputsAreBounded(t *testing.T) {
	head := "From: MAILER-DAEMON@x.example\nTo: b@lists.example.com\nSubject: Undelivered Mail\n\n"
	cases := map[string]string{
		"many addresses on one line": head + strings.Repeat("a@b.example ", 80000),
		"many address lines":         head + strings.Repeat("<user@example.org>: 550 user unknown\n", 20000),
		"long line of digits":        head + strings.Repeat("5.5.5.", 150000),
		"many code lines":            head + strings.Repeat("550 5.1.1 no such user here\n", 30000),
		"at signs":                   head + strings.Repeat("@", 900000),
		"boundary lines":             "Content-Type: multipart/mixed; boundary=x\n\n" + strings.Repeat("--x\n\n", 1000),
		"long header":                "Subject: " + strings.Repeat("a", 900000) + "\n\nbody",
		"folded header":              "Subject: a\n" + strings.Repeat(" b\n", 200000) + "\nbody",
	}
	c := New(Options{MaxSize: 1 << 20})
	for name, raw := range cases {
		start := time.Now()
		rep, err := c.Classify([]byte(raw))
		d := time.Since(start)
		if d > 3*time.Second {
			t.Errorf("%s: took %v", name, d)
		}
		t.Logf("%s: %v", name, d)
		if err == nil {
			_ = rep.Records()
		}
	}
}

// A large returned message is cut after its header before MIME parsing;
// the classification is the same as with the whole message.
func TestLargeReturnedMessage(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "mailbox_unknown-postfix.eml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, "Hello from the list.")
	big := s[:i] + strings.Repeat("A newsletter paragraph that goes on and on.\n", 4000) + s[i:]
	if len(trimReturned([]byte(big))) >= len(big)/2 {
		t.Fatalf("trimReturned kept %d of %d bytes", len(trimReturned([]byte(big))), len(big))
	}
	a, err := Classify(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Classify([]byte(big))
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := a.Records(), b.Records()
	if len(ra) != len(rb) || !reflect.DeepEqual(ra[0], rb[0]) {
		t.Errorf("records differ:\n%+v\n%+v", ra, rb)
	}
	// A report whose delivery-status part comes after the returned message
	// is not cut.
	late := strings.Replace(big, "Content-Type: message/delivery-status", "Content-Type: message/x-late", 1) +
		"\n--4F1A2B3C4D.1730538005/mx.lists.example.com\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; x@example.org\nAction: failed\n"
	if got := trimReturned([]byte(late)); len(got) != len(late) {
		t.Errorf("trimReturned cut a report with a later delivery-status part")
	}
}
