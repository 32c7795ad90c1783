package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/worker"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// No password reaches a log line or an error: every command is given a
// password in every URL it takes (DATABASE_URL, NATS_URL, the IMAP URL, in
// the environment and in flags, URL and keyword forms), is made to fail
// (a dead port, an unparsable URL), and all it prints and returns is
// searched for the password.
func TestSecretsNeverLogged(t *testing.T) {
	const pw = "Pw-7f3e9c1d"
	dead := fmt.Sprintf("127.0.0.1:%d", wt.FreePort(t))
	goodDB := withPassword(t, wt.NewDatabase(t), pw) // trust auth: the password is ignored
	deadDB := "postgres://postgres:" + pw + "@" + dead + "/nowhere?connect_timeout=2"
	deadNATS := "nats://bouncer:" + pw + "@" + dead
	deadIMAP := "imap://bounces:" + pw + "@" + dead + "/INBOX?tls=none"
	eml := filepath.Join(t.TempDir(), "a.eml")
	if err := os.WriteFile(eml, []byte("Subject: x\r\n\r\nx\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "bouncer.json")
	if err := os.WriteFile(config, []byte(`{"mailboxes": [{"url": "imap://a:`+pw+`@`+dead+`/INBOX?tls=none"},
		{"url": "imap://b@`+dead+`/Other?tls=none", "password": "`+pw+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		until string // a log line to await before stopping a command that retries
	}{
		{"run, Postgres down", []string{"run"}, map[string]string{"DATABASE_URL": deadDB, "NATS_URL": deadNATS, "BOUNCER_IMAP_URL": deadIMAP}, "database not ready"},
		{"run, NATS and IMAP down", []string{"run", "--http-addr", "off"}, map[string]string{"DATABASE_URL": goodDB, "NATS_URL": deadNATS, "BOUNCER_IMAP_URL": deadIMAP}, "imap session ended"},
		{"run, NATS URL unparsable", []string{"run", "--http-addr", "off", "--nats-url", "nats://bouncer:" + pw + "@127.0.0.1:port"}, map[string]string{"DATABASE_URL": goodDB, "BOUNCER_IMAP_URL": deadIMAP}, ""},
		{"run, IMAP URL unparsable", []string{"run", "--imap", "imap://bounces:" + pw + "@127.0.0.1:port/INBOX"}, map[string]string{"DATABASE_URL": goodDB}, ""},
		{"run, IMAP password variable", []string{"run", "--http-addr", "off"}, map[string]string{"DATABASE_URL": goodDB, "NATS_URL": deadNATS, "BOUNCER_IMAP_URL": "imap://bounces@" + dead + "/INBOX?tls=none", "BOUNCER_IMAP_PASSWORD": pw}, "imap session ended"},
		{"run, config file", []string{"run", "--config", config}, map[string]string{"DATABASE_URL": goodDB, "NATS_URL": deadNATS}, "imap session ended"},
		{"run, config file in env", []string{"run"}, map[string]string{"DATABASE_URL": goodDB, "NATS_URL": deadNATS, "BOUNCER_CONFIG": config}, "imap session ended"},
		{"migrate, flag", []string{"migrate", "--database-url", deadDB}, nil, ""},
		{"migrate, keyword form", []string{"migrate", "--database-url", "host=127.0.0.1 port=1 user=postgres password=" + pw + " connect_timeout=2"}, nil, ""},
		{"migrate, bad port", []string{"migrate"}, map[string]string{"DATABASE_URL": "postgres://postgres:" + pw + "@127.0.0.1:port/x"}, ""},
		{"stats", []string{"stats"}, map[string]string{"DATABASE_URL": deadDB}, ""},
		{"suppressions", []string{"suppressions", "list"}, map[string]string{"DATABASE_URL": deadDB}, ""},
		{"suppressions, erasure key", []string{"suppressions", "list"}, map[string]string{"DATABASE_URL": deadDB, "BOUNCER_ERASURE_KEY": "key-" + pw + "-0123456789"}, ""},
		{"inject", []string{"inject", "--imap", deadIMAP, eml}, nil, ""},
		{"inject, env", []string{"inject", eml}, map[string]string{"BOUNCER_IMAP_URL": deadIMAP}, ""},
		{"demo", []string{"demo", "--log-json"}, map[string]string{"DATABASE_URL": goodDB, "NATS_URL": deadNATS}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"BOUNCER_LOG_LEVEL": "debug", "BOUNCER_HTTP_ADDR": "off"}
			for k, v := range tc.env {
				vars[k] = v
			}
			logs := &awaitBuffer{changed: make(chan struct{}, 1)}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, &env{stdout: logs, stderr: logs, getenv: func(k string) string { return vars[k] }}, tc.args)
			}()
			var err error
			if tc.until != "" {
				logs.await(t, tc.until, done)
				cancel()
			}
			err = <-done
			if err == nil && tc.until == "" {
				t.Fatalf("bouncer %s = nil error, want one", strings.Join(tc.args, " "))
			}
			all := logs.String()
			if err != nil {
				all += "\n" + err.Error() + "\n" + errorLine(err)
			}
			if strings.Contains(all, pw) {
				t.Errorf("bouncer %s: the password appears in its output or error:\n%s", strings.Join(tc.args, " "), all)
			}
			if tc.until == "" && !strings.Contains(all, "xxxxx") && !strings.Contains(all, "refused") && !strings.Contains(all, "port") {
				t.Errorf("bouncer %s failed for no visible reason:\n%s", strings.Join(tc.args, " "), all)
			}
		})
	}
}

