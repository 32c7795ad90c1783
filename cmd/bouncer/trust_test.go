package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/explain"
	"github.com/bouncer-mail/bouncer/worker/verp"
)

// TestParseVerified: with BOUNCER_VERP_KEYS set, bouncer parse says
// whether each bounce is verified by its return path, and an unverified
// one does not suppress; without keys it shows only the return paths.
func TestParseVerified(t *testing.T) {
	keys := "k1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", 32)))
	ks, err := verp.ParseKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := verp.Codec{Keys: ks, Domain: "lists.example.com"}.Encode(verp.Fields{Recipient: "ana@mail.example.net"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../classify/testdata/mailbox_unknown-postfix.eml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	real := filepath.Join(dir, "real.eml")
	os.WriteFile(real, []byte(strings.Replace(string(src), "To: bounces+mu1@lists.example.com", "To: "+rp, 1)), 0o600)
	forged := filepath.Join(dir, "forged.eml")
	os.WriteFile(forged, src, 0o600)

	parse := func(vars map[string]string, args ...string) []classify.Record {
		var stdout, stderr bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}
		if err := run(context.Background(), e, append([]string{"parse"}, args...)); err != nil {
			t.Fatalf("parse %v: %v", args, err)
		}
		var recs []classify.Record
		dec := json.NewDecoder(&stdout)
		for dec.More() {
			var r classify.Record
			if err := dec.Decode(&r); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		return recs
	}
	withKeys := map[string]string{"BOUNCER_VERP_KEYS": keys}
	recs := parse(withKeys, "--json", real, forged)
	if len(recs) != 2 {
		t.Fatalf("parse --json = %d records, want 2", len(recs))
	}
	if r := recs[0]; r.Verified == nil || !*r.Verified || r.VerifiedBy != "verp:k1" || !r.Suppress || r.ReturnPaths[0] != rp {
		t.Errorf("real bounce: verified %v by %q, suppress %v, return paths %q; want true verp:k1, true, [%s]", r.Verified, r.VerifiedBy, r.Suppress, r.ReturnPaths, rp)
	}
	if r := recs[1]; r.Verified == nil || *r.Verified || r.VerifiedBy != "unverified:bad-tag" || r.Suppress {
		t.Errorf("forged bounce: verified %v by %q, suppress %v; want false unverified:bad-tag (bounces+mu1 is no token), false", r.Verified, r.VerifiedBy, r.Suppress)
	}
	if r := parse(nil, "--json", forged)[0]; r.Verified != nil || !r.Suppress || len(r.ReturnPaths) == 0 {
		t.Errorf("without keys: verified %v, suppress %v, return paths %q; want absent, true, some", r.Verified, r.Suppress, r.ReturnPaths)
	}
	var human bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &human, stderr: &human, getenv: func(k string) string { return withKeys[k] }}
	if err := run(context.Background(), e, []string{"parse", forged}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(human.String(), "verified:    no (unverified:bad-tag): not proven to answer mail we sent") {
		t.Errorf("parse (human) printed %q, want a verified line", human.String())
	}
}

// TestExplainVerified: the explain page's API, given bouncer's records
// with VERP keys, says whether a bounce is verified.
func TestExplainVerified(t *testing.T) {
	ks, err := verp.ParseKeys("k1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", 32))))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../classify/testdata/mailbox_unknown-postfix.eml")
	if err != nil {
		t.Fatal(err)
	}
	c := classify.New(classify.Options{})
	h := explain.New(c, nil, explain.Options{Records: recordsFunc(c, &verp.Codec{Keys: ks})})
	req := httptest.NewRequest("POST", "http://127.0.0.1/api/v1/parse", bytes.NewReader(src))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var r classify.Record
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("POST /api/v1/parse = %d %q: %v", rec.Code, rec.Body, err)
	}
	if r.Verified == nil || *r.Verified || r.VerifiedBy != "unverified:bad-tag" || r.Suppress {
		t.Errorf("API record: verified %v by %q, suppress %v; want false, unverified:bad-tag, false", r.Verified, r.VerifiedBy, r.Suppress)
	}
}
