package verp_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/worker/verp"
)

func TestParseKeys(t *testing.T) {
	short := "c2hvcnQta2V5LTE1Ynl0" // 15 bytes
	for _, tc := range []struct {
		in      string
		signer  string
		ids     string
		wantErr string
	}{
		{"k1:" + secret1, "k1", "k1", ""},
		{" k2 : " + secret2 + " , k1:" + secret1 + ",", "k2", "k2,k1", ""},
		{"url:" + strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(secret1), "="), "url", "url", ""},
		{"2026.q4_a-b:" + secret1, "2026.q4_a-b", "2026.q4_a-b", ""},
		{"", "", "", "no VERP keys"},
		{" , ", "", "", "no VERP keys"},
		{"k1:" + short, "", "", `entry 1: key "k1": the secret is 15 bytes, want at least 16`},
		{"k1:" + secret1 + ",k2:not base64!", "", "", `entry 2: key "k2": the secret is not base64`},
		{secret1, "", "", "entry 1: not ID:BASE64SECRET"},
		{"k1:", "", "", "entry 1: not ID:BASE64SECRET"},
		{":" + secret1, "", "", "entry 1: not ID:BASE64SECRET"},
		{"k1:" + secret1 + ",k1:" + secret2, "", "", `entry 2: key id "k1" is listed twice`},
		{"a key:" + secret1, "", "", "entry 1: the key id is not 1-16 letters"},
		// A secret pasted before the colon is refused and not echoed.
		{"c2VjcmV0LW51bWJlci1vbmUtMzItYnl0ZXMtbG9uZyE:k1", "", "", "entry 1: the key id is not"},
	} {
		ks, err := verp.ParseKeys(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseKeys(%q) = %v, %v; want an error containing %q", tc.in, ks, err, tc.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), secret1) || strings.Contains(err.Error(), "c2VjcmV0LW51") || strings.Contains(err.Error(), short)) {
				t.Errorf("ParseKeys(%q) = %v: the error shows a secret", tc.in, err)
			}
			if tc.wantErr != "no VERP keys" && !errors.Is(err, verp.ErrConfig) {
				t.Errorf("ParseKeys(%q) = %v, want ErrConfig", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseKeys(%q) = %v", tc.in, err)
			continue
		}
		if ks.Signer() != tc.signer || strings.Join(ks.IDs(), ",") != tc.ids {
			t.Errorf("ParseKeys(%q) = signer %q ids %v, want %q %q", tc.in, ks.Signer(), ks.IDs(), tc.signer, tc.ids)
		}
	}
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "keys")
	if err := os.WriteFile(good, []byte("# rotated 2026-12-01\nk2:"+secret2+"\n\n  k1:"+secret1+"  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("k2:"+secret2+"\nk1:c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		env       map[string]string
		ids       string
		is        error
		errSubstr string
	}{
		{"inline", map[string]string{verp.EnvKeys: "k1:" + secret1}, "k1", nil, ""},
		{"file", map[string]string{verp.EnvKeysFile: good}, "k2,k1", nil, ""},
		{"none", nil, "", verp.ErrNoKeys, "BOUNCER_VERP_KEYS"},
		{"both", map[string]string{verp.EnvKeys: "k1:" + secret1, verp.EnvKeysFile: good}, "", verp.ErrConfig, "not both"},
		{"bad file", map[string]string{verp.EnvKeysFile: bad}, "", verp.ErrConfig, `line 2: key "k1": the secret is 5 bytes`},
		{"missing file", map[string]string{verp.EnvKeysFile: filepath.Join(dir, "nope")}, "", os.ErrNotExist, "BOUNCER_VERP_KEYS_FILE"},
	} {
		ks, err := verp.LoadKeys(func(k string) string { return tc.env[k] })
		if tc.is == nil {
			if err != nil || strings.Join(ks.IDs(), ",") != tc.ids {
				t.Errorf("%s: LoadKeys = %v, %v; want keys %s", tc.name, ks, err, tc.ids)
			}
			continue
		}
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.errSubstr) {
			t.Errorf("%s: LoadKeys = %v, want %v containing %q", tc.name, err, tc.is, tc.errSubstr)
		}
		if tc.is == os.ErrNotExist && errors.Is(err, verp.ErrConfig) {
			t.Errorf("%s: LoadKeys = %v: an unreadable file is not a configuration error", tc.name, err)
		}
	}
	c, err := verp.LoadCodec(func(k string) string {
		return map[string]string{verp.EnvKeys: "k1:" + secret1, verp.EnvLocal: "bounce", verp.EnvSep: "-", verp.EnvDomain: "b.example"}[k]
	})
	if err != nil || c.Local != "bounce" || c.Sep != "-" || c.Domain != "b.example" {
		t.Errorf("LoadCodec = %+v, %v", c, err)
	}
	if _, err := verp.LoadCodec(func(k string) string {
		return map[string]string{verp.EnvKeys: "k1:" + secret1, verp.EnvSep: "x"}[k]
	}); !errors.Is(err, verp.ErrConfig) {
		t.Errorf("LoadCodec with separator x = %v, want ErrConfig", err)
	}
}
