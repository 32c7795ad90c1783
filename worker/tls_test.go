package worker

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Certificate verification is never turned off in bouncer's own code:
// IMAP over TLS checks the server's name and chain (the system pool or
// ca_file=; imap_test.go's "unknown CA" cases), and plaintext (tls=none)
// is allowed to loopback only.
func TestNoInsecureSkipVerify(t *testing.T) {
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), "InsecureSkipVerify") {
			t.Errorf("%s sets InsecureSkipVerify: certificate verification must stay on", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
