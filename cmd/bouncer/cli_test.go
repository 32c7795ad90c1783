package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every command's bad input: the exit status (2 for a usage error or
// invalid input, 1 for a failure) and the one line printed, which names
// the bad value and the form wanted, without package prefixes.
func TestCLIErrors(t *testing.T) {
	const noDB = "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
	imapOK := "imap://u:p@127.0.0.1:1/INBOX?tls=none"
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const sentHeader = "message_id,recipient,list_id,campaign_id,sent_at\n"
	badAt := file("bad-at.csv", sentHeader+"<m1@x>,a@example.com,news,c1,2026-12-04T09:00:00Z\n<m2@x>,b@example.com,news,c1,yesterday\n")
	badRcpt := file("bad-rcpt.ndjson", `{"message_id":"m1@x","recipient":"a@example.com","sent_at":"2026-12-04T09:00:00Z"}`+"\n\n"+`{"message_id":"m2@x","recipient":"nobody","sent_at":"2026-12-04T09:00:00Z"}`+"\n")
	badCol := file("bad-col.csv", "message_id,recipient,when\n")
	badSupp := file("bad-supp.csv", "address,reason\na@example.com,hard\nb@example.com,bored\n")
	for _, tc := range []struct {
		args []string
		env  map[string]string
		exit int
		want []string // in the message, in this order
	}{
		{nil, nil, 2, []string{"no command given"}},
		{[]string{"bogus"}, nil, 2, []string{`unknown command "bogus"`, "bouncer help"}},
		{[]string{"version", "x"}, nil, 2, []string{`version takes no arguments, got "x"`}},
		{[]string{"chaos", "x"}, nil, 2, []string{`chaos takes no arguments, got "x"`}},
		{[]string{"chaos", "--messages", "0"}, nil, 2, []string{"chaos: --messages 0 (want 1 or more)"}},
		{[]string{"chaos", "--kills", "-1"}, nil, 2, []string{"chaos: --kills -1 (want 0 or more)"}},
		{[]string{"chaos", "--workers", "0"}, nil, 2, []string{"chaos: --workers 0 (want 1 or more)"}},
		{[]string{"chaos", "--seed", "banana"}, nil, 2, []string{`chaos: invalid value "banana" for flag -seed`, "bouncer chaos -h"}},
		{[]string{"rules", "x"}, nil, 2, []string{`rules takes no arguments, got "x"`}},
		{[]string{"verp"}, nil, 2, []string{"verp needs encode or decode"}},
		{[]string{"verp", "bogus"}, nil, 2, []string{`unknown verp action "bogus" (want encode or decode)`}},
		{[]string{"verp", "encode"}, nil, 2, []string{"verp encode needs --recipient"}},
		{[]string{"verp", "decode"}, nil, 2, []string{"verp decode takes one ADDRESS, got 0 arguments"}},
		{[]string{"rules", "--bogus"}, nil, 2, []string{"rules: flag provided but not defined: -bogus", "bouncer rules -h"}},

		{[]string{"parse"}, nil, 2, []string{"parse needs at least one FILE, DIR or -"}},
		{[]string{"parse", "x.eml"}, map[string]string{"BOUNCER_VERP_KEYS": "k1:short"}, 2, []string{"parse: BOUNCER_VERP_KEYS: "}},
		{[]string{"parse", "--bogus"}, nil, 2, []string{"parse: flag provided but not defined: -bogus", "bouncer parse -h"}},

		{[]string{"serve", "extra"}, nil, 2, []string{"serve takes no arguments"}},
		{[]string{"serve", "--addr", "0.0.0.0:0"}, nil, 2, []string{"serve: a token is required", "BOUNCER_HTTP_TOKEN"}},

		{[]string{"healthcheck", "notaurl"}, nil, 2, []string{`healthcheck: "notaurl" is not an HTTP URL (want http://HOST:PORT/PATH)`}},
		{[]string{"healthcheck", "a", "b"}, nil, 2, []string{"healthcheck takes at most one URL, got 2 arguments"}},
		{[]string{"healthcheck", "--timeout", "banana"}, nil, 2, []string{`healthcheck: invalid value "banana" for flag -timeout`}},
		{[]string{"healthcheck", "http://127.0.0.1:1/readyz"}, nil, 1, []string{"healthcheck: ", "connection refused"}},

		{[]string{"migrate", "--database-url", "not a url"}, nil, 2, []string{`database URL "not a url" is not a PostgreSQL URL (want postgres://USER:PASSWORD@HOST:PORT/DATABASE)`}},
		{[]string{"migrate", "sideways"}, nil, 2, []string{`unknown migrate action "sideways" (want up or status)`}},
		{[]string{"migrate", "up", "status"}, nil, 2, []string{"migrate takes one action (up or status), got 2 arguments"}},
		{[]string{"migrate", "--database-url", noDB}, nil, 1, []string{"migrate: cannot connect to PostgreSQL at 127.0.0.1:1", "connection refused"}},

		{[]string{"stats", "--since", "banana"}, nil, 2, []string{`stats: --since "banana" is not a duration (want`, "30d"}},
		{[]string{"stats", "--by", "banana"}, nil, 2, []string{`stats: --by "banana" (want day, domain, category or campaign)`}},
		{[]string{"stats", "extra"}, nil, 2, []string{`stats takes no arguments, got "extra"`}},
		{[]string{"stats", "--database-url", noDB}, nil, 1, []string{"stats: cannot connect to PostgreSQL at 127.0.0.1:1"}},
		{[]string{"stats"}, map[string]string{"DATABASE_URL": "not a url"}, 2, []string{`database URL "not a url" is not a PostgreSQL URL`}},

		{[]string{"suppressions"}, nil, 2, []string{"suppressions needs a command: list, check, add, remove, export or import"}},
		{[]string{"suppressions", "bogus"}, nil, 2, []string{`unknown suppressions command "bogus" (want list, check, add, remove, export or import)`}},
		{[]string{"suppressions", "list", "--list", "L", "--global"}, nil, 2, []string{"suppressions list: --list L and --global contradict each other"}},
		{[]string{"suppressions", "export", "--list", "L", "--global"}, nil, 2, []string{"suppressions export: --list L and --global contradict"}},
		{[]string{"suppressions", "list", "--limit", "-3"}, nil, 2, []string{"suppressions list: --limit -3 (want 0 for all, or more)"}},
		{[]string{"suppressions", "list", "a@example.com"}, nil, 2, []string{`suppressions list: takes no arguments, got "a@example.com"`}},
		{[]string{"suppressions", "export", "--format", "xml"}, nil, 2, []string{`suppressions export: --format "xml" (want csv or json)`}},
		{[]string{"suppressions", "import"}, nil, 2, []string{"suppressions import: want one FILE or - (stdin), got 0 arguments"}},
		{[]string{"suppressions", "import", "-"}, nil, 2, []string{"suppressions import: say --format csv or --format ndjson"}},
		{[]string{"suppressions", "import", "--format", "xml", "-"}, nil, 2, []string{`suppressions import: --format "xml" (want csv or ndjson)`}},
		{[]string{"suppressions", "import", badSupp}, map[string]string{"DATABASE_URL": noDB}, 2, []string{"suppressions import ", "bad-supp.csv: import: line 3: reason \"bored\""}},
		{[]string{"suppressions", "list"}, map[string]string{"BOUNCER_ERASURE_KEY": "short"}, 2, []string{"suppressions list: the erasure key is 5 bytes, want at least 16"}},
		{[]string{"suppressions", "check"}, nil, 2, []string{"suppressions check: takes one ADDRESS, got 0 arguments"}},
		{[]string{"suppressions", "check", "notanemail"}, nil, 2, []string{`suppressions check: "notanemail" is not an email address (want NAME@DOMAIN)`}},
		{[]string{"suppressions", "add", "notanemail", "--reason", "hard"}, nil, 2, []string{`suppressions add: "notanemail" is not an email address (want NAME@DOMAIN)`}},
		{[]string{"suppressions", "add", "a@example.com"}, nil, 2, []string{"suppressions add: needs --reason"}},
		{[]string{"suppressions", "add", "a@example.com", "--reason", "hard", "--expires", "banana"}, nil, 2, []string{`suppressions add: --expires "banana" is not a duration (want`, "30d"}},
		{[]string{"suppressions", "remove", "a@example.com"}, nil, 2, []string{"suppressions remove: needs --by WHO and --why WHY"}},
		{[]string{"suppressions", "check", "a@example.com", "--database-url", noDB}, nil, 2, []string{"suppressions check: cannot connect to PostgreSQL at 127.0.0.1:1"}},
		{[]string{"suppressions", "list", "--database-url", noDB}, nil, 1, []string{"suppressions list: cannot connect to PostgreSQL at 127.0.0.1:1"}},

		{[]string{"run"}, nil, 2, []string{"run: no mailbox: set BOUNCER_IMAP_URL or BOUNCER_CONFIG"}},
		{[]string{"run", "--imap", "notaurl"}, nil, 2, []string{`run: imap url "notaurl": scheme must be imap or imaps (want imap[s]://USER@HOST[:PORT]/MAILBOX)`}},
		{[]string{"run", "--imap", imapOK, "--batch-size", "0"}, nil, 2, []string{"run: batch size 0"}},
		{[]string{"run", "--bogus"}, nil, 2, []string{"run: flag provided but not defined: -bogus"}},
		{[]string{"run", "--imap", imapOK}, map[string]string{"BOUNCER_LOG_LEVEL": "loud"}, 2, []string{`run: log level "loud" (want debug, info, warn or error)`}},
		{[]string{"run", "--imap", imapOK, "--database-url", "not a url"}, nil, 2, []string{`run: database URL "not a url" is not a PostgreSQL URL`}},

		{[]string{"inject"}, nil, 2, []string{"inject needs --imap URL and at least one FILE or DIR"}},
		{[]string{"inject", "--imap", "notaurl", "x.eml"}, nil, 2, []string{`inject: imap url "notaurl": scheme must be imap or imaps`}},
		{[]string{"inject", "--imap", imapOK, "/nonexistent.eml"}, nil, 1, []string{"inject: ", "/nonexistent.eml", "no such file"}},

		{[]string{"sent"}, nil, 2, []string{"sent: want the subcommand import, got none"}},
		{[]string{"sent", "import"}, nil, 2, []string{"sent import: want one FILE or - (stdin), got 0 arguments"}},
		{[]string{"sent", "import", "--format", "xml", "-"}, nil, 2, []string{`sent import: --format "xml" (want csv or ndjson)`}},
		{[]string{"sent", "import", badAt}, nil, 2, []string{"sent import: ", "bad-at.csv line 3: sent_at \"yesterday\": want an RFC 3339 time such as 2026-12-04T09:00:00Z"}},
		{[]string{"sent", "import", badRcpt}, nil, 2, []string{"bad-rcpt.ndjson line 3: recipient \"nobody\": want an email address (local@domain)"}},
		{[]string{"sent", "import", badCol}, nil, 2, []string{`bad-col.csv line 1: unknown column "when" (want message_id,recipient,list_id,campaign_id,sent_at)`}},
		{[]string{"sent", "import", "/nonexistent.csv"}, nil, 1, []string{"sent import: ", "/nonexistent.csv", "no such file"}},
		{[]string{"run", "--imap", imapOK}, map[string]string{"BOUNCER_TRUST": "maybe"}, 2, []string{`run: BOUNCER_TRUST="maybe": want verp, sent, any or auto`}},
		{[]string{"run", "--imap", imapOK}, map[string]string{"NATS_CREDS_FILE": "/nonexistent/x.creds"}, 2, []string{"run: NATS_CREDS_FILE=/nonexistent/x.creds: ", "(want a readable file)"}},
		{[]string{"run", "--imap", imapOK}, map[string]string{"NATS_NKEY_FILE": "/nonexistent/u.nk"}, 2, []string{"run: NATS_NKEY_FILE=/nonexistent/u.nk: ", "(want a file holding an NKey user seed, SU...)"}},
		{[]string{"run", "--imap", imapOK}, map[string]string{"BOUNCER_TRUST": "verp"}, 2, []string{"run: BOUNCER_TRUST=verp needs BOUNCER_VERP_KEYS or BOUNCER_VERP_KEYS_FILE"}},

		{[]string{"demo", "extra"}, nil, 2, []string{`demo takes no arguments, got "extra"`}},
		{[]string{"demo"}, map[string]string{"BOUNCER_LOG_LEVEL": "loud"}, 2, []string{`demo: BOUNCER_LOG_LEVEL="loud" (want debug, info, warn or error)`}},
	} {
		getenv := func(k string) string { return tc.env[k] }
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: getenv}, tc.args)
		name := "bouncer " + strings.Join(tc.args, " ")
		if got := exitStatus(err); got != tc.exit {
			t.Errorf("%s: exit status %d (%v), want %d", name, got, err, tc.exit)
			continue
		}
		msg := errorLine(err)
		at := 0
		for _, w := range tc.want {
			i := strings.Index(msg[at:], w)
			if i < 0 {
				t.Errorf("%s: message %q, want it to contain %q", name, msg, w)
				break
			}
			at += i + len(w)
		}
		if strings.Contains(msg, "\n") || strings.Contains(msg, "store:") || strings.Contains(msg, "worker:") || strings.Contains(msg, "usage:") {
			t.Errorf("%s: message %q: want one line without package prefixes", name, msg)
		}
		if len(tc.args) > 0 && stderr.Len() > 0 {
			t.Errorf("%s: also printed to stderr %q; want the error line only", name, stderr.String())
		}
	}
}

// -h prints the usage and is not an error.
func TestCLIHelp(t *testing.T) {
	for name := range commands {
		var out bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &out, getenv: func(string) string { return "" }}
		if err := run(context.Background(), e, []string{name, "-h"}); err != nil {
			t.Errorf("bouncer %s -h = %v, want nil", name, err)
		}
		if !strings.Contains(out.String(), "bouncer "+name) {
			t.Errorf("bouncer %s -h printed %q, want its usage", name, out.String())
		}
	}
}

func TestErrorLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"usage: run: worker: config: worker: imap url x: bad", "run: imap url x: bad"},
		{"suppressions check failed: store: invalid argument: \"x\" is not an email address", `"x" is not an email address`},
		{"migrate: restore: worker pool: done", "migrate: restore: worker pool: done"},
		{"run: a\nb", "run: a; b"},
	} {
		if got := errorLine(errors.New(tc.in)); got != tc.want {
			t.Errorf("errorLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
