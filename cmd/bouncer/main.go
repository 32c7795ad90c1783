// Command bouncer keeps mailing lists clean: it reads bounce mailboxes over
// IMAP, classifies every bounce, records the results in Postgres and
// publishes events on NATS JetStream. See README.md for the commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/bouncer-mail/bouncer/worker"
	"github.com/bouncer-mail/bouncer/worker/webhook"
)

// env is what every command gets from the process: its streams and its
// environment. Tests build one by hand.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// command is one `bouncer NAME ...` subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands is filled in by the files that define each subcommand.
var commands = map[string]command{
	"parse":       {"classify messages offline (FILE|DIR|- ...)", runParse},
	"serve":       {"serve the explain page and POST /api/v1/parse (BOUNCER_HTTP_ADDR)", runServe},
	"rules":       {"print the classifier's decision table, in order of precedence", runRules},
	"healthcheck": {"probe a health URL, exit 0 on 2xx (for images without a shell)", runHealthcheck},

	// The store's commands (issue 3).
	"migrate":      {"create the database if missing and apply the schema (up|status)", runMigrate},
	"suppressions": {"list, check, add, remove or export suppressions", runSuppressions},
	"stats":        {"bounce counts and rates over a period, by day, domain, category or campaign", runStats},

	// The worker's commands (issue 4).
	"run":    {"work the bounce mailboxes (IMAP IDLE -> Postgres -> NATS)", runRun},
	"demo":   {"the whole pipeline on sample bounces, embedded servers and the local Postgres", runDemo},
	"inject": {"APPEND messages to a mailbox (--imap URL FILE|DIR...)", runInject},
	"verp":   {"build or check a signed return path (encode|decode)", runVERP},
	"chaos":  {"the fault test: SIGKILLed workers, restarted servers; exit 1 on any loss", runChaos},
	"sent":   {"import the sending platform's sent messages, the evidence a bounce is ours (import FILE|-)", runSent},

	"version": {"print the version, the commit it was built from and the Go version", runVersion},
}

// errUsage marks an error whose message is a usage text: exit status 2,
// as for errCheckFailed; any other error exits with 1.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	err := run(ctx, e, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bouncer:", errorLine(err))
	}
	os.Exit(exitStatus(err))
}

// run runs the command args names, and keeps the passwords and tokens of
// its connection settings out of what it prints on stderr and out of the
// error it returns (worker.Scrub): no library's error or log line can
// leak one.
func run(ctx context.Context, e *env, args []string) error {
	secrets := commandSecrets(e.getenv, args)
	if len(secrets) == 0 {
		return runCommand(ctx, e, args)
	}
	se := *e
	se.stderr = scrubWriter{e.stderr, secrets}
	err := runCommand(ctx, &se, args)
	if err != nil {
		if msg := worker.Scrub(err.Error(), secrets); msg != err.Error() {
			return scrubbedError{msg, err}
		}
	}
	return err
}

// commandSecrets gathers the secrets a command may be given: the
// passwords in DATABASE_URL, NATS_URL, BOUNCER_IMAP_URL and in every
// argument that holds a URL, the IMAP password, the explain token, the
// erasure key, the webhook secrets (BOUNCER_WEBHOOK_*, also from their
// files), the mailboxes' passwords of the config file (BOUNCER_CONFIG or
// --config), and what fileSecrets reads from files.
func commandSecrets(getenv func(string) string, args []string) []string {
	settings := []string{getenv("DATABASE_URL"), getenv("NATS_URL"), getenv("BOUNCER_IMAP_URL")}
	bare := []string{getenv("BOUNCER_IMAP_PASSWORD"), getenv("BOUNCER_HTTP_TOKEN"), erasureSecret(getenv)}
	hooks := webhook.DefaultConfig()
	hooks.FromEnv(getenv) // a bad setting is the command's to report; the secrets read are kept out all the same
	bare = append(bare, hooks.Secrets()...)
	configs := []string{getenv("BOUNCER_CONFIG")}
	var flagFiles, configFiles []string
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			settings = append(settings, a)
			continue
		}
		k, v, ok := strings.Cut(a, "=")
		if ok {
			settings = append(settings, v)
		} else if i+1 < len(args) {
			v = args[i+1] // the next argument, read as a setting on its own
		}
		switch strings.TrimLeft(k, "-") {
		case "config":
			configs = append(configs, v)
		case "token-file":
			flagFiles = append(flagFiles, v)
		}
	}
	for _, path := range configs {
		var fc worker.FileConfig
		if b, err := os.ReadFile(path); path == "" || err != nil || json.Unmarshal(b, &fc) != nil {
			continue // the command reports a bad file, without its content
		}
		for _, m := range fc.Mailboxes {
			settings, bare = append(settings, m.URL), append(bare, m.Password)
			configFiles = append(configFiles, m.PasswordFile, m.TokenFile)
		}
	}
	bare = append(bare, fileSecrets(getenv, flagFiles, configFiles)...)
	return worker.Secrets(settings, bare...)
}

// scrubWriter writes to w with the secrets replaced; slog's handlers
// write one whole record per call, so no secret is cut in two.
type scrubWriter struct {
	w       io.Writer
	secrets []string
}

func (s scrubWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, worker.Scrub(string(p), s.secrets)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// scrubbedError is err with its message scrubbed of secrets; errors.Is
// (the exit status) still sees the cause.
type scrubbedError struct {
	msg string
	err error
}

func (e scrubbedError) Error() string { return e.msg }
func (e scrubbedError) Unwrap() error { return e.err }

func runCommand(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			usage(e.stderr)
			return fmt.Errorf("%w: no command given", errUsage)
		}
		usage(e.stdout)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("%w: unknown command %q (see bouncer help)", errUsage, args[0])
	}
	return c.run(ctx, e, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: bouncer COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun `bouncer COMMAND -h` for a command's flags. Environment: see README.md.")
}
