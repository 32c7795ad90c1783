package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
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
