package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bouncer-mail/bouncer/store"
)

func runStats(ctx context.Context, e *env, args []string) error {
	fl := flag.NewFlagSet("stats", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	dbURL := databaseFlag(fl)
	since := fl.String("since", "30d", "period: bounces that arrived this long ago or later (e.g. 7d, 36h)")
	by := fl.String("by", "day", "group by day, domain, category or campaign")
	asJSON := fl.Bool("json", false, "print JSON lines instead of a table")
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer stats [--since 30d] [--by day|domain|category|campaign] [--json] [--database-url URL]")
		fmt.Fprintln(e.stderr, "Counts bounces (failed recipients) per group: hard, soft, complaints, marked suppress, share of the period;")
		fmt.Fprintln(e.stderr, "by campaign also the bounce rate over the sends in campaign_sends.")
		fl.PrintDefaults()
	}
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: stats takes no arguments, got %q", errUsage, fl.Arg(0))
	}
	d, err := store.ParseDuration(*since)
	if err != nil {
		return fmt.Errorf("%w: stats: --since %q is not a duration (want a number of days, hours or minutes, e.g. 30d, 36h or 90m)", errUsage, *since)
	}
	group := store.StatsBy(*by)
	switch group {
	case store.ByDay, store.ByDomain, store.ByCategory, store.ByCampaign:
	default:
		return fmt.Errorf("%w: stats: --by %q (want day, domain, category or campaign)", errUsage, *by)
	}

	db, err := openDB(ctx, e, *dbURL, "stats")
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rows, err := db.Stats(ctx, time.Now().Add(-d), group)
	if err != nil {
		return dbError("stats", err)
	}

	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, r := range rows {
			o := map[string]any{
				string(group): r.Key, "bounces": r.Bounces, "recipients": r.Recipients, "hard": r.Hard,
				"soft": r.Soft, "complaints": r.Complaints, "suppress": r.Suppress, "share": r.Share,
			}
			if group == store.ByCampaign {
				o["sent"], o["rate"] = r.Sent, r.Rate
			}
			if err := enc.Encode(o); err != nil {
				return fmt.Errorf("stats: write: %w", err)
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := fmt.Sprintf("%s\tBOUNCES\tRECIPIENTS\tHARD\tSOFT\tCOMPLAINTS\tSUPPRESS\tSHARE\t", strings.ToUpper(string(group)))
	if group == store.ByCampaign {
		head += "SENT\tRATE\t"
	}
	fmt.Fprintln(tw, head)
	var total store.StatsRow
	for _, r := range rows {
		line := fmt.Sprintf("%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f%%\t", keyOrNone(r.Key), r.Bounces, r.Recipients, r.Hard, r.Soft, r.Complaints, r.Suppress, 100*r.Share)
		if group == store.ByCampaign {
			rate := "-"
			if r.Sent > 0 {
				rate = fmt.Sprintf("%.2f%%", 100*r.Rate)
			}
			line += fmt.Sprintf("%d\t%s\t", r.Sent, rate)
		}
		fmt.Fprintln(tw, line)
		total.Bounces += r.Bounces
		total.Hard += r.Hard
		total.Soft += r.Soft
		total.Complaints += r.Complaints
		total.Suppress += r.Suppress
	}
	if len(rows) > 0 {
		fmt.Fprintf(tw, "TOTAL\t%d\t\t%d\t%d\t%d\t%d\t100.0%%\t\n", total.Bounces, total.Hard, total.Soft, total.Complaints, total.Suppress)
	}
	return tw.Flush()
}

func keyOrNone(k string) string {
	if k == "" {
		return "(none)"
	}
	return k
}
