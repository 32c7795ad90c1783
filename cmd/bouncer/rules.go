package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/bouncer-mail/bouncer/classify"
)

// runRules prints the classifier's decision table (`bouncer rules`).
func runRules(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("rules", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	markdown := fs.Bool("markdown", false, "print the table as the README's Markdown")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: rules takes no arguments, got %q", errUsage, fs.Arg(0))
	}
	if *markdown {
		_, err := fmt.Fprint(e.stdout, classify.RulesMarkdown())
		return err
	}
	return classify.WriteRules(e.stdout)
}
