package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/store"
)

// sentColumns are the fields of a sent-message row, in the order of the
// CSV header the README documents (and of sent_messages for COPY).
var sentColumns = []string{"message_id", "recipient", "list_id", "campaign_id", "sent_at"}

// sentChunk is how many rows one ImportSent transaction writes.
const sentChunk = 20000

// runSent is `bouncer sent import`: the sending platform's record of what
// it sent, the evidence BOUNCER_TRUST=sent asks a bounce for.
func runSent(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "import" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(e.stdout, "usage: bouncer sent import [--format csv|ndjson] [--dry-run] [--database-url URL] FILE|-")
			return nil
		}
		got := ""
		if len(args) > 0 {
			got = fmt.Sprintf(" %q", args[0])
		}
		return fmt.Errorf("%w: sent: want the subcommand import, got%s (bouncer sent import [--format csv|ndjson] FILE|-)", errUsage, cmp.Or(got, " none"))
	}
	fl := flag.NewFlagSet("sent import", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	dbURL := databaseFlag(fl)
	format := fl.String("format", "", "csv or ndjson (default: ndjson for *.ndjson and *.jsonl, else csv)")
	dry := fl.Bool("dry-run", false, "read and check the file, print the counts, write nothing")
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer sent import [--format csv|ndjson] [--dry-run] [--database-url URL] FILE|-")
		fmt.Fprintln(e.stderr, "Adds sent messages (message_id,recipient,list_id,campaign_id,sent_at; sent_at RFC 3339) to sent_messages;")
		fmt.Fprintln(e.stderr, "a Message-ID already there is kept, so importing a file again adds nothing. A bad row writes nothing.")
		fl.PrintDefaults()
	}
	if help, err := parseFlags(fl, args[1:]); help || err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return fmt.Errorf("%w: sent import: want one FILE or - (stdin), got %d arguments", errUsage, fl.NArg())
	}
	name := fl.Arg(0)
	f := *format
	if f == "" {
		f = "csv"
		if strings.HasSuffix(name, ".ndjson") || strings.HasSuffix(name, ".jsonl") {
			f = "ndjson"
		}
	}
	if f != "csv" && f != "ndjson" {
		return fmt.Errorf("%w: sent import: --format %q (want csv or ndjson)", errUsage, f)
	}
	raw, err := readInput(name, e.stdin, nil)
	if err != nil {
		return fmt.Errorf("sent import: %w", err)
	}
	msgs, err := readSent(raw, f)
	if err != nil {
		return fmt.Errorf("%w: sent import: %s %w", errUsage, name, err)
	}
	if *dry {
		fmt.Fprintf(e.stdout, "%d sent messages read and valid; dry run: nothing written\n", len(msgs))
		return nil
	}
	return importSent(ctx, e, *dbURL, msgs)
}

// importSent writes msgs in chunks and prints the counts. The whole file
// was checked first, so a bad row wrote nothing; a database failure half
// way leaves the chunks before it, and running the import again finishes
// it (it is idempotent).
func importSent(ctx context.Context, e *env, dbURL string, msgs []store.SentMessage) error {
	db, err := openDB(ctx, e, dbURL, "sent import")
	if err != nil {
		return err
	}
	defer db.Close()
	var added int64
	for rest := msgs; len(rest) > 0; {
		chunk := rest[:min(sentChunk, len(rest))]
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		n, err := db.ImportSent(cctx, chunk)
		cancel()
		if err != nil {
			return dbError(fmt.Sprintf("sent import (after %d new)", added), err)
		}
		added += n
		rest = rest[len(chunk):]
	}
	fmt.Fprintf(e.stdout, "%d sent messages read: %d new, %d already there\n", len(msgs), added, int64(len(msgs))-added)
	return nil
}

// readSent reads a CSV file with a header naming the columns (sentColumns,
// any order; list_id and campaign_id may be missing) or NDJSON objects with
// those keys. Every row is checked; the first bad one is the error, with
// its line number.
func readSent(raw []byte, format string) ([]store.SentMessage, error) {
	if format == "ndjson" {
		return readSentNDJSON(raw)
	}
	r := csv.NewReader(bytes.NewReader(raw))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("line 1: no CSV header (want %s): %v", strings.Join(sentColumns, ","), err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(sentColumns, h) {
			return nil, fmt.Errorf("line 1: unknown column %q (want %s)", h, strings.Join(sentColumns, ","))
		}
		col[h] = i
	}
	for _, need := range []string{"message_id", "recipient", "sent_at"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("line 1: the header lacks %s (want %s)", need, strings.Join(sentColumns, ","))
		}
	}
	var out []store.SentMessage
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		if len(rec) != len(header) {
			return nil, fmt.Errorf("line %d: %d fields, the header has %d", line, len(rec), len(header))
		}
		get := func(k string) string {
			if i, ok := col[k]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		m, err := sentRow(get("message_id"), get("recipient"), get("list_id"), get("campaign_id"), get("sent_at"))
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		out = append(out, m)
	}
}

// readSentNDJSON reads one JSON object per line; blank lines are skipped.
func readSentNDJSON(raw []byte) ([]store.SentMessage, error) {
	var out []store.SentMessage
	for i, line := range bytes.Split(raw, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var row struct {
			MessageID  string `json:"message_id"`
			Recipient  string `json:"recipient"`
			ListID     string `json:"list_id"`
			CampaignID string `json:"campaign_id"`
			SentAt     string `json:"sent_at"`
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&row); err != nil {
			return nil, fmt.Errorf("line %d: not a JSON object of %s: %v", i+1, strings.Join(sentColumns, ", "), err)
		}
		m, err := sentRow(row.MessageID, row.Recipient, row.ListID, row.CampaignID, row.SentAt)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// sentRow builds and checks one row.
func sentRow(id, rcpt, list, campaign, sentAt string) (store.SentMessage, error) {
	at, err := time.Parse(time.RFC3339Nano, sentAt)
	if err != nil {
		return store.SentMessage{}, fmt.Errorf("sent_at %q: want an RFC 3339 time such as 2026-12-04T09:00:00Z", sentAt)
	}
	m, err := store.SentMessage{MessageID: id, Recipient: rcpt, ListID: list, CampaignID: campaign, SentAt: at}.Check()
	if err != nil {
		return m, errors.New(strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
	}
	return m, nil
}
