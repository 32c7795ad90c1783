package demo

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

// Folders counts the messages in the demo mailbox's folders.
type Folders struct {
	Inbox      int // left for a person: mail that is not a bounce
	Processed  int
	Quarantine int
}

// Row counts the failed recipients of one category and severity, and the
// suppressions they are the evidence of.
type Row struct {
	Category   classify.Category
	Severity   classify.Severity
	Recipients int
	Suppressed int
}

// Reply counts the 553 replies of one text that got one category.
type Reply struct {
	Category classify.Category
	Text     string
	N        int
}

// Summary is what `bouncer demo` reports of its samples: what the database
// holds for them and where the mailbox put them. Processing is idempotent,
// so it is the same however often the demo runs against one database.
type Summary struct {
	Messages int            // samples seeded
	Kinds    map[string]int // recorded messages by kind; "quarantined" when unreadable
	Folders  Folders
	Rows     []Row   // by category (in DESIGN.md's order), then severity
	Replies  []Reply // the 553 replies, by category, then text
	// Suppressions counts the suppressions by reason; Removed how many of
	// them were removed since (expired, or undone by a person).
	Suppressions map[store.Reason]int
	Removed      int
	// BounceEvents and SuppressionEvents are the events the records make:
	// one bounce.<severity>.<category> per failed recipient, one
	// suppression.added per suppression (and per upgrade).
	BounceEvents      int
	SuppressionEvents int
}

// Summarize builds the summary of n seeded messages from what the store
// recorded for them and the mailbox's folders.
func Summarize(n int, rec store.Recorded, f Folders) Summary {
	s := Summary{Messages: n, Kinds: map[string]int{}, Folders: f, Suppressions: map[store.Reason]int{}}
	for _, m := range rec.Messages {
		if m.ParseError != "" {
			s.Kinds["quarantined"]++
		} else {
			s.Kinds[string(m.Kind)]++
		}
	}
	rows := map[Row]int{} // key without counts
	replies := map[Reply]int{}
	severityOf := map[int64]classify.Severity{}
	for _, b := range rec.Bounces {
		rows[Row{Category: b.Category, Severity: b.Severity}]++
		severityOf[b.ID] = b.Severity
		if b.SMTPCode == 553 {
			replies[Reply{Category: b.Category, Text: ReplyText(b.Diagnostic, b.SMTPCode)}]++
		}
	}
	suppressed := map[Row]int{}
	for _, sp := range rec.Suppressions {
		s.Suppressions[sp.Reason]++
		if !sp.RemovedAt.IsZero() {
			s.Removed++
		}
		suppressed[Row{Category: sp.Category, Severity: severityOf[sp.BounceID]}]++
		s.SuppressionEvents++
		if sp.UpgradedFrom != "" {
			s.SuppressionEvents++
		}
	}
	for k, n := range rows {
		k.Recipients, k.Suppressed = n, suppressed[k]
		s.Rows = append(s.Rows, k)
	}
	for k, n := range replies {
		k.N = n
		s.Replies = append(s.Replies, k)
	}
	s.BounceEvents = len(rec.Bounces)
	s.Sort()
	return s
}

// Sort puts Rows and Replies in their printed order.
func (s *Summary) Sort() {
	slices.SortFunc(s.Rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(categoryRank(a.Category), categoryRank(b.Category)),
			cmp.Compare(severityRank(a.Severity), severityRank(b.Severity)))
	})
	slices.SortFunc(s.Replies, func(a, b Reply) int {
		return cmp.Or(cmp.Compare(categoryRank(a.Category), categoryRank(b.Category)), strings.Compare(a.Text, b.Text))
	})
}

func categoryRank(c classify.Category) int {
	if i := slices.Index(classify.Categories, c); i >= 0 {
		return i
	}
	return len(classify.Categories)
}

func severityRank(s classify.Severity) int {
	return slices.Index([]classify.Severity{classify.Hard, classify.Soft, classify.None}, s)
}

