package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/api"
	"github.com/bouncer-mail/bouncer/store"
)

const suppressionsUsage = `usage: bouncer suppressions COMMAND [flags]

commands:
  list [--list L | --global] [--all] [--limit N] [--json]
  check ADDRESS [--list L]          exit status 1 when suppressed, 2 when it cannot tell
  add ADDRESS --reason R [--list L] [--by WHO] [--expires 30d]
  remove ADDRESS --by WHO --why WHY [--list L]
  export --format csv|json [--list L | --global] [--all]
  import FILE|- [--format csv|ndjson] [--dry-run] [--by WHO]

A suppression is global unless --list names a list. add's --reason is one
of manual, hard, complaint, unsubscribe, soft, or free text (then the
reason is manual and the text is kept as its note). remove keeps the record and says who
removed it and why, and puts back the list memberships it changed. import
reads CSV (a header naming address and any of list_id, reason, note, by,
expires_at) or NDJSON (objects with those keys), checks every line before
writing, and adds only what is not in force already (POST
/api/v1/suppressions/import does the same); --dry-run writes nothing.
Every command takes --database-url (default $DATABASE_URL, else
` + store.DefaultDatabaseURL + `).`

// errSuppressed makes `suppressions check` exit non-zero for a suppressed
// address, like grep: scripts branch on it.
var errSuppressed = errors.New("suppressed")

// errCheckFailed marks a `suppressions check` that could not tell (not an
// address, no database): exit status 2, never the 1 of a suppressed
// address.
var errCheckFailed = errors.New("suppressions check failed")

// suppressionsArgs are the parsed flags and arguments of one
// `bouncer suppressions SUB` call.
type suppressionsArgs struct {
	sub, address            string
	dbURL, list             string
	global, all, asJSON     bool
	limit                   int
	reason, by, why, format string
	expires                 time.Duration
	file                    string // import's FILE or -
	dryRun                  bool
}

func runSuppressions(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			return fmt.Errorf("%w: suppressions needs a command: list, check, add, remove, export or import (see bouncer suppressions -h)", errUsage)
		}
		fmt.Fprintln(e.stdout, suppressionsUsage)
		return nil
	}
	a, help, err := parseSuppressionsArgs(e, args[0], args[1:])
	if help || err != nil {
		return err
	}
	db, err := openDB(ctx, e, a.dbURL, "suppressions "+a.sub)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	switch a.sub {
	case "list", "export":
		err = listSuppressions(ctx, e, db, a)
	case "check":
		err = checkSuppression(ctx, e, db, a)
	case "add":
		err = addSuppression(ctx, e, db, a)
	case "remove":
		err = removeSuppression(ctx, e, db, a)
	case "import":
		err = importSuppressions(ctx, e, db, a)
	}
	if err != nil && !errors.Is(err, errSuppressed) && !errors.Is(err, errUsage) {
		return dbError("suppressions "+a.sub, err)
	}
	return err
}