// withPassword returns the URL u with the password pw.
func withPassword(t *testing.T, u, pw string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p.User = url.UserPassword(p.User.Username(), pw)
	return p.String()
}

// awaitBuffer is a log buffer that can be awaited for a line.
type awaitBuffer struct {
	syncBuffer
	changed chan struct{}
}

func (b *awaitBuffer) Write(p []byte) (int, error) {
	n, err := b.syncBuffer.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

// await returns once text has been written, and fails the test if the
// command ends or a minute passes first.
func (b *awaitBuffer) await(t *testing.T, text string, done <-chan error) {
	t.Helper()
	limit := time.NewTimer(time.Minute)
	defer limit.Stop()
	for !strings.Contains(b.String(), text) {
		select {
		case <-b.changed:
		case err := <-done:
			t.Fatalf("ended (%v) before logging %q:\n%s", err, text, b.String())
		case <-limit.C:
			t.Fatalf("%q not logged within a minute:\n%s", text, b.String())
		}
	}
}

// `bouncer run` warns once, at start and redacted, when its database
// connection may cross the network in clear; not for a loopback one.
func TestRunWarnsPlaintextDatabase(t *testing.T) {
	const pw = "Pw-5b1e0a77"
	const warning = "database connection not protected by TLS"
	for _, tc := range []struct {
		dbURL string
		warn  bool
	}{
		// 192.0.2.1 (TEST-NET-1, RFC 5737) never answers: run waits for it.
		{"postgres://postgres:" + pw + "@192.0.2.1:5432/x?sslmode=disable&connect_timeout=1", true},
		{withPassword(t, wt.NewDatabase(t), pw), false},
	} {
		logs := &awaitBuffer{changed: make(chan struct{}, 1)}
		vars := map[string]string{"DATABASE_URL": tc.dbURL, "BOUNCER_HTTP_ADDR": "off", "NATS_URL": "nats://127.0.0.1:1",
			"BOUNCER_IMAP_URL": fmt.Sprintf("imap://u:p@127.0.0.1:%d/INBOX?tls=none", wt.FreePort(t))}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, &env{stdout: logs, stderr: logs, getenv: func(k string) string { return vars[k] }}, []string{"run"})
		}()
		if tc.warn {
			logs.await(t, warning, done)
		} else {
			logs.await(t, "imap session ended", done) // past the start
		}
		cancel()
		<-done
		out := logs.String()
		if got := strings.Count(out, warning); got != map[bool]int{true: 1, false: 0}[tc.warn] {
			t.Errorf("bouncer run with DATABASE_URL %s: %d warnings %q, want %v:\n%s", worker.RedactURL(tc.dbURL), got, warning, tc.warn, out)
		}
		if strings.Contains(out, pw) {
			t.Errorf("bouncer run: the password appears in its log:\n%s", out)
		}
	}
}

// The webhook secrets, from the environment or their files, are among the
// secrets kept out of logs and errors.
func TestWebhookSecretsScrubbed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mailgun.key")
	if err := os.WriteFile(file, []byte("mg-key-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"BOUNCER_WEBHOOK_MAILGUN_KEY_FILE": file, "BOUNCER_WEBHOOK_POSTMARK_USER": "pm",
		"BOUNCER_WEBHOOK_POSTMARK_PASSWORD": "pm-password-1", "BOUNCER_WEBHOOK_POSTMARK_TOKEN": "pm-token-2"}
	got := commandSecrets(func(k string) string { return vars[k] }, []string{"run"})
	for _, want := range []string{"mg-key-from-file", "pm-password-1", "pm-token-2"} {
		if !slices.Contains(got, want) {
			t.Errorf("commandSecrets(webhook settings) = %q, want it to hold %q", got, want)
		}
	}
}
