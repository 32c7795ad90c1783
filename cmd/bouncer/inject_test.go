package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// A directory walk skips private/ (real bounces with personal data, kept
// beside the shareable ones and gitignored) and hidden entries; a path
// given as an argument is taken as given.
func TestInjectFilesSkipsPrivate(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{
		"a.eml", "b.EML", "notes.txt", ".hidden.eml",
		"private/secret.eml", "Private/secret2.eml", ".git/objects.eml",
		"sub/c.eml", "sub/private/deep.eml", "sub/.cache/x.eml",
	} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("Subject: x\n\nx\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rel := func(files []string, base string) []string {
		var out []string
		for _, f := range files {
			r, _ := filepath.Rel(base, f)
			out = append(out, filepath.ToSlash(r))
		}
		return out
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{dir}, []string{"a.eml", "b.EML", "sub/c.eml"}},
		{[]string{filepath.Join(dir, "private")}, []string{"private/secret.eml"}},                          // asked for by name
		{[]string{filepath.Join(dir, ".hidden.eml")}, []string{".hidden.eml"}},                             // a file given is taken
		{[]string{filepath.Join(dir, "sub"), filepath.Join(dir, "a.eml")}, []string{"sub/c.eml", "a.eml"}}, // in argument order
	} {
		got, err := injectFiles(c.args)
		if err != nil {
			t.Fatalf("injectFiles(%v) = %v", c.args, err)
		}
		if g := rel(got, dir); !slices.Equal(g, c.want) {
			t.Errorf("injectFiles(%v) = %v, want %v", rel(c.args, dir), g, c.want)
		}
	}
	// "." is the directory asked for, not a hidden one.
	t.Chdir(dir)
	got, err := injectFiles([]string{"."})
	if want := []string{"a.eml", "b.EML", "sub/c.eml"}; err != nil || !slices.Equal(rel(got, "."), want) {
		t.Errorf("injectFiles(.) = %v, %v; want %v", got, err, want)
	}
}

// Injecting into a folder that does not exist creates it, whatever the
// pipeline: the first APPEND goes alone, so the server's TRYCREATE comes
// back before any other is under way.
func TestInjectCreatesFolder(t *testing.T) {
	d := wt.StartDovecot(t)
	files, err := injectFiles([]string{filepath.Join("internal", "demo", "samples"), filepath.Join("..", "..", "classify", "testdata")})
	if err != nil || len(files) < 40 {
		t.Fatalf("samples: %d files, %v; want 40 or more", len(files), err)
	}
	for _, window := range []string{"1", "32"} {
		folder := "Fresh" + window
		vars := map[string]string{"BOUNCER_IMAP_PASSWORD": d.Password}
		var out, errOut strings.Builder
		url := fmt.Sprintf("imap://%s@%s/%s?tls=none", d.User, d.Addr(), folder)
		err := run(t.Context(), &env{stdout: &out, stderr: &errOut, getenv: func(k string) string { return vars[k] }},
			append([]string{"inject", "--pipeline", window, "--imap", url}, files...))
		if err != nil || !strings.Contains(out.String(), fmt.Sprintf("appended %d message(s)", len(files))) {
			t.Errorf("inject --pipeline %s into a new folder = %v: %s%s", window, err, out.String(), errOut.String())
			continue
		}
		c := wt.IMAPClient(t, d.Addr(), d.User, d.Password)
		if got := len(wt.ListFolder(t, c, folder)); got != len(files) {
			t.Errorf("--pipeline %s: %s holds %d messages, want %d", window, folder, got, len(files))
		}
		c.Close()
	}
}