// parseSuppressionsArgs reads the flags of sub (which may come before or
// after the address) and refuses, before any I/O, what cannot work:
// missing or contradictory flags, a value of the wrong form.
func parseSuppressionsArgs(e *env, sub string, args []string) (a suppressionsArgs, help bool, err error) {
	a.sub = sub
	fl := flag.NewFlagSet("suppressions "+sub, flag.ContinueOnError)
	fl.SetOutput(e.stdout)
	fl.Usage = func() {
		fmt.Fprintln(e.stdout, suppressionsUsage)
		fmt.Fprintln(e.stdout, "\nflags of", sub+":")
		fl.PrintDefaults()
	}
	fl.StringVar(&a.dbURL, "database-url", "", "PostgreSQL URL (default $DATABASE_URL, else "+store.DefaultDatabaseURL+")")
	fl.StringVar(&a.list, "list", "", "a list id: the suppression of that list (default: global)")
	var expires string
	switch sub {
	case "list", "export":
		fl.BoolVar(&a.global, "global", false, "only global suppressions")
		fl.BoolVar(&a.all, "all", false, "include removed and expired suppressions")
		if sub == "list" {
			fl.IntVar(&a.limit, "limit", 0, "show at most N (0: all)")
			fl.BoolVar(&a.asJSON, "json", false, "print JSON lines instead of a table")
		} else {
			fl.StringVar(&a.format, "format", "csv", "csv or json")
		}
	case "check":
	case "add":
		fl.StringVar(&a.reason, "reason", "", "manual, hard, complaint, unsubscribe, soft, or free text (required)")
		fl.StringVar(&a.by, "by", "", "who adds it (default: the current user)")
		fl.StringVar(&expires, "expires", "", "lapse after this long, e.g. 30d or 12h (default: never)")
	case "remove":
		fl.StringVar(&a.by, "by", "", "who removes it (required)")
		fl.StringVar(&a.why, "why", "", "why (required)")
	case "import":
		fl.StringVar(&a.format, "format", "", "csv or ndjson (default: from the file's extension)")
		fl.BoolVar(&a.dryRun, "dry-run", false, "check and count, write nothing")
		fl.StringVar(&a.by, "by", "", "who imports (default: the current user; a row's by wins)")
	default:
		return a, false, fmt.Errorf("%w: unknown suppressions command %q (want list, check, add, remove, export or import)", errUsage, sub)
	}
	var pos []string
	for {
		if help, err := parseFlags(fl, args); help || err != nil {
			return a, help, err
		}
		if fl.NArg() == 0 {
			break
		}
		pos = append(pos, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if expires != "" {
		if a.expires, err = store.ParseDuration(expires); err != nil {
			return a, false, fmt.Errorf("%w: suppressions add: --expires %q is not a duration (want a number of days, hours or minutes, e.g. 30d, 12h or 90m)", errUsage, expires)
		}
	}
	return a, false, a.check(pos)
}

// check refuses a call whose arguments cannot work, as a usage error.
func (a *suppressionsArgs) check(pos []string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: suppressions %s: %s", errUsage, a.sub, fmt.Sprintf(format, args...))
	}
	if a.sub == "import" {
		return a.checkImport(pos)
	}
	needAddress := a.sub != "list" && a.sub != "export"
	switch {
	case needAddress && len(pos) != 1:
		return bad("takes one ADDRESS, got %d arguments", len(pos))
	case !needAddress && len(pos) != 0:
		return bad("takes no arguments, got %q", pos[0])
	case a.list != "" && a.global:
		return bad("--list %s and --global contradict each other (--global: global suppressions only; --list: one list's)", a.list)
	case a.limit < 0:
		return bad("--limit %d (want 0 for all, or more)", a.limit)
	case a.sub == "export" && a.format != "csv" && a.format != "json":
		return bad("--format %q (want csv or json)", a.format)
	case a.sub == "add" && a.reason == "":
		return bad("needs --reason (manual, hard, complaint, unsubscribe, soft, or free text)")
	case a.sub == "remove" && (a.by == "" || a.why == ""):
		return bad("needs --by WHO and --why WHY")
	}
	if needAddress {
		a.address = pos[0]
		if local, domain, ok := strings.Cut(a.address, "@"); !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
			return bad("%q is not an email address (want NAME@DOMAIN)", a.address)
		}
	}
	return nil
}

func listSuppressions(ctx context.Context, e *env, db *store.DB, a suppressionsArgs) error {
	sups, err := db.ListSuppressions(ctx, store.SuppressionFilter{ListID: a.list, Global: a.global, All: a.all, Limit: a.limit})
	if err != nil {
		return err
	}
	switch {
	case a.sub == "export" && a.format == "csv":
		return writeSuppressionsCSV(e.stdout, sups)
	case a.sub == "export" || a.asJSON:
		return writeSuppressionsJSON(e.stdout, sups)
	}
	return writeSuppressionsTable(e.stdout, sups)
}

