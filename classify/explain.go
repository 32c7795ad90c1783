package classify

import (
	"fmt"
	"io"
)

// WriteExplanation writes a human explanation of one record: what happened,
// whose fault it is, what to do, and whether bouncer suppresses.
func WriteExplanation(w io.Writer, rec *Record) {
	if rec.Error != "" {
		fmt.Fprintf(w, "  could not classify: %s\n", rec.Error)
		return
	}
	if !rec.Bounce {
		fmt.Fprintf(w, "  not a bounce (%s)\n", rec.Kind)
		return
	}
	fmt.Fprintf(w, "  %s: %s (%s) status %s code %d, suppress %v, rule %s\n",
		rec.Recipient, rec.Category, rec.Severity, rec.Status, rec.SMTPCode, rec.Suppress, rec.Rule)
}
