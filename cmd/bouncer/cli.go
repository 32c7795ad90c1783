package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
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

// packagePrefix matches the prefixes of the packages' errors (their
// contract for programs, per the Go convention) that mean nothing to a
// person at a terminal, at the start of a message or of a wrapped part of
// it: errorLine drops them.
var packagePrefix = regexp.MustCompile(`(^|: |; )(?:usage|store: invalid argument|store|worker: config|worker|explain|suppressions check failed): `)

// errorLine is err as main prints it: package prefixes dropped, and the
// lines of a joined error (a configuration's several problems) joined by
// "; " so that the message stays one line.
func errorLine(err error) string {
	msg := strings.Join(strings.Split(strings.TrimSpace(err.Error()), "\n"), "; ")
	for {
		next := packagePrefix.ReplaceAllString(msg, "$1")
		if next == msg {
			return msg
		}
		msg = next
	}
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
