package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	verpTestSecret1 = "c2VjcmV0LW51bWJlci1vbmUtMzItYnl0ZXMtbG9uZyE="
	verpTestSecret2 = "dGhlLXNlY29uZC1zZWNyZXQtaXMtYWxzby0zMmJ5dGU="
)

// verpExit is the exit status main gives err.
func verpExit(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage) || errors.Is(err, errCheckFailed):
		return 2
	}
	return 1
}

func runVERPCmd(t *testing.T, environ map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }}
	err = run(t.Context(), e, append([]string{"verp"}, args...))
	return out.String(), errb.String(), err
}

func TestVERPCommand(t *testing.T) {
	keys := map[string]string{"BOUNCER_VERP_KEYS": "k2:" + verpTestSecret2 + ",k1:" + verpTestSecret1}
	oldKeys := map[string]string{"BOUNCER_VERP_KEYS": "k1:" + verpTestSecret1}
	encode := func(environ map[string]string, args ...string) string {
		out, _, err := runVERPCmd(t, environ, append([]string{"encode"}, args...)...)
		if err != nil {
			t.Fatalf("verp encode %v = %v", args, err)
		}
		return strings.TrimSpace(out)
	}
	addr := encode(keys, "--recipient", "ana@mail.example.net", "--list", "news", "--campaign", "c-2026-12", "--domain", "bounces.example.com")
	old := encode(oldKeys, "--recipient", "ana@mail.example.net", "--list", "news", "--campaign", "c-2026-12", "--domain", "bounces.example.com")
	dash := encode(keys, "--recipient", "ana@mail.example.net", "--list", "news", "--campaign", "c", "--domain", "b.example", "--local", "rp", "--sep", "-")
	if !strings.HasPrefix(addr, "bounces+") || !strings.HasSuffix(addr, "@bounces.example.com") || len(addr) != len("bounces+@bounces.example.com")+48 {
		t.Fatalf("verp encode = %q, want bounces+<48 characters>@bounces.example.com", addr)
	}
	if !strings.HasPrefix(dash, "rp-") || !strings.HasSuffix(dash, "@b.example") {
		t.Fatalf("verp encode --local rp --sep - = %q", dash)
	}
	swap := "a"
	if addr[20] == 'a' {
		swap = "b"
	}
	tampered := addr[:20] + swap + addr[21:]
	retired := map[string]string{"BOUNCER_VERP_KEYS": "k3:" + verpTestSecret2}
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte("k2:"+verpTestSecret2+"\nk1:"+verpTestSecret1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		exit    int
		stdout  []string // each must appear
		errText string   // must appear in the error
	}{
		{"decode valid", keys, []string{"decode", addr}, 0, []string{"key:       k2 (the signing key)", "recipient: not checked", "verifies:  yes"}, ""},
		{"decode upper case", keys, []string{"decode", strings.ToUpper(addr)}, 0, []string{"verifies:  yes"}, ""},
		{"decode recipient after address", keys, []string{"decode", addr, "--recipient", "Ana@Mail.Example.NET", "--list", "news", "--campaign", "c-2026-12"}, 0,
			[]string{"recipient: Ana@Mail.Example.NET: matches", "list:      news: matches", "campaign:  c-2026-12: matches", "verifies:  yes"}, ""},
		{"decode recipient before address", keys, []string{"decode", "--recipient", "ana@mail.example.net", addr}, 0, []string{"verifies:  yes"}, ""},
		{"decode keys from file", map[string]string{"BOUNCER_VERP_KEYS_FILE": keyFile}, []string{"decode", addr}, 0, []string{"verifies:  yes"}, ""},
		{"decode old key still listed", keys, []string{"decode", old}, 0, []string{"key:       k1 (an older key, still accepted)", "verifies:  yes"}, ""},
		{"decode local and sep", keys, []string{"decode", "--local", "rp", "--sep", "-", "--domain", "b.example", dash}, 0, []string{"verifies:  yes"}, ""},
		{"wrong recipient", keys, []string{"decode", addr, "--recipient", "bob@mail.example.net"}, 1,
			[]string{"bob@mail.example.net: does NOT match", "verifies:  no"}, "issued for another recipient"},
		{"wrong list and campaign", keys, []string{"decode", addr, "--list", "promo", "--campaign", "x"}, 1,
			[]string{"verifies:  no"}, "another list; VERP token issued for another campaign"},
		{"tampered", keys, []string{"decode", tampered}, 1, []string{"verifies:  no"}, "forged or corrupted"},
		{"retired key", retired, []string{"decode", old}, 1, []string{"verifies:  no"}, "unknown key"},
		{"not ours", keys, []string{"decode", "ana@mail.example.net"}, 1, []string{"verifies:  no"}, `not a VERP address: the local part does not start with "bounces+"`},
		{"other domain", keys, []string{"decode", "--domain", "other.example", addr}, 1, nil, "not a VERP address: the domain is not other.example"},
		{"truncated", keys, []string{"decode", strings.Replace(addr, "@", "x@", 1)}, 1, nil, "malformed VERP token: 49 characters"},
		{"decode no address", keys, []string{"decode"}, 2, nil, "verp decode takes one ADDRESS, got 0"},
		{"decode two addresses", keys, []string{"decode", addr, addr}, 2, nil, "got 2 arguments"},
		{"decode not an address", keys, []string{"decode", "hello"}, 2, nil, `"hello" is not an email address: want LOCAL+TOKEN@DOMAIN`},
		{"decode no keys", nil, []string{"decode", addr}, 2, nil, "no VERP keys: set BOUNCER_VERP_KEYS"},
		{"decode unreadable key file", map[string]string{"BOUNCER_VERP_KEYS_FILE": keyFile + ".missing"}, []string{"decode", addr}, 1, nil, "BOUNCER_VERP_KEYS_FILE"},
		{"encode no recipient", keys, []string{"encode", "--list", "l", "--campaign", "c", "--domain", "b.example"}, 2, nil, "verp encode needs --recipient"},
		{"encode no campaign", keys, []string{"encode", "--recipient", "a@b.example", "--list", "l", "--domain", "b.example"}, 2, nil, "needs --campaign"},
		{"encode bad recipient", keys, []string{"encode", "--recipient", "ana", "--list", "l", "--campaign", "c", "--domain", "b.example"}, 2, nil, `recipient "ana" is not an email address: want LOCAL@DOMAIN`},
		{"encode no domain", keys, []string{"encode", "--recipient", "a@b.example", "--list", "l", "--campaign", "c"}, 2, nil, "no domain"},
		{"encode domain from env", map[string]string{"BOUNCER_VERP_KEYS": keys["BOUNCER_VERP_KEYS"], "BOUNCER_VERP_DOMAIN": "rp.example"},
			[]string{"encode", "--recipient", "a@b.example", "--list", "l", "--campaign", "c"}, 0, []string{"@rp.example\n"}, ""},
		{"encode local too long", keys, []string{"encode", "--recipient", "a@b.example", "--list", "l", "--campaign", "c", "--domain", "b.example", "--local", "return-path-bounce"}, 2, nil, "RFC 5321 §4.5.3.1.1"},
		{"encode bad sep", keys, []string{"encode", "--recipient", "a@b.example", "--list", "l", "--campaign", "c", "--domain", "b.example", "--sep", "x"}, 2, nil, `separator "x"`},
		{"encode short key", map[string]string{"BOUNCER_VERP_KEYS": "k1:c2hvcnQ="}, []string{"encode", "--recipient", "a@b.example", "--list", "l", "--campaign", "c", "--domain", "b.example"}, 2, nil, `key "k1": the secret is 5 bytes, want at least 16`},
		{"encode extra argument", keys, []string{"encode", "--recipient", "a@b.example", "--list", "l", "--campaign", "c", "--domain", "b.example", "extra"}, 2, nil, `takes no arguments, got "extra"`},
		{"encode unknown flag", keys, []string{"encode", "--to", "a@b.example"}, 2, nil, "flag provided but not defined: -to"},
		{"no action", keys, nil, 2, nil, "verp needs encode or decode"},
		{"unknown action", keys, []string{"sign"}, 2, nil, `unknown verp action "sign"`},
		{"help", keys, []string{"-h"}, 0, []string{"usage: bouncer verp encode"}, ""},
		{"encode help", keys, []string{"encode", "-h"}, 0, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := runVERPCmd(t, tc.env, tc.args...)
			if got := verpExit(err); got != tc.exit {
				t.Fatalf("bouncer verp %v: exit %d (%v), want %d; stdout:\n%s", tc.args, got, err, tc.exit, out)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(out, want) {
					t.Errorf("bouncer verp %v: stdout lacks %q:\n%s", tc.args, want, out)
				}
			}
			if tc.errText != "" && (err == nil || !strings.Contains(err.Error(), tc.errText)) {
				t.Errorf("bouncer verp %v = %v, want an error containing %q", tc.args, err, tc.errText)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("bouncer verp %v = %q: want one line", tc.args, err)
			}
			for _, s := range []string{verpTestSecret1, verpTestSecret2, "c2hvcnQ="} {
				if strings.Contains(out+stderr+verpErrString(err), s) {
					t.Errorf("bouncer verp %v printed a secret", tc.args)
				}
			}
		})
	}
}

func verpErrString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
