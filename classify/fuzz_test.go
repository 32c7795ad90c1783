package classify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzClassify checks the invariants that hold for any input: no panic, and
// never a suppression from a sender-side category.
func FuzzClassify(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("From: a@b\r\n\r\nhello"))
	c := New(Options{MaxSize: 1 << 20})
	f.Fuzz(func(t *testing.T, raw []byte) {
		rep, err := c.Classify(raw)
		if err != nil {
			return
		}
		for _, r := range rep.Recipients {
			if r.Suppress && NeverSuppress(r.Category) {
				t.Fatalf("recipient %q: category %s suppressed (rule %s)", r.Address, r.Category, r.Rule)
			}
		}
		_ = rep.Records()
	})
}

// FuzzParseDSN checks the DSN field parser (RFC 3464 §2.2-2.3) on any
// delivery-status body: no panic, every recipient names an address, the
// action is lower case, and a limit either changes nothing or stops at it.
func FuzzParseDSN(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		l := strings.ToLower(string(b))
		for _, field := range []string{"reporting-mta:", "final-recipient:"} {
			if i := strings.Index(l, field); i >= 0 {
				f.Add(string(b[i:]), 3)
				break
			}
		}
	}
	f.Add("Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.1.1\n", 1)
	f.Add("Final-Recipient: rfc822;\n\t\"john smith\"@example.org\nOriginal-Recipient: utf-8; j\\x{FC}rgen@x.example\nAction: FAILED (bad)\n", 0)
	f.Fuzz(func(t *testing.T, body string, max int) {
		max %= 8
		all := parseDSN(body, 0)
		if all.tooMany {
			t.Fatalf("parseDSN(%q, 0): tooMany without a limit", body)
		}
		for _, r := range all.recipients {
			if r.Address == "" {
				t.Fatalf("parseDSN(%q): a recipient without an address: %+v", body, r)
			}
			if r.Action != strings.ToLower(r.Action) {
				t.Fatalf("parseDSN(%q): action %q not lower case", body, r.Action)
			}
		}
		if max <= 0 {
			return
		}
		lim := parseDSN(body, max)
		if len(lim.recipients) > max {
			t.Fatalf("parseDSN(%q, %d) = %d recipients, over the limit", body, max, len(lim.recipients))
		}
		if !lim.tooMany && len(lim.recipients) != len(all.recipients) {
			t.Fatalf("parseDSN(%q, %d) = %d recipients within the limit, %d without it", body, max, len(lim.recipients), len(all.recipients))
		}
	})
}
