package main

import (
	"io"
	"os"
	"strings"
)

// secretFileVars are the variables naming a file whose whole content
// (trimmed) is a secret.
var secretFileVars = []string{"BOUNCER_IMAP_PASSWORD_FILE", "BOUNCER_IMAP_TOKEN_FILE", "BOUNCER_HTTP_TOKEN_FILE", "NATS_NKEY_FILE",
	"BOUNCER_ERASURE_KEY_FILE", "BOUNCER_WEBHOOK_POSTMARK_PASSWORD_FILE", "BOUNCER_WEBHOOK_POSTMARK_TOKEN_FILE", "BOUNCER_WEBHOOK_MAILGUN_KEY_FILE"}

// fileSecrets returns the secrets a command may read from files, for the
// scrub list beside those of the environment: the content of every
// *_FILE variable above and of the config file's password_file and
// token_file, the secrets of BOUNCER_VERP_KEYS and BOUNCER_VERP_KEYS_FILE
// (the part after each "id:"), the JWT and seed of NATS_CREDS_FILE and the
// private key of NATS_TLS_KEY.
// A file that cannot be read adds nothing: the command reports it.
func fileSecrets(getenv func(string) string, flagFiles, configFiles []string) []string {
	var out []string
	for _, v := range secretFileVars {
		out = append(out, readSecret(getenv(v)))
	}
	for _, f := range append(flagFiles, configFiles...) {
		out = append(out, readSecret(f))
	}
	for _, keys := range []string{getenv("BOUNCER_VERP_KEYS"), readSecret(getenv("BOUNCER_VERP_KEYS_FILE"))} {
		for _, k := range strings.FieldsFunc(keys, func(r rune) bool { return r == ',' || r == '\n' }) {
			if _, sec, ok := strings.Cut(k, ":"); ok && !strings.HasPrefix(strings.TrimSpace(k), "#") {
				out = append(out, strings.TrimSpace(sec))
			}
		}
	}
	// A creds file (nsc's format) is a JWT and an NKey seed between
	// BEGIN/END lines, with prose around them: the secrets are the lines
	// that are one long word and not a line of dashes or stars.
	// So is a PEM private key (NATS_TLS_KEY).
	pem := readSecret(getenv("NATS_CREDS_FILE")) + "\n" + readSecret(getenv("NATS_TLS_KEY"))
	for line := range strings.SplitSeq(pem, "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.ContainsAny(line, " \t") && strings.Trim(line, "-*") == line {
			out = append(out, line)
		}
	}
	return out
}

// readSecret returns the trimmed content of the file at path (at most 64
// KiB of it), or "".
func readSecret(path string) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
