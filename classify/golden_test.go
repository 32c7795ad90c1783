package classify

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the current output")

// TestGolden classifies every testdata/*.eml and compares the records with
// testdata/*.golden. Run `go test ./classify -run Golden -update` after a
// deliberate change and review the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var recs []Record
			rep, err := Classify(raw)
			if err != nil {
				recs = []Record{ErrorRecord(err)}
			} else {
				recs = rep.Records()
			}
			got, err := json.MarshalIndent(recs, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(f, ".eml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Classify(%s) records differ from %s:\ngot:\n%s\nwant:\n%s", f, golden, got, want)
			}
		})
	}
}

// TestFixtureCategories checks what the fixtures are named for: a fixture
// called "<category>-....eml" reports that category first, and the dead
// categories are suppressed while the others never are.
func TestFixtureCategories(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	known := map[Category]bool{}
	for _, c := range Categories {
		known[c] = true
	}
	seen := map[Category]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		want := Category(name[:strings.IndexByte(name, '-')])
		if !known[want] {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Classify(raw)
		if err != nil {
			t.Errorf("Classify(%s) = %v", name, err)
			continue
		}
		recs := rep.Records()
		if recs[0].Category != want {
			t.Errorf("Classify(%s) category = %s (rule %s), want %s", name, recs[0].Category, recs[0].Rule, want)
		}
		if recs[0].Suppress != deadCategory(want) {
			t.Errorf("Classify(%s) suppress = %v, want %v", name, recs[0].Suppress, deadCategory(want))
		}
		seen[want] = true
	}
	for _, c := range Categories {
		if !seen[c] {
			t.Errorf("no fixture for category %s", c)
		}
	}
}

func TestHostile(t *testing.T) {
	for _, tc := range []struct {
		file string
		want error // nil: classified
	}{
		{"hostile-deep-nesting.eml", ErrTooDeep},
		{"hostile-many-parts.eml", ErrTooManyParts},
		{"hostile-no-header.eml", ErrMalformed},
		{"hostile-cr-only.eml", nil},
		{"hostile-broken-boundary.eml", nil},
		{"hostile-unknown-charset-8bit.eml", nil},
		{"hostile-truncated-base64.eml", nil},
	} {
		raw, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Classify(raw)
		if !errors.Is(err, tc.want) {
			t.Errorf("Classify(%s) error = %v, want %v", tc.file, err, tc.want)
			continue
		}
		if tc.want == nil && !rep.Bounce() {
			t.Errorf("Classify(%s) found no bounce", tc.file)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "classify: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
	if _, err := New(Options{MaxSize: 100}).Classify(bytes.Repeat([]byte("a"), 101)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Classify(101 bytes, MaxSize 100) error = %v, want ErrTooLarge", err)
	}
	if _, err := Classify(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("Classify(nil) error = %v, want ErrMalformed", err)
	}
}

// A CR-only message that a server gave a CRLF or two (go-imap's memserver
// does) still reads as CR-only.
func TestMixedBareCR(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "hostile-cr-only.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{raw, append(bytes.Clone(raw), "\r\n"...), append([]byte("Return-Path: <>\r\n"), raw...)} {
		rep, err := Classify(b)
		if err != nil || rep.Kind != KindDSN || !rep.Recipients[0].Suppress {
			t.Errorf("Classify(CR-only with %d CRLF) = %+v, %v; want the DSN", bytes.Count(b, []byte("\r\n")), rep, err)
		}
	}
}

// LF, CRLF and CR CR LF (CRLF converted again by a text-mode copy)
// copies of a message classify alike, and so does a copy with only some
// lines doubled.
func TestLineEnds(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "mailbox_unknown-postfix.eml"))
	if err != nil {
		t.Fatal(err)
	}
	lf, err := Classify(raw)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(lf.Records())
	lines := bytes.SplitAfter(raw, []byte("\n"))
	for i := len(lines) / 2; i < len(lines); i++ {
		lines[i] = bytes.ReplaceAll(lines[i], []byte("\n"), []byte("\r\r\n"))
	}
	for name, b := range map[string][]byte{
		"CRLF":              bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n")),
		"CR CR LF":          bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\r\n")),
		"CR CR CR LF":       bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\r\r\n")),
		"LF, then CR CR LF": bytes.Join(lines, nil),
	} {
		rep, err := Classify(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got, _ := json.Marshal(rep.Records()); !bytes.Equal(got, want) {
			t.Errorf("LF and %s differ:\n%s\n%s", name, want, got)
		}
	}
}

func TestCollapseCRRuns(t *testing.T) {
	for in, want := range map[string]string{
		"a\r\r\nb": "a\r\nb", "a\r\r\r\n": "a\r\n", "a\r\nb": "a\r\nb", "a\r\rb\r\r": "a\r\rb\r\r",
		"\r\r\n\r\r\n": "\r\n\r\n", "a\n": "a\n",
	} {
		if got := string(collapseCRRuns([]byte(in))); got != want {
			t.Errorf("collapseCRRuns(%q) = %q, want %q", in, got, want)
		}
	}
}
