package classify

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// RuleRow is one row of the decision table as a support engineer reads it:
// what the failure looks like, and what follows.
type RuleRow struct {
	N        int    // the row's place: the first row that holds decides
	Name     string // the row's name
	Words    string // the leading phrase's family, "dead-address" for any of the four, "none"
	Stage    string // the SMTP stages the row covers, "?" unknown; "" any
	Status   string // the status patterns, "" any
	Also     string // further conditions on the words, in plain words
	Category string // the category that follows
	Severity string
	Suppress string
	Why      string
	Example  string // a failure the row decides
}

// Rules returns the decision table, in order of precedence.
func Rules() []RuleRow {
	out := make([]RuleRow, 0, len(decisionTable))
	for i := range decisionTable {
		w := &decisionTable[i]
		rr := RuleRow{N: i + 1, Name: w.name, Stage: w.stage, Status: w.status, Why: w.why,
			Suppress: w.suppress.String(), Example: exampleText(w)}
		rr.Words = wordsCell(w)
		rr.Also = alsoCell(w)
		rr.Category, rr.Severity = string(w.category), ""
		switch {
		case w.name == "status":
			rr.Category, rr.Severity = "the status's", "the category's"
		case w.category == "":
			rr.Category = w.text
		}
		if rr.Severity == "" {
			rr.Severity = string(severityOf(Category(rr.Category)))
		}
		if !deadCategory(Category(rr.Category)) && w.suppress == supPermanent && w.name != "status" {
			rr.Suppress = "never"
		}
		out = append(out, rr)
	}
	return out
}

func wordsCell(w *row) string {
	switch {
	case w.text == "":
		return "any"
	case w.text == "dead":
		return "dead-address words"
	case w.text == "none":
		return "none"
	case w.strong:
		return w.text + " words (strong)"
	}
	return w.text + " words"
}

func alsoCell(w *row) string {
	var parts []string
	if w.action != "" {
		parts = append(parts, "Action: "+w.action)
	}
	if w.code > 0 {
		parts = append(parts, fmt.Sprintf("reply code %d", w.code))
	} else if w.code < 0 {
		parts = append(parts, "a reply code")
	}
	for _, n := range w.names {
		if strings.HasPrefix(n, "!") {
			parts = append(parts, "not "+n[1:])
		} else {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, "; ")
}

func exampleText(w *row) string {
	var b strings.Builder
	if w.example.Command != "" {
		b.WriteString("[" + w.example.Command + "] ")
	}
	if w.example.Status != "" && !strings.Contains(w.example.Diagnostic, w.example.Status) {
		b.WriteString("Status " + w.example.Status + ": ")
	}
	b.WriteString(w.example.Diagnostic)
	return b.String()
}

// WriteRules writes the decision table, the word tests it names and the
// steps around it as plain text (`bouncer rules`).
func WriteRules(w io.Writer) error {
	fmt.Fprintln(w, "How bouncer decides, for each failed recipient. The first row that holds decides.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\trow\twords\tstage\tstatus\talso\tcategory\tseverity\tsuppress")
	for _, r := range Rules() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.N, r.Name, r.Words, dash(r.Stage),
			dash(r.Status), dash(r.Also), r.Category, r.Severity, r.Suppress)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nWhy, with an example of each row:")
	for _, r := range Rules() {
		fmt.Fprintf(w, "%3d %s: %s.\n      e.g. %s\n", r.N, r.Name, r.Why, r.Example)
	}
	fmt.Fprintln(w, "\nWord tests:")
	for _, n := range wordTestNames() {
		fmt.Fprintf(w, "  %s: %s\n", n, wordTests[n].doc)
	}
	fmt.Fprintln(w, "\nBefore the table:")
	for _, s := range stepsBefore {
		fmt.Fprintln(w, "  - "+s)
	}
	fmt.Fprintln(w, "After the table:")
	for _, s := range stepsAfter {
		fmt.Fprintln(w, "  - "+s)
	}
	fmt.Fprintln(w, "\nStatus codes (RFC 3463; subject.detail, else the subject alone):")
	for _, k := range statusKeys() {
		fmt.Fprintf(w, "  X.%s: %s\n", k, statusRules[k])
	}
	fmt.Fprintln(w, "\nDirectory words (a mailbox host's own lookup):", strings.Join(directoryPhrases, " | "))
	fmt.Fprintln(w, "\nPhrase families (lower case; matched in this order, strong before weak):")
	for _, f := range Families() {
		fmt.Fprintf(w, "  %s (%d): %s\n", f.Name, len(f.Phrases), strings.Join(f.Phrases, " | "))
	}
	return nil
}

