package demo

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
)

func TestSamples(t *testing.T) {
	ss, err := Samples()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	sums := map[[32]byte]string{}
	n553 := 0
	for _, s := range ss {
		if names[s.Name] {
			t.Errorf("sample name %s twice", s.Name)
		}
		names[s.Name] = true
		if bytes.Contains(bytes.ReplaceAll(s.Raw, []byte("\r\n"), nil), []byte("\n")) {
			t.Errorf("%s has a bare LF", s.Name)
		}
		sum := sha256.Sum256(s.Raw)
		if prev, ok := sums[sum]; ok {
			t.Errorf("%s is the same message as %s", s.Name, prev)
		}
		sums[sum] = s.Name
		for _, r := range classify.New(classify.Options{}).Records(s.Raw) {
			if r.SMTPCode == 553 {
				n553++
			}
		}
	}
	if len(variants553) < 15 || n553 < len(variants553) {
		t.Errorf("%d 553 replies among the samples (%d generated), want every generated one", n553, len(variants553))
	}
}

func TestReplyText(t *testing.T) {
	for _, c := range []struct {
		in   string
		code int
		want string
	}{
		{"553 5.1.1 sorry, no mailbox here by that name.", 553, "553 5.1.1 sorry, no mailbox here by that name."},
		{"<a@example.com>: 192.0.2.10 does not like recipient.\nRemote host said: 553 sorry, rcpt user invalid (#5.7.1)\nGiving up on 192.0.2.10.", 553,
			"553 sorry, rcpt user invalid (#5.7.1)"},
		{"RSP^553 Relaying blocked", 553, "553 Relaying blocked"},
		{"host 192.0.2.5530 said 553 no", 553, "553 no"},
		{"smtp; 550 5.1.1 user unknown", 0, "smtp; 550 5.1.1 user unknown"},
		{"553 " + string(bytes.Repeat([]byte("é"), 100)), 553, "553 " + string(bytes.Repeat([]byte("é"), 71)) + "…"},
	} {
		if got := ReplyText(c.in, c.code); got != c.want {
			t.Errorf("ReplyText(%q, %d) = %q, want %q", c.in, c.code, got, c.want)
		}
	}
}