// checkSuppression prints whether the address is suppressed; suppressed,
// it returns errSuppressed (exit status 1, like grep's "found"), and when
// it cannot tell, errCheckFailed (2).
func checkSuppression(ctx context.Context, e *env, db *store.DB, a suppressionsArgs) error {
	s, err := db.CheckSuppression(ctx, a.address, a.list)
	if err != nil {
		return fmt.Errorf("%w: %w", errCheckFailed, err)
	}
	if s == nil {
		fmt.Fprintf(e.stdout, "%s: not suppressed\n", a.address)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s: suppressed (%s scope%s), reason %s%s, since %s by %s%s\n",
		s.Address, s.Scope(), listSuffix(s.ListID), s.Reason, categorySuffix(s), s.CreatedAt.UTC().Format(time.RFC3339),
		s.CreatedBy, expiresSuffix(s))
	return fmt.Errorf("%s: %w", s.Address, errSuppressed)
}

func addSuppression(ctx context.Context, e *env, db *store.DB, a suppressionsArgs) error {
	req := store.SuppressRequest{Address: a.address, ListID: a.list, By: a.by, Expires: a.expires}
	if r, err := store.ParseReason(a.reason); err == nil {
		req.Reason = r
	} else {
		req.Reason, req.Note = store.ReasonManual, a.reason
	}
	if req.By == "" {
		req.By = currentUser(e)
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
}

func removeSuppression(ctx context.Context, e *env, db *store.DB, a suppressionsArgs) error {
	s, err := db.Unsuppress(ctx, a.address, a.list, a.by, a.why)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: suppression %d (%s scope%s, reason %s) removed by %s: %s\n",
		s.Address, s.ID, s.Scope(), listSuffix(s.ListID), s.Reason, s.RemovedBy, s.RemovedWhy)
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

// checkImport checks import's arguments: one FILE or -, and a format it
// can tell.
func (a *suppressionsArgs) checkImport(pos []string) error {
	if len(pos) != 1 {
		return fmt.Errorf("%w: suppressions import: want one FILE or - (stdin), got %d arguments", errUsage, len(pos))
	}
	a.file = pos[0]
	if a.format == "" {
		switch strings.ToLower(filepath.Ext(a.file)) {
		case ".csv":
			a.format = "csv"
		case ".ndjson", ".jsonl", ".json":
			a.format = "ndjson"
		default:
			return fmt.Errorf("%w: suppressions import: say --format csv or --format ndjson (%s has no .csv or .ndjson extension)", errUsage, a.file)
		}
	}
	if a.format != "csv" && a.format != "ndjson" {
		return fmt.Errorf("%w: suppressions import: --format %q (want csv or ndjson)", errUsage, a.format)
	}
	return nil
}

// importSuppressions reads the file and imports it by the API's own path
// (api.ReadImport, store.ImportSuppressions): a bad line exits 2 and
// writes nothing.
func importSuppressions(ctx context.Context, e *env, db *store.DB, a suppressionsArgs) error {
	var in io.Reader = e.stdin
	if a.file != "-" {
		f, err := os.Open(a.file)
		if err != nil {
			return fmt.Errorf("%w: suppressions import: %v", errUsage, err)
		}
		defer f.Close()
		in = f
	}
	rows, err := api.ReadImport(in, a.format)
	if err == nil && len(rows) == 0 {
		err = errors.New("no rows")
	}
	if err != nil {
		return fmt.Errorf("%w: suppressions import %s: %v", errUsage, a.file, err)
	}
	res, err := db.ImportSuppressions(ctx, rows, cmp.Or(a.by, currentUser(e)), a.dryRun)
	if err != nil {
		return err
	}
	note := ""
	if a.dryRun {
		note = " (dry run: nothing written)"
	}
	fmt.Fprintf(e.stdout, "%d suppressions read: %d added, %d unchanged%s\n", res.Read, res.Added, res.Unchanged, note)
	return nil
}
