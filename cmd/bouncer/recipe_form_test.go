package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/store/storetest"
)

// The form recipe's script, run as a form system would against a real
// `bouncer serve` (token required) on a real Postgres.
func TestRecipeForm(t *testing.T) {
	t.Parallel()
	const token = "form-recipe-token-0123456789"
	dbURL := storetest.Migrated(t)
	for _, args := range [][]string{
		{"add", "gone@example.org", "--reason", "hard", "--by", "test"},
		{"add", "quiet@example.org", "--reason", "unsubscribe", "--list", "news", "--by", "test"},
	} {
		if out, _, err := runWith(t, dbURL, append([]string{"suppressions"}, args...)...); err != nil {
			t.Fatalf("suppressions %v = %q, %v", args, out, err)
		}
	}
	srv := startServe(t, map[string]string{"DATABASE_URL": dbURL, "BOUNCER_HTTP_TOKEN": token}, "--addr", "127.0.0.1:0")
	for _, tc := range []struct {
		args      []string
		token     string
		exit      int
		out, errs string
	}{
		{[]string{"ok@example.org"}, token, 0, "yes", ""},
		{[]string{"Gone@Example.org"}, token, 1, `no: {"address":"Gone@Example.org","normalized":"gone@example.org","suppressed":true,"scope":"global","reason":"hard"`, ""},
		{[]string{"quiet@example.org"}, token, 0, "yes", ""},
		{[]string{"quiet@example.org", "news"}, token, 1, `"scope":"list","reason":"unsubscribe"`, ""},
		{[]string{"ok@example.org"}, "wrong-token-wrong-token", 2, "", "may-send: cannot tell: "},
		{[]string{"not-an-address"}, token, 2, "", "is not an email address"},
		{nil, token, 2, "", "usage: may-send.sh ADDRESS [LIST]"},
	} {
		cmd := exec.CommandContext(t.Context(), "sh", append([]string{"../../deploy/recipes/form/may-send.sh"}, tc.args...)...)
		cmd.Env = append(cleanEnv(), "BOUNCER_URL="+srv.url, "BOUNCER_TOKEN="+tc.token)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		exit := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			exit = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("may-send.sh %v: %v", tc.args, err)
		}
		if exit != tc.exit || !strings.Contains(string(out), tc.out) || !strings.Contains(stderr.String(), tc.errs) {
			t.Errorf("may-send.sh %v = exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, exit, out, stderr.String(), tc.exit, tc.out, tc.errs)
		}
	}
}