// RulesMarkdown is the decision table as the README shows it.
func RulesMarkdown() string {
	var b strings.Builder
	b.WriteString("| # | row | words | stage | status | also | category | severity | suppress | why |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range Rules() {
		fmt.Fprintf(&b, "| %d | `%s` | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.N, r.Name, r.Words,
			dash(r.Stage), dash(r.Status), dash(r.Also), r.Category, r.Severity, r.Suppress, mdEscape(r.Why))
	}
	b.WriteString("\nWord tests: ")
	for i, n := range wordTestNames() {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "`%s`: %s", n, mdEscape(wordTests[n].doc))
	}
	b.WriteString(".\n\nBefore the table:\n\n")
	for _, s := range stepsBefore {
		b.WriteString("- " + mdEscape(s) + "\n")
	}
	b.WriteString("\nAfter the table:\n\n")
	for _, s := range stepsAfter {
		b.WriteString("- " + mdEscape(s) + "\n")
	}
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func wordTestNames() []string {
	return []string{"names_sender", "no_sender_words", "names_other_domain", "names_no_account", "rcpt_evidence"}
}

// statusKeys returns statusRules' keys by subject, then detail.
func statusKeys() []string {
	keys := make([]string, 0, len(statusRules))
	for k := range statusRules {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		as, ad, _ := strings.Cut(a, ".")
		bs, bd, _ := strings.Cut(b, ".")
		if c := cmp.Compare(atoiOr(as), atoiOr(bs)); c != 0 {
			return c
		}
		return cmp.Compare(atoiOr(ad), atoiOr(bd))
	})
	return keys
}

func atoiOr(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// Family is a phrase family: the words that name one cause.
type Family struct {
	Name    string
	Weak    bool
	Phrases []string
}

// Families returns the phrase families in the order they are matched.
func Families() []Family {
	out := []Family{{Name: "suppression_list", Phrases: suppressionPhrases}}
	for _, r := range phraseRules {
		out = append(out, Family{Name: string(r.category), Phrases: r.phrases})
	}
	for _, r := range foreignRules {
		out = append(out, Family{Name: string(r.category) + " (other languages)", Phrases: r.phrases})
	}
	for _, r := range weakRules {
		out = append(out, Family{Name: string(r.category) + " (weak)", Weak: true, Phrases: r.phrases})
	}
	return out
}

// stepsBefore and stepsAfter are the documented steps around the table.
var stepsBefore = []string{
	"The deciding status: when the Status field and the status the remote quotes in its reply differ, the quote decides (the remote's own word) and the rule records the overruled field (+status_field:X); a generic field (X.0.0) gives way to a specific quote.",
	"The class: the status's class digit, else the reply code's; a 4xx reply quoting a 5.x.x status is temporary.",
	"The leading phrase: the first phrase family the words contain, strong families first; weak families only when the stage is not the greeting, HELO or MAIL FROM; a weak dead-address phrase gives way to a status naming another cause.",
	"The stage: the SMTP command the bounce says the failure answered (in reply to RCPT TO, after end of data, a transcript), else unknown (?).",
}

var stepsAfter = []string{
	"A 521 reply (RFC 7504, the host accepts no mail) that left the failure system or unknown makes it domain_unknown (code:521).",
	"Severity follows the category; a failure of no class that says nothing more is hard; a temporary (4xx) one is soft (+temporary).",
	"Suppress only where the row allows it, for a dead-address category, and a permanent failure.",
	"Given up at RCPT TO: a temporary user-unknown answered to RCPT TO with a 4.1.x status, that the reporting MTA's own DSN says it stopped retrying (Action: failed), suppresses (+given_up).",
	"A null MX (RFC 7505) suppresses whatever the class (+null_mx).",
	"The bounce of our own auto-reply (the returned message carries Auto-Submitted, X-Autorespond or Precedence: auto_reply) never suppresses (+original_auto_reply).",
}
