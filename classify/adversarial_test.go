package classify

import (
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
