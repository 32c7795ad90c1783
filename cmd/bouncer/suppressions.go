package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/bouncer-mail/bouncer/store"
)

const suppressionsUsage = `usage: bouncer suppressions COMMAND [flags]

commands:
  list [--list L | --global] [--all] [--limit N] [--json]
  check ADDRESS [--list L]          exit status 1 when suppressed, 2 when it cannot tell
  add ADDRESS --reason R [--list L] [--by WHO] [--expires 30d]
  remove ADDRESS --by WHO --why WHY [--list L]
  export --format csv|json [--list L | --global] [--all]

A suppression is global unless --list names a list. add's --reason is one
of manual, hard, complaint, unsubscribe, soft, or free text (then the
reason is manual and the text is kept as its note). remove keeps the record and says who
removed it and why, and puts back the list memberships it changed.
Every command takes --database-url (default $DATABASE_URL, else
` + store.DefaultDatabaseURL + `).`

// errSuppressed makes `suppressions check` exit non-zero for a suppressed
// address, like grep: scripts branch on it.
var errSuppressed = errors.New("suppressed")

// errCheckFailed marks a `suppressions check` that could not tell (not an
// address, no database): exit status 2, never the 1 of a suppressed
// address.
var errCheckFailed = errors.New("suppressions check failed")

func runSuppressions(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(e.stderr, suppressionsUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: suppressions needs a command", errUsage)
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fl := flag.NewFlagSet("suppressions "+sub, flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, suppressionsUsage)
		fmt.Fprintln(e.stderr, "\nflags of", sub+":")
		fl.PrintDefaults()
	}
	dbURL := databaseFlag(fl)
	list := fl.String("list", "", "a list id: the suppression of that list (default: global)")
	var (
		global, all, asJSON *bool
		limit               *int
		reason, by, why     *string
		expires             *string
		format              *string
	)
	switch sub {
	case "list", "export":
		global = fl.Bool("global", false, "only global suppressions")
		all = fl.Bool("all", false, "include removed and expired suppressions")
		if sub == "list" {
			limit = fl.Int("limit", 0, "show at most N (0: all)")
			asJSON = fl.Bool("json", false, "print JSON lines instead of a table")
		} else {
			format = fl.String("format", "csv", "csv or json")
		}
	case "check":
	case "add":
		reason = fl.String("reason", "", "manual, hard, complaint, unsubscribe, soft, or free text (required)")
		by = fl.String("by", "", "who adds it (default: the current user)")
		expires = fl.String("expires", "", "lapse after this long, e.g. 30d (default: never)")
	case "remove":
		by = fl.String("by", "", "who removes it (required)")
		why = fl.String("why", "", "why (required)")
	default:
		fmt.Fprintln(e.stderr, suppressionsUsage)
		return fmt.Errorf("%w: unknown suppressions command %q", errUsage, sub)
	}
	// Flags may come before or after the address.
	var pos []string
	for {
		if help, err := parseFlags(fl, args); help || err != nil {
			return err
		}
		if fl.NArg() == 0 {
			break
		}
		pos = append(pos, fl.Arg(0))
		args = fl.Args()[1:]
	}
	wantArgs := 1
	if sub == "list" || sub == "export" {
		wantArgs = 0
	}
	if len(pos) != wantArgs {
		fl.Usage()
		return fmt.Errorf("%w: suppressions %s takes %d argument(s), got %d", errUsage, sub, wantArgs, len(pos))
	}

	db, err := store.Open(ctx, databaseURL(e, *dbURL), store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	switch sub {
	case "list", "export":
		f := store.SuppressionFilter{ListID: *list, Global: *global, All: *all}
		if limit != nil {
			if *limit < 0 {
				return fmt.Errorf("%w: --limit %d (want 0 for all, or more)", errUsage, *limit)
			}
			f.Limit = *limit
		}
		sups, err := db.ListSuppressions(ctx, f)
		if err != nil {
			return err
		}
		if sub == "export" {
			switch *format {
			case "csv":
				return writeSuppressionsCSV(e.stdout, sups)
			case "json":
				return writeSuppressionsJSON(e.stdout, sups)
			}
			return fmt.Errorf("%w: --format %q (want csv or json)", errUsage, *format)
		}
		if *asJSON {
			return writeSuppressionsJSON(e.stdout, sups)
		}
		return writeSuppressionsTable(e.stdout, sups)

	case "check":
		s, err := db.CheckSuppression(ctx, pos[0], *list)
		if err != nil {
			return fmt.Errorf("%w: %w", errCheckFailed, err)
		}
		if s == nil {
			fmt.Fprintf(e.stdout, "%s: not suppressed\n", pos[0])
			return nil
		}
		fmt.Fprintf(e.stdout, "%s: suppressed (%s scope%s), reason %s%s, since %s by %s%s\n",
			s.Address, s.Scope(), listSuffix(s.ListID), s.Reason, categorySuffix(s), s.CreatedAt.UTC().Format(time.RFC3339),
			s.CreatedBy, expiresSuffix(s))
		return fmt.Errorf("%s: %w", s.Address, errSuppressed)

	case "add":
		if *reason == "" {
			fl.Usage()
			return fmt.Errorf("%w: suppressions add needs --reason", errUsage)
		}
		req := store.SuppressRequest{Address: pos[0], ListID: *list, By: *by}
		if r, err := store.ParseReason(*reason); err == nil {
			req.Reason = r
		} else {
			req.Reason, req.Note = store.ReasonManual, *reason
		}
		if req.By == "" {
			req.By = currentUser(e)
		}
		if *expires != "" {
			d, err := store.ParseDuration(*expires)
			if err != nil {
				return fmt.Errorf("%w: --expires: %v", errUsage, err)
			}
			req.Expires = d
		}
		s, created, err := db.Suppress(ctx, req)
		if err != nil {
			return err
		}
		verb := "suppressed"
		if !created {
			verb = "already suppressed"
		}
		fmt.Fprintf(e.stdout, "%s: %s (%s scope%s), reason %s, id %d\n", s.Address, verb, s.Scope(), listSuffix(s.ListID), s.Reason, s.ID)
		return nil

	case "remove":
		if *by == "" || *why == "" {
			fl.Usage()
			return fmt.Errorf("%w: suppressions remove needs --by and --why", errUsage)
		}
		s, err := db.Unsuppress(ctx, pos[0], *list, *by, *why)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: suppression %d (%s scope%s, reason %s) removed by %s: %s\n",
			s.Address, s.ID, s.Scope(), listSuffix(s.ListID), s.Reason, s.RemovedBy, s.RemovedWhy)
		return nil
	}
	return nil
}

