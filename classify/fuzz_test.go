package classify

import (
	"os"
	"path/filepath"
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
