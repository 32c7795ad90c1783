package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bouncer-mail/bouncer/store"
)

// The command line's convention, for every command:
//   - exit status 2 for a usage error or invalid input (errUsage,
//     store.ErrInvalid, errCheckFailed), 1 for a failure, 0 for success;
//   - on error, one line on stderr, "bouncer: " and the message, which
//     names the bad value and the accepted form; the usage text only when
//     asked for (-h);
//   - results on stdout, logs on stderr.

// exitStatus is the process's exit status for err, returned by run.
func exitStatus(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, errCheckFailed), errors.Is(err, store.ErrInvalid):
		return 2
	}
	return 1
}

// packagePrefixes are the prefixes of the packages' errors (their
// contract for programs, per the Go convention) that mean nothing to a
// person at a terminal: errorLine drops them.
var packagePrefixes = []string{
	"usage: ", errUsage.Error() + ": ",
	store.ErrInvalid.Error() + ": ", "store: ",
	"worker: config: ", "worker: ", "explain: ",
	errCheckFailed.Error() + ": ",
}

// errorLine is err as main prints it: package prefixes dropped, and the
// lines of a joined error (a configuration's several problems) joined by
// "; " so that the message stays one line.
func errorLine(err error) string {
	msg := err.Error()
	for _, p := range packagePrefixes {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", " ; ")), " ")
}

// dbError is an error of the database's, said shortly: a failure to
// connect names the server and the last cause once, where pgx lists each
// address it tried. The original stays wrapped for errors.Is.
func dbError(what string, err error) error {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) || ce.Config == nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	msg := err.Error()
	cause := msg[strings.LastIndex(msg, ": ")+2:]
	return &shortError{fmt.Sprintf("%s: cannot connect to PostgreSQL at %s:%d (database %s, user %s): %s",
		what, ce.Config.Host, ce.Config.Port, ce.Config.Database, ce.Config.User, cause), err}
}

// shortError is an error whose message replaces its cause's.
type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }

// parseFlags parses args into fl without letting the flag package print:
// a bad flag is returned as one usage error; -h prints the usage and is
// not an error.
func parseFlags(fl *flag.FlagSet, args []string) (help bool, err error) {
	out, usage := fl.Output(), fl.Usage
	fl.SetOutput(io.Discard)
	fl.Usage = func() {}
	err = fl.Parse(args)
	fl.SetOutput(out)
	fl.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		fl.Usage()
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %s: %v (see bouncer %s -h)", errUsage, fl.Name(), err, fl.Name())
	}
	return false, nil
}