func currentUser(e *env) string {
	if u := e.getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "cli"
}

func listSuffix(list string) string {
	if list == "" {
		return ""
	}
	return " " + list
}

func categorySuffix(s *store.Suppression) string {
	if s.Category == "" {
		return ""
	}
	return " (" + string(s.Category) + ")"
}

func expiresSuffix(s *store.Suppression) string {
	if s.ExpiresAt.IsZero() {
		return ""
	}
	return ", expires " + s.ExpiresAt.UTC().Format(time.RFC3339)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func writeSuppressionsTable(w io.Writer, sups []store.Suppression) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSCOPE\tLIST\tREASON\tCATEGORY\tCREATED\tBY\tEXPIRES\tREMOVED")
	for _, s := range sups {
		removed := ""
		if !s.RemovedAt.IsZero() {
			removed = fmtTime(s.RemovedAt) + " by " + s.RemovedBy
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Address, s.Scope(), s.ListID,
			s.Reason, s.Category, fmtTime(s.CreatedAt), s.CreatedBy, fmtTime(s.ExpiresAt), removed)
	}
	return tw.Flush()
}

// suppressionJSON is the export form of a suppression.
type suppressionJSON struct {
	ID         int64     `json:"id"`
	Address    string    `json:"address"`
	AddressRaw string    `json:"address_raw"`
	Domain     string    `json:"domain"`
	Scope      string    `json:"scope"`
	ListID     string    `json:"list_id"`
	Reason     string    `json:"reason"`
	Category   string    `json:"category"`
	BounceID   int64     `json:"bounce_id,omitempty"`
	Note       string    `json:"note,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	RemovedAt  time.Time `json:"removed_at,omitzero"`
	RemovedBy  string    `json:"removed_by,omitempty"`
	RemovedWhy string    `json:"removed_why,omitempty"`
}

// writeSuppressionsJSON writes one JSON object per line.
func writeSuppressionsJSON(w io.Writer, sups []store.Suppression) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, s := range sups {
		if err := enc.Encode(suppressionJSON{
			ID: s.ID, Address: s.Address, AddressRaw: s.AddressRaw, Domain: s.Domain,
			Scope: string(s.Scope()), ListID: s.ListID, Reason: string(s.Reason), Category: string(s.Category),
			BounceID: s.BounceID, Note: s.Note, CreatedAt: s.CreatedAt.UTC(), CreatedBy: s.CreatedBy,
			ExpiresAt: s.ExpiresAt.UTC(), RemovedAt: s.RemovedAt.UTC(), RemovedBy: s.RemovedBy, RemovedWhy: s.RemovedWhy,
		}); err != nil {
			return fmt.Errorf("write suppressions: %w", err)
		}
	}
	return nil
}

func writeSuppressionsCSV(w io.Writer, sups []store.Suppression) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "address", "address_raw", "domain", "scope", "list_id", "reason", "category",
		"bounce_id", "note", "created_at", "created_by", "expires_at", "removed_at", "removed_by", "removed_why"})
	for _, s := range sups {
		bounce := ""
		if s.BounceID != 0 {
			bounce = strconv.FormatInt(s.BounceID, 10)
		}
		_ = cw.Write([]string{strconv.FormatInt(s.ID, 10), s.Address, s.AddressRaw, s.Domain, string(s.Scope()),
			s.ListID, string(s.Reason), string(s.Category), bounce, s.Note, fmtTime(s.CreatedAt), s.CreatedBy,
			fmtTime(s.ExpiresAt), fmtTime(s.RemovedAt), s.RemovedBy, s.RemovedWhy})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write suppressions: %w", err)
	}
	return nil
}
