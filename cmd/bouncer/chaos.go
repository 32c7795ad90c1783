package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"

	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/chaos"
)

// runChaos is `bouncer chaos`: the fault test (cmd/bouncer/internal/chaos).
func runChaos(ctx context.Context, e *env, args []string) error {
	var o chaos.Options
	fl := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	fl.IntVar(&o.Messages, "messages", 5000, "bounces generated and worked")
	fl.IntVar(&o.Kills, "kills", 10, "times a worker is SIGKILLed and restarted")
	fl.Uint64Var(&o.Seed, "seed", 0, "seed of the input and of the faults (default: a random one, printed)")
	fl.IntVar(&o.Workers, "workers", 2, "`bouncer run` processes on the one mailbox")
	fl.BoolVar(&o.Keep, "keep", false, "keep the run's directory (servers' data and logs, workers.log)")
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer chaos [--messages 5000] [--kills 10] [--seed N] [--workers 2] [--keep]")
		fmt.Fprintln(e.stderr, "Works generated bounces on a private Dovecot, Postgres and NATS twice, without and with faults")
		fmt.Fprintln(e.stderr, "(SIGKILLed workers, restarted servers, a UIDVALIDITY change), and compares. Exit 1 on any loss.")
		fl.PrintDefaults()
	}
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	switch {
	case fl.NArg() > 0:
		return fmt.Errorf("%w: chaos takes no arguments, got %q", errUsage, fl.Arg(0))
	case o.Messages < 1:
		return fmt.Errorf("%w: chaos: --messages %d (want 1 or more)", errUsage, o.Messages)
	case o.Kills < 0:
		return fmt.Errorf("%w: chaos: --kills %d (want 0 or more)", errUsage, o.Kills)
	case o.Workers < 1:
		return fmt.Errorf("%w: chaos: --workers %d (want 1 or more)", errUsage, o.Workers)
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64N(1 << 32)
	}
	return chaos.Run(ctx, o, e.stdout)
}
