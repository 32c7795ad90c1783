package classify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeRulesGenerated wants the README's rule table to be the one the
// code prints (`bouncer rules --markdown`).
func TestReadmeRulesGenerated(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- begin: bouncer rules --markdown (generated; do not edit) -->\n", "<!-- end: bouncer rules --markdown -->"
	_, rest, ok := strings.Cut(string(b), begin)
	got, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("README lacks the generated rules block (%q ... %q)", begin, end)
	}
	if want := RulesMarkdown(); got != want {
		t.Errorf("README's rule table differs from the code's; regenerate it with `go run ./cmd/bouncer rules --markdown`.\nwant:\n%s", want)
	}
}
