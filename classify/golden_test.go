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

// CRLF and LF copies of a message classify alike.
func TestLineEnds(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "mailbox_unknown-postfix.eml"))
	if err != nil {
		t.Fatal(err)
	}
	lf, err := Classify(raw)
	if err != nil {
		t.Fatal(err)
	}
	crlf, err := Classify(bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(lf.Records())
	b, _ := json.Marshal(crlf.Records())
	if !bytes.Equal(a, b) {
		t.Errorf("LF and CRLF differ:\n%s\n%s", a, b)
	}
}
