package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// Every secret read from a file (the *_FILE variables, the config file's
// password_file and token_file, serve's --token-file, VERP keys, NATS
// creds and seed) is in the scrub list: an error that quotes it prints
// xxxxx instead, and commands run at debug level with it set never print
// it.
func TestFileSecretsNeverLogged(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dead := fmt.Sprintf("127.0.0.1:%d", wt.FreePort(t))
	deadIMAP := "imap://bounces@" + dead + "/INBOX?tls=none"
	goodDB := wt.NewDatabase(t)
	const (
		imapPw    = "ImapPw-file-4c2a"
		oauth     = "OAuthTok-file-9d1e"
		httpTok   = "HttpTok-file-0123456789"
		verpKey   = "c2VjcmV0LXZlcnAta2V5LWZpbGUtMzJieXRlcyE="
		seed      = "SUAKEYSEEDFORTHETESTONLYX7Q2ZJ3M5N6P4R8T2W9Y3B5C7D1F6G4H8J2K"
		credsJWT  = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.testjwtbody.sig"
		cfgPw     = "CfgPw-file-77aa"
		cfgToken  = "CfgTok-file-88bb"
		serveTok  = "ServeTok-file-0123456789"
		erasure   = "ErasureKey-file-0123456789"
		credsSeed = "SUACREDSSEEDFORTHETESTONLYQ2ZJ3M5N6P4R8T2W9Y3B5C7D1F6G4H8J"
	)
	creds := "-----BEGIN NATS USER JWT-----\n" + credsJWT + "\n------END NATS USER JWT------\n\n" +
		"************************* IMPORTANT *************************\n" +
		"-----BEGIN USER NKEY SEED-----\n" + credsSeed + "\n------END USER NKEY SEED------\n"
	config := write("bouncer.json", `{"mailboxes": [{"url": "`+deadIMAP+`", "password_file": "`+write("cfg-pw", cfgPw+"\n")+`"},
		{"url": "imap://b@`+dead+`/Other?tls=none", "auth": "xoauth2", "token_file": "`+write("cfg-tok", cfgToken)+`"}]}`)
	base := map[string]string{"DATABASE_URL": goodDB, "NATS_URL": "nats://" + dead, "BOUNCER_LOG_LEVEL": "debug", "BOUNCER_HTTP_ADDR": "off"}
	for _, tc := range []struct {
		name   string
		secret string
		env    map[string]string
		args   []string
		until  string
	}{
		{"IMAP password file", imapPw, map[string]string{"BOUNCER_IMAP_URL": deadIMAP, "BOUNCER_IMAP_PASSWORD_FILE": write("imap-pw", imapPw+"\n")}, []string{"run"}, "imap session ended"},
		{"IMAP token file", oauth, map[string]string{"BOUNCER_IMAP_URL": deadIMAP, "BOUNCER_IMAP_AUTH": "xoauth2", "BOUNCER_IMAP_TOKEN_FILE": write("oauth", oauth)}, []string{"run"}, "imap session ended"},
		{"HTTP token file", httpTok, map[string]string{"BOUNCER_IMAP_URL": deadIMAP, "BOUNCER_IMAP_PASSWORD": "x", "BOUNCER_HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", wt.FreePort(t)), "BOUNCER_HTTP_TOKEN_FILE": write("http-tok", httpTok)}, []string{"run"}, "imap session ended"},
		{"VERP keys file", verpKey, map[string]string{"BOUNCER_IMAP_URL": deadIMAP, "BOUNCER_IMAP_PASSWORD": "x", "BOUNCER_VERP_KEYS_FILE": write("verp", "# keys\nk1:"+verpKey+"\n")}, []string{"run"}, "imap session ended"},
		{"NATS NKey seed file", seed, map[string]string{"BOUNCER_IMAP_URL": deadIMAP, "BOUNCER_IMAP_PASSWORD": "x", "NATS_NKEY_FILE": write("nkey", seed+"\n")}, []string{"run"}, ""},
		{"NATS creds file, JWT", credsJWT, map[string]string{"BOUNCER_IMAP_URL": deadIMAP, "BOUNCER_IMAP_PASSWORD": "x", "NATS_CREDS_FILE": write("creds", creds)}, []string{"run"}, "imap session ended"},
		{"NATS creds file, seed", credsSeed, map[string]string{"BOUNCER_IMAP_URL": deadIMAP, "BOUNCER_IMAP_PASSWORD": "x", "NATS_CREDS_FILE": write("creds2", creds)}, []string{"run"}, "imap session ended"},
		{"erasure key file", erasure, map[string]string{"BOUNCER_IMAP_URL": deadIMAP, "BOUNCER_IMAP_PASSWORD": "x", "BOUNCER_ERASURE_KEY_FILE": write("erasure", erasure+"\n")}, []string{"run"}, "imap session ended"},
		{"config password_file", cfgPw, map[string]string{"BOUNCER_CONFIG": config}, []string{"run"}, "imap session ended"},
		{"config token_file", cfgToken, nil, []string{"run", "--config", config}, "imap session ended"},
		{"serve --token-file", serveTok, nil, []string{"serve", "--addr", "127.0.0.1:99999", "--token-file", write("serve-tok", serveTok)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			for k, v := range base {
				vars[k] = v
			}
			for k, v := range tc.env {
				vars[k] = v
			}
			getenv := func(k string) string { return vars[k] }
			// An error that quotes the secret prints xxxxx in its place.
			// The command's flags follow the path, where parse reads them as
			// more paths, and commandSecrets still as flags.
			probe := append([]string{"parse", filepath.Join(dir, "missing", tc.secret+".eml")}, tc.args[1:]...)
			var stdout syncBuffer // parse's report, which quotes what it reads
			out := runOnce(t, getenv, probe, "", &stdout)
			if strings.Contains(out, tc.secret) || !strings.Contains(out, "xxxxx") {
				t.Errorf("bouncer parse of a path holding the secret printed:\n%s", out)
			}
			out = runOnce(t, getenv, tc.args, tc.until, nil)
			if strings.Contains(out, tc.secret) {
				t.Errorf("bouncer %s: the secret appears in its output or error:\n%s", strings.Join(tc.args, " "), out)
			}
		})
	}
}

// runOnce runs bouncer with args until it ends or logs until (then it is
// stopped), and returns all it printed and the error it returned.
// Its stdout goes to stdout, or with the rest when stdout is nil.
func runOnce(t *testing.T, getenv func(string) string, args []string, until string, stdout io.Writer) string {
	t.Helper()
	logs := &awaitBuffer{changed: make(chan struct{}, 1)}
	if stdout == nil {
		stdout = logs
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, &env{stdout: stdout, stderr: logs, getenv: getenv}, args) }()
	if until != "" {
		logs.await(t, until, done)
		cancel()
	}
	err := <-done
	all := logs.String()
	if err != nil {
		all += "\n" + err.Error() + "\n" + errorLine(err)
	}
	return all
}
