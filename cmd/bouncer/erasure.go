package main

import (
	"fmt"
	"strings"

	"github.com/bouncer-mail/bouncer/internal/secretenv"
	"github.com/bouncer-mail/bouncer/store"
)

// erasureKey returns the key of erased addresses' hashes: the content of
// the file BOUNCER_ERASURE_KEY_FILE names, else BOUNCER_ERASURE_KEY;
// nil when neither is set (erasure is then refused, and checks do not
// consult erased addresses). Surrounding white space is not part of it.
func erasureKey(getenv func(string) string) ([]byte, error) {
	val, err := secretenv.Read(getenv, "BOUNCER_ERASURE_KEY", "erasure key file")
	if err != nil || val == "" {
		return nil, err
	}
	if len(val) < store.MinErasureKeyLength {
		return nil, fmt.Errorf("the erasure key is %d bytes, want at least %d (e.g. openssl rand -base64 32)", len(val), store.MinErasureKeyLength)
	}
	return []byte(val), nil
}

// erasureSecret is the erasure key as the secrets scrub list wants it:
// the variable's value or the file's content ("" for none).
func erasureSecret(getenv func(string) string) string {
	if k, err := erasureKey(getenv); err == nil {
		return string(k)
	}
	return strings.TrimSpace(getenv("BOUNCER_ERASURE_KEY"))
}
