package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/bouncer-mail/bouncer/store"
)

// erasureKey returns the key of erased addresses' hashes: the content of
// the file BOUNCER_ERASURE_KEY_FILE names, else BOUNCER_ERASURE_KEY;
// nil when neither is set (erasure is then refused, and checks do not
// consult erased addresses). Surrounding white space is not part of it.
func erasureKey(getenv func(string) string) ([]byte, error) {
	file, val := getenv("BOUNCER_ERASURE_KEY_FILE"), strings.TrimSpace(getenv("BOUNCER_ERASURE_KEY"))
	switch {
	case file != "" && val != "":
		return nil, errors.New("both BOUNCER_ERASURE_KEY and BOUNCER_ERASURE_KEY_FILE are set; set one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read erasure key file: %w", err)
		}
		val = strings.TrimSpace(string(b))
		if val == "" {
			return nil, fmt.Errorf("erasure key file %s is empty", file)
		}
	case val == "":
		return nil, nil
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
