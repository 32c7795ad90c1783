package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/store/storetest"
)

// runWith runs `bouncer args...` as a user would, with DATABASE_URL set to
// url, and returns what it printed.
func runWith(t *testing.T, url string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string {
			if k == "DATABASE_URL" {
				return url
			}
			return ""
		},
	}
	err = run(t.Context(), e, args)
	return out.String(), errb.String(), err
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	url := storetest.NewDatabase(t)

	out, _, err := runWith(t, url, "migrate")
	if err != nil || !strings.Contains(out, "applied 00001_schema.sql") {
		t.Fatalf("bouncer migrate (fresh) = %q, %v; want the applied migrations", out, err)
	}
	out, _, err = runWith(t, url, "migrate", "up")
	if err != nil || strings.TrimSpace(out) != "schema up to date" {
		t.Errorf("bouncer migrate up (again) = %q, %v; want up to date", out, err)
	}
	out, _, err = runWith(t, "postgres://nobody@127.0.0.1:1/x", "migrate", "--database-url", url, "status")
	if err != nil || !strings.Contains(out, "VERSION") || strings.Contains(out, "pending") || strings.Count(out, "applied") < 3 {
		t.Errorf("bouncer migrate --database-url URL status = %q, %v; want every migration applied (the flag wins over the env)", out, err)
	}
	if _, _, err := runWith(t, url, "migrate", "sideways"); !errors.Is(err, errUsage) {
		t.Errorf("bouncer migrate sideways = %v, want a usage error", err)
	}
}
