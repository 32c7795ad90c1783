package secretenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret, empty := file("secret", "s3cret-from-file\r\n"), file("empty", " \n")
	for _, tc := range []struct {
		name      string
		env       map[string]string
		want, err string
	}{
		{"neither", nil, "", ""},
		{"variable, trimmed", map[string]string{"K": " s3cret "}, "s3cret", ""},
		{"file, trimmed", map[string]string{"K_FILE": secret}, "s3cret-from-file", ""},
		{"both", map[string]string{"K": "x", "K_FILE": secret}, "", "both K and K_FILE are set"},
		{"empty file", map[string]string{"K_FILE": empty}, "", "key file " + empty + " is empty"},
		{"missing file", map[string]string{"K_FILE": filepath.Join(dir, "missing")}, "", "read key file: "},
	} {
		got, err := Read(func(k string) string { return tc.env[k] }, "K", "key file")
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: Read = %q, %v; want %q, an error with %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}
