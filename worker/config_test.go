package worker

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker/verp"
)

func TestParseMailboxURL(t *testing.T) {
	tests := []struct {
		raw     string
		want    Mailbox // Key, Addr, TLS, User, Password, Folder, Processed, Quarantine, NotBounce, Auth
		wantErr string
	}{
		{raw: "imaps://bounces:pw@Mail.Example.com/INBOX",
			want: Mailbox{Key: "bounces@mail.example.com:993/INBOX", Addr: "mail.example.com:993", TLS: TLSImplicit, User: "bounces", Password: "pw", Folder: "INBOX", Processed: "Processed", Quarantine: "Quarantine", Auth: AuthLogin}},
		{raw: "imap://b:pw@mail.example.com/Bounces?processed=Done&quarantine=Bad&notbounce=Humans",
			want: Mailbox{Key: "b@mail.example.com:143/Bounces", Addr: "mail.example.com:143", TLS: TLSStartTLS, User: "b", Password: "pw", Folder: "Bounces", Processed: "Done", Quarantine: "Bad", NotBounce: "Humans", Auth: AuthLogin}},
		{raw: "imap://b:pw@127.0.0.1:1143?tls=none",
			want: Mailbox{Key: "b@localhost:1143/INBOX", Addr: "127.0.0.1:1143", TLS: TLSNone, User: "b", Password: "pw", Folder: "INBOX", Processed: "Processed", Quarantine: "Quarantine", Auth: AuthLogin}},
		{raw: "imap://b:pw@[::1]:1143/INBOX?tls=none",
			want: Mailbox{Key: "b@localhost:1143/INBOX", Addr: "[::1]:1143", TLS: TLSNone, User: "b", Password: "pw", Folder: "INBOX", Processed: "Processed", Quarantine: "Quarantine", Auth: AuthLogin}},
		{raw: "imaps://b@outlook.office365.com/INBOX?auth=xoauth2&token_file=/run/tok",
			want: Mailbox{Key: "b@outlook.office365.com:993/INBOX", Addr: "outlook.office365.com:993", TLS: TLSImplicit, User: "b", Folder: "INBOX", Processed: "Processed", Quarantine: "Quarantine", Auth: AuthXOAUTH2}},
		{raw: "imap://b:pw@LocalHost.:1143?tls=none",
			want: Mailbox{Key: "b@localhost:1143/INBOX", Addr: "localhost.:1143", TLS: TLSNone, User: "b", Password: "pw", Folder: "INBOX", Processed: "Processed", Quarantine: "Quarantine", Auth: AuthLogin}},
		{raw: "imaps://b:pw@[2001:DB8:0::1]/INBOX",
			want: Mailbox{Key: "b@[2001:db8::1]:993/INBOX", Addr: "[2001:db8:0::1]:993", TLS: TLSImplicit, User: "b", Password: "pw", Folder: "INBOX", Processed: "Processed", Quarantine: "Quarantine", Auth: AuthLogin}},
		{raw: "imaps://b:pw@mail.example.com/INBOX?name=bounces-eu",
			want: Mailbox{Key: "bounces-eu", Name: "bounces-eu", Addr: "mail.example.com:993", TLS: TLSImplicit, User: "b", Password: "pw", Folder: "INBOX", Processed: "Processed", Quarantine: "Quarantine", Auth: AuthLogin}},
		{raw: "imap://b:pw@mail.example.com/INBOX?tls=none", wantErr: "only allowed to a loopback host"},
		{raw: "imaps://b:pw@localhost/INBOX?tls=none", wantErr: "tls=none with imaps"},
		{raw: "pop3://b:pw@mail.example.com/", wantErr: "scheme must be imap or imaps"},
		{raw: "imap://b:pw@mail.example.com/INBOX?bogus=1", wantErr: "unknown option"},
		{raw: "imap://b@mail.example.com/INBOX", wantErr: "no password"},
		{raw: "imap://:pw@mail.example.com/INBOX", wantErr: "no user"},
		{raw: "imap://b:pw@mail.example.com/INBOX?processed=inbox", wantErr: "bounce mailbox itself"},
		{raw: "imap://b@mail.example.com/INBOX?auth=oauthbearer", wantErr: "needs exactly one of token_file or token_command"},
		{raw: "imap://b:pw@mail.example.com:99999/INBOX", wantErr: "bad port"},
	}
	for _, tt := range tests {
		m, err := ParseMailboxURL(tt.raw)
		if err == nil {
			err = m.finish()
		}
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseMailboxURL(%q) error = %v, want %q", tt.raw, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("ParseMailboxURL(%q) error %q shows the password", tt.raw, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseMailboxURL(%q) error = %v", tt.raw, err)
			continue
		}
		m.Host, m.TokenFile, m.TokenCommand, m.CAFile, m.LegacyKey = "", "", "", "", ""
		if m != tt.want {
			t.Errorf("ParseMailboxURL(%q) =\n %+v, want\n %+v", tt.raw, m, tt.want)
		}
	}
}

func TestConfigEnvFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)
	cfgFile := filepath.Join(dir, "bouncer.json")
	os.WriteFile(cfgFile, []byte(`{"mailboxes": [
		{"url": "imaps://other@mail.example.net/Bounces", "password": "p2", "processed": "Done", "not_bounce": "Humans"},
		{"url": "imaps://o365@outlook.office365.com/INBOX", "auth": "xoauth2", "token_command": "echo tok"}
	]}`), 0o600)
	env := map[string]string{
		"BOUNCER_IMAP_URL":           "imaps://bounces@mail.example.com/INBOX, imap://b2@127.0.0.1:1143/INBOX?tls=none",
		"BOUNCER_IMAP_PASSWORD_FILE": pwFile,
		"BOUNCER_CONFIG":             cfgFile,
		"BOUNCER_BATCH_SIZE":         "100",
		"BOUNCER_LEASE_TTL":          "9s",
	}
	cfg := DefaultConfig()
	if err := cfg.FromEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.BatchSize != 100 || cfg.LeaseTTL != 9*time.Second {
		t.Errorf("cfg = %+v", cfg)
	}
	if len(cfg.Mailboxes) != 4 {
		t.Fatalf("got %d mailboxes, want 4", len(cfg.Mailboxes))
	}
	if m := cfg.Mailboxes[0]; m.Password != "from-file" || m.TLS != TLSImplicit {
		t.Errorf("mailbox 0 = %+v, want password from the file", m)
	}
	if m := cfg.Mailboxes[2]; m.Password != "p2" || m.Processed != "Done" || m.NotBounce != "Humans" || m.Quarantine != "Quarantine" {
		t.Errorf("mailbox 2 = %+v", m)
	}
	if m := cfg.Mailboxes[3]; m.Auth != AuthXOAUTH2 || m.TokenCommand != "echo tok" {
		t.Errorf("mailbox 3 = %+v", m)
	}
	if cfg.Owner == "" {
		t.Error("no owner")
	}

	bad := DefaultConfig()
	bad.FromEnv(func(k string) string {
		return map[string]string{"BOUNCER_BATCH_SIZE": "x", "BOUNCER_POLL_INTERVAL": "soon"}[k]
	})
	if err := bad.FromEnv(func(k string) string {
		return map[string]string{"BOUNCER_BATCH_SIZE": "x", "BOUNCER_POLL_INTERVAL": "soon"}[k]
	}); err == nil || !strings.Contains(err.Error(), "BOUNCER_BATCH_SIZE") || !strings.Contains(err.Error(), "BOUNCER_POLL_INTERVAL") {
		t.Errorf("FromEnv(bad) = %v, want both variables named", err)
	}
	none := DefaultConfig()
	if err := none.Validate(); err == nil || !strings.Contains(err.Error(), "no mailbox") {
		t.Errorf("Validate() without mailboxes = %v", err)
	}
}

// Every variable FromEnv reads is documented in EnvVars, and the other
// way round.
func TestEnvVarsComplete(t *testing.T) {
	read := map[string]bool{}
	cfg := DefaultConfig()
	cfg.FromEnv(func(k string) string { read[k] = true; return "" })
	// bouncer run reads the suppression policy with the store's function.
	store.PolicyFromEnv(func(k string) string { read[k] = true; return "" })
	// The return path's form is read only once keys are set.
	TrustFromEnv(func(k string) string {
		read[k] = true
		if k == verp.EnvKeys {
			return "k1:" + testSecret('k')
		}
		return ""
	})
	// The explain page's variables are read by its own package, and the
	// process's settings by cmd/bouncer.
	external := map[string]bool{"BOUNCER_HTTP_TOKEN": true, "BOUNCER_HTTP_TOKEN_FILE": true,
		"DATABASE_URL": true, "NATS_URL": true, "BOUNCER_HTTP_ADDR": true, "BOUNCER_LOG_LEVEL": true,
		"NATS_CREDS_FILE": true, "NATS_NKEY_FILE": true, "NATS_TLS_CA": true,
		"NATS_TLS_CERT": true, "NATS_TLS_KEY": true,
		"BOUNCER_ERASURE_KEY": true, "BOUNCER_ERASURE_KEY_FILE": true} // cmd/bouncer's erasureKey
	for _, v := range EnvVars {
		if !read[v.Name] && !external[v.Name] {
			t.Errorf("EnvVars lists %s, which FromEnv does not read", v.Name)
		}
		delete(read, v.Name)
	}
	for k := range read {
		t.Errorf("FromEnv reads %s, which EnvVars does not list", k)
	}
}

// The policy defaults EnvVars documents are the store's.
func TestEnvVarsPolicyDefaults(t *testing.T) {
	defaults := map[string]string{}
	for _, v := range EnvVars {
		defaults[v.Name] = v.Default
	}
	got, err := store.PolicyFromEnv(func(k string) string {
		if strings.HasPrefix(k, "BOUNCER_SOFT_") || strings.HasSuffix(k, "_SCOPE") || k == "BOUNCER_MAX_RECIPIENTS" {
			if defaults[k] == "" {
				t.Errorf("EnvVars has no default for %s", k)
			}
			return defaults[k]
		}
		return ""
	})
	if err != nil {
		t.Fatalf("PolicyFromEnv(EnvVars defaults) = %v", err)
	}
	if want := store.DefaultPolicy(); !reflect.DeepEqual(got, want) {
		t.Errorf("PolicyFromEnv(EnvVars defaults) = %+v, want the store's defaults %+v", got, want)
	}
}

func TestMessageSHA256(t *testing.T) {
	lf := []byte("From: a@example.com\nSubject: x\n\nbody\nline\n")
	crlf := []byte("From: a@example.com\r\nSubject: x\r\n\r\nbody\r\nline\r\n")
	if MessageSHA256(lf) != MessageSHA256(crlf) {
		t.Error("MessageSHA256(LF) != MessageSHA256(CRLF)")
	}
	// Split writes across a CR LF boundary give the same sum.
	var a, b bytes.Buffer
	w := &crlfWriter{w: &a}
	w.Write(crlf[:20])
	w.Write(crlf[20:21])
	w.Write(crlf[21:])
	(&crlfWriter{w: &b}).Write(crlf)
	if a.String() != b.String() || a.String() != string(crlf) {
		t.Errorf("crlfWriter in pieces = %q, want %q", a.String(), crlf)
	}
}