// ReplyText is a diagnostic as the summary shows it: one line, starting at
// the reply code when the text around it is the bounce's own words (a
// free-text bounce quotes the server inside its notice), at most 76
// characters.
func ReplyText(d string, code int) string {
	d = strings.Join(strings.Fields(d), " ")
	if code > 0 {
		c := strconv.Itoa(code)
		for i := 0; i+len(c) <= len(d); i++ {
			j := strings.Index(d[i:], c)
			if j < 0 {
				break
			}
			i += j
			end := i + len(c)
			if (i == 0 || !isDigit(d[i-1])) && (end == len(d) || !isDigit(d[end])) {
				d = d[i:]
				break
			}
		}
	}
	// qmail's notice goes on after the remote's words.
	d, _, _ = strings.Cut(d, " Giving up on ")
	if r := []rune(d); len(r) > 76 {
		d = string(r[:75]) + "…"
	}
	return d
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// kindOrder is the order of the kinds in the messages line.
var kindOrder = []string{
	string(classify.KindDSN), string(classify.KindMTAText), string(classify.KindDelayed),
	string(classify.KindAutoReply), string(classify.KindComplaint), string(classify.KindNotBounce), "quarantined",
}

// SummaryHeader starts the summary block; a blank line ends it.
const SummaryHeader = "Summary"

// Write prints the summary: a block that starts with SummaryHeader and
// ends with a blank line.
func (s *Summary) Write(w io.Writer) {
	fmt.Fprintf(w, "%s of the %d sample messages, as the database records them:\n", SummaryHeader, s.Messages)
	var kinds []string
	recorded := 0
	for _, k := range kindOrder {
		if n := s.Kinds[k]; n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
			recorded += n
		}
	}
	if n := s.Messages - recorded; n > 0 {
		kinds = append(kinds, fmt.Sprintf("not recorded %d", n))
	}
	fmt.Fprintf(w, "  messages       %s\n", strings.Join(kinds, ", "))
	fmt.Fprintf(w, "  mailbox        Processed %d, Quarantine %d (unreadable), INBOX %d (not a bounce: left unread for a person)\n",
		s.Folders.Processed, s.Folders.Quarantine, s.Folders.Inbox)

	// A delay warning and a complaint are not failures: counted apart.
	failed, delayed, complaints := 0, 0, 0
	for _, r := range s.Rows {
		switch r.Category {
		case classify.Delayed:
			delayed += r.Recipients
		case classify.Complaint:
			complaints += r.Recipients
		default:
			failed += r.Recipients
		}
	}
	fmt.Fprintf(w, "  recipients     %d failed, %d delayed (a warning), %d complaint(s); by category and severity:\n", failed, delayed, complaints)
	fmt.Fprintf(w, "      %-18s %-8s %10s %10s\n", "category", "severity", "recipients", "suppressed")
	for _, r := range s.Rows {
		fmt.Fprintf(w, "      %-18s %-8s %10d %10d\n", r.Category, r.Severity, r.Recipients, r.Suppressed)
	}

	n553 := 0
	for _, r := range s.Replies {
		n553 += r.N
	}
	fmt.Fprintf(w, "  553 replies    %d; the code says nothing, the text decides whose fault it is:\n", n553)
	var last classify.Category
	for i, r := range s.Replies {
		if i == 0 || r.Category != last {
			n := 0
			for _, x := range s.Replies[i:] {
				if x.Category == r.Category {
					n += x.N
				}
			}
			fmt.Fprintf(w, "      %-18s %3d  %s\n", r.Category, n, faultWords(r.Category))
			last = r.Category
		}
		times := ""
		if r.N > 1 {
			times = fmt.Sprintf(" (×%d)", r.N)
		}
		fmt.Fprintf(w, "          %s%s\n", r.Text, times)
	}

	var reasons []string
	sup := 0
	for _, r := range []store.Reason{store.ReasonHard, store.ReasonSoft, store.ReasonComplaint, store.ReasonUnsubscribe, store.ReasonManual} {
		if n := s.Suppressions[r]; n > 0 {
			reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
			sup += n
		}
	}
	line := fmt.Sprintf("  suppressions   %d", sup)
	if len(reasons) > 0 {
		line += " (" + strings.Join(reasons, ", ") + ")"
	}
	if s.Removed > 0 {
		line += fmt.Sprintf(", %d of them removed since", s.Removed)
	}
	fmt.Fprintln(w, line)
	fmt.Fprintf(w, "  events         %d (bounce.* %d, suppression.added %d)\n",
		s.BounceEvents+s.SuppressionEvents, s.BounceEvents, s.SuppressionEvents)
	fmt.Fprintln(w)
}

// faultWords says whose fault a category is and what bouncer does.
func faultWords(c classify.Category) string {
	e := classify.Explain(&classify.Record{Bounce: true, Category: c})
	switch {
	case c == classify.MailboxFull || c == classify.Expired:
		return "the recipient's, for now: suppressed only after soft bounces on several days"
	case !classify.NeverSuppress(c) && e.Fault == classify.FaultRecipient:
		return "the recipient's: a dead address, suppressed (unless the address itself is invalid)"
	case e.Fault == classify.FaultSender:
		return "ours (the sender's): never suppressed"
	case e.Fault == classify.FaultRemote:
		return "the receiving side's rules: never suppressed"
	default:
		return "nobody's, it passes: never suppressed"
	}
}
