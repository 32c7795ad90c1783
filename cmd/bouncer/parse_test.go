package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runParseCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	err = run(t.Context(), e, append([]string{"parse"}, args...))
	return out.String(), errb.String(), err
}

func decodeNDJSON(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, o)
	}
	return out
}

func TestParseJSONWalksDirectories(t *testing.T) {
	dir := t.TempDir()
	fixtures := filepath.Join("..", "..", "classify", "testdata")
	for _, f := range []string{"mailbox_unknown-postfix.eml", "multi-mixed-dsn.eml", "not_bounce-human-reply.eml", "hostile-deep-nesting.eml"} {
		b, err := os.ReadFile(filepath.Join(fixtures, f))
		if err != nil {
			t.Fatal(err)
		}
		sub := filepath.Join(dir, "sub")
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := runParseCmd(t, "", "--json", dir)
	if err != nil {
		t.Fatalf("bouncer parse --json DIR: %v", err)
	}
	objs := decodeNDJSON(t, out)
	perFile := map[string][]map[string]any{}
	for _, o := range objs {
		for _, k := range []string{"file", "bounce", "kind", "recipient", "status", "smtp_code", "category", "severity", "hard", "suppress", "diagnostic", "rule"} {
			if _, ok := o[k]; !ok {
				t.Errorf("object %v lacks %q", o, k)
			}
		}
		f := filepath.Base(o["file"].(string))
		perFile[f] = append(perFile[f], o)
	}
	if n := len(perFile["multi-mixed-dsn.eml"]); n != 4 {
		t.Errorf("multi-mixed-dsn.eml gave %d objects, want 4 (failed, full, delayed, relay; not delivered or relayed)", n)
	}
	if o := perFile["not_bounce-human-reply.eml"]; len(o) != 1 || o[0]["bounce"] != false {
		t.Errorf("human reply gave %v, want one object with bounce false", o)
	}
	if o := perFile["hostile-deep-nesting.eml"]; len(o) != 1 || !strings.Contains(o[0]["error"].(string), "nested too deep") {
		t.Errorf("deep nesting gave %v, want one object with the error", o)
	}
	if o := perFile["mailbox_unknown-postfix.eml"]; len(o) != 1 || o[0]["suppress"] != true || o[0]["smtp_code"].(float64) != 550 {
		t.Errorf("postfix fixture gave %v", o)
	}
}

func TestParseHumanExplains(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "classify", "testdata", "relay_denied-seed-autoreply.eml"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runParseCmd(t, string(raw), "-")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"relay_denied", "whose fault: sender", "what to do:", "suppress:    no", "automatic reply"} {
		if !strings.Contains(out, want) {
			t.Errorf("bouncer parse - output lacks %q:\n%s", want, out)
		}
	}
}

func TestParseUnreadableInput(t *testing.T) {
	good := filepath.Join("..", "..", "classify", "testdata", "mailbox_unknown-qmail.eml")
	out, stderr, err := runParseCmd(t, "", "--json", filepath.Join(t.TempDir(), "missing.eml"), good)
	if err == nil {
		t.Fatal("bouncer parse of a missing file succeeded")
	}
	if errors.Is(err, errUsage) {
		t.Errorf("a missing file is not a usage error: %v", err)
	}
	if !strings.Contains(stderr, "missing.eml") {
		t.Errorf("stderr %q does not name the missing file", stderr)
	}
	if objs := decodeNDJSON(t, out); len(objs) != 1 || objs[0]["recipient"] != "bo@example.org" {
		t.Errorf("the readable file was not reported: %s", out)
	}
	if _, _, err := runParseCmd(t, ""); !errors.Is(err, errUsage) {
		t.Errorf("bouncer parse with no argument: %v, want a usage error", err)
	}
}
