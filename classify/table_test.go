package classify

import (
	"strings"
	"testing"
)

// TestDecisionRowsReachable decides each row's example and wants that row
// to decide it: a row that an earlier one shadows, or whose example does
// not show what it covers, fails here.
func TestDecisionRowsReachable(t *testing.T) {
	seen := map[string]bool{}
	for i := range decisionTable {
		w := &decisionTable[i]
		if seen[w.name] {
			t.Errorf("row %d: name %q used twice", i, w.name)
		}
		seen[w.name] = true
		if w.why == "" || w.rule == "" {
			t.Errorf("row %q: no why or no rule", w.name)
		}
		for _, n := range w.names {
			if _, ok := wordTests[trimBang(n)]; !ok {
				t.Errorf("row %q: unknown word test %q", w.name, n)
			}
		}
		ex := w.example
		if ex.Address == "" {
			ex.Address = "x@example.org"
		}
		if ex.Action == "" {
			ex.Action = "failed"
		}
		if ex.SMTPCode == 0 {
			ex.SMTPCode = findReplyCode(ex.Diagnostic)
		}
		d := decide(&ex, facts{dsnAction: true})
		if d.row != w.name {
			t.Errorf("row %q can never decide its example %q (stage %q, status %q): row %q does (%s)",
				w.name, ex.Diagnostic, ex.Command, ex.Status, d.row, d.rule)
		}
	}
}

func trimBang(s string) string {
	if len(s) > 0 && s[0] == '!' {
		return s[1:]
	}
	return s
}

func TestWriteRules(t *testing.T) {
	var b strings.Builder
	if err := WriteRules(&b); err != nil {
		t.Fatal(err)
	}
	for _, w := range decisionTable {
		if !strings.Contains(b.String(), w.name) {
			t.Errorf("WriteRules does not name row %q", w.name)
		}
	}
	if testing.Verbose() {
		t.Log("\n" + b.String())
	}
}

// Phrases match on word boundaries; a stem written with '*' takes any
// ending.
func TestPhraseWordBoundaries(t *testing.T) {
	for _, tc := range []struct {
		text string
		want Category
	}{
		{"listed in an rbl", Blocked},
		{"the verblist is long", ""},           // "rbl" inside a word
		{"ip address blacklisted", Blocked},    // the stem "blacklist*"
		{"greylisting in action", RateLimited}, // the stem "greylist*"
		{"nospfrecord here", ""},               // "spf" inside a word
		{"a throttled sender", RateLimited},
		{"user unknownly", ""}, // a whole phrase must end on a boundary
		{"user unknown.", MailboxUnknown},
	} {
		c, p, _ := matchPhrase(normalize(tc.text), true)
		if c != tc.want {
			t.Errorf("matchPhrase(%q) = %q (%q), want %q", tc.text, c, p, tc.want)
		}
	}
}
