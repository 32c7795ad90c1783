package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/bouncer-mail/bouncer/classify"
)

// runRules prints the classifier's decision table (`bouncer rules`).
func runRules(_ context.Context, e *env, args []string) error {
	fl := flag.NewFlagSet("rules", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	markdown := fl.Bool("markdown", false, "print the table as the README's Markdown")
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer rules [--markdown]")
		fmt.Fprintln(e.stderr, "Prints the classifier's decision table: the first row that holds decides.")
		fl.PrintDefaults()
	}
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: rules takes no arguments, got %q", errUsage, fl.Arg(0))
	}
	if *markdown {
		_, err := fmt.Fprint(e.stdout, classify.RulesMarkdown())
		return err
	}
	return classify.WriteRules(e.stdout)
}
