package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/store/storetest"
)

// bouncer suppressions import: a dry run writes nothing, the import
// writes, a second one adds nothing; the API's import path.
func TestSuppressionsImportCommand(t *testing.T) {
	t.Parallel()
	url := storetest.Migrated(t)
	file := filepath.Join(t.TempDir(), "old-system.csv")
	if err := os.WriteFile(file, []byte("address,list_id,reason\nana@example.com,,hard\nbob@example.com,news,complaint\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dry-run", file}, "2 suppressions read: 2 added, 0 unchanged (dry run: nothing written)"},
		{[]string{file, "--by", "migration"}, "2 suppressions read: 2 added, 0 unchanged"},
		{[]string{file}, "2 suppressions read: 0 added, 2 unchanged"},
	} {
		out, _, err := runWith(t, url, append([]string{"suppressions", "import"}, tc.args...)...)
		if err != nil || strings.TrimSpace(out) != tc.want {
			t.Errorf("suppressions import %v = %q, %v; want %q", tc.args, out, err, tc.want)
		}
	}
	out, _, err := runWith(t, url, "suppressions", "list", "--json")
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"created_by":"migration"`) {
		t.Errorf("suppressions list after import = %q, %v; want the 2 imported by migration", out, err)
	}
}
