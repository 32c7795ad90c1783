package classify

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Hostile shapes that could make the text reading slow. Each must classify
// (or fail) in time linear in its size: a shape is read at a quarter of its
// size and whole, and the whole may take at most 10 times as long (linear
// is 4, quadratic 16); the header shapes stay under the header-block limit.
// Each time is the least of three runs, so a busy
// machine does not fail it; an absolute time bound would.
func TestAdversarialInputsAreBounded(t *testing.T) {
	head := "From: MAILER-DAEMON@x.example\nTo: b@lists.example.com\nSubject: Undelivered Mail\n\n"
	cases := map[string]func(n int) string{
		"many addresses on one line": func(n int) string { return head + strings.Repeat("a@b.example ", 80*n) },
		"many address lines":         func(n int) string { return head + strings.Repeat("<user@example.org>: 550 user unknown\n", 20*n) },
		"long line of digits":        func(n int) string { return head + strings.Repeat("5.5.5.", 150*n) },
		"many code lines":            func(n int) string { return head + strings.Repeat("550 5.1.1 no such user here\n", 30*n) },
		"at signs":                   func(n int) string { return head + strings.Repeat("@", 900*n) },
		"boundary lines": func(n int) string {
			return "Content-Type: multipart/mixed; boundary=x\n\n" + strings.Repeat("--x\n\n", n)
		},
		"long header":   func(n int) string { return "Subject: " + strings.Repeat("a", 240*n) + "\n\nbody" },
		"folded header": func(n int) string { return "Subject: a\n" + strings.Repeat(" b\n", 60*n) + "\nbody" },
	}
	c := New(Options{MaxSize: 1 << 20})
	for name, build := range cases {
		quarter, whole := leastTime(c, build(250)), leastTime(c, build(1000))
		t.Logf("%s: %v for a quarter, %v whole", name, quarter, whole)
		if whole > 50*time.Millisecond && whole > 10*max(quarter, time.Millisecond) {
			t.Errorf("%s: %v for a quarter of the input, %v for the whole: worse than linear", name, quarter, whole)
		}
	}
}

// leastTime is the least of three runs' times to classify raw and read its
// records.
func leastTime(c *Classifier, raw string) time.Duration {
	least := time.Duration(math.MaxInt64)
	for range 3 {
		start := time.Now()
		if rep, err := c.Classify([]byte(raw)); err == nil {
			_ = rep.Records()
		}
		least = min(least, time.Since(start))
	}
	return least
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
