package verp

import (
	"fmt"
	"os"
)

// The environment variables LoadKeys and LoadCodec read: the keys inline or
// in a file, and the return path's domain, local part and separator.
const (
	EnvKeys     = "BOUNCER_VERP_KEYS"      // id:base64secret,... (first signs)
	EnvKeysFile = "BOUNCER_VERP_KEYS_FILE" // one id:base64secret per line
	EnvDomain   = "BOUNCER_VERP_DOMAIN"    // the return path's domain
	EnvLocal    = "BOUNCER_VERP_LOCAL"     // default "bounces"
	EnvSep      = "BOUNCER_VERP_SEP"       // default "+"
)

// LoadKeys reads the keys from BOUNCER_VERP_KEYS or, for secrets kept out of
// the environment (docker secrets), from the file BOUNCER_VERP_KEYS_FILE
// names. It is the package's only I/O. Neither set: ErrNoKeys. Both set: an
// error, as nobody could tell which one counts. Errors in the keys match
// ErrConfig; a file that cannot be read does not.
func LoadKeys(getenv func(string) string) (*Keys, error) {
	inline, file := getenv(EnvKeys), getenv(EnvKeysFile)
	switch {
	case inline != "" && file != "":
		return nil, fmt.Errorf("%w: set %s or %s, not both", ErrConfig, EnvKeys, EnvKeysFile)
	case inline != "":
		ks, err := ParseKeys(inline)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKeys, err)
		}
		return ks, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKeysFile, err)
		}
		ks, err := ParseKeyLines(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", EnvKeysFile, file, err)
		}
		return ks, nil
	}
	return nil, ErrNoKeys
}

// LoadCodec is LoadKeys plus the return path's form from BOUNCER_VERP_DOMAIN,
// BOUNCER_VERP_LOCAL and BOUNCER_VERP_SEP, validated. A missing domain is not
// an error here: Decode accepts any domain, and Encode asks for one.
func LoadCodec(getenv func(string) string) (Codec, error) {
	ks, err := LoadKeys(getenv)
	if err != nil {
		return Codec{}, err
	}
	c := Codec{Keys: ks, Domain: getenv(EnvDomain), Local: getenv(EnvLocal), Sep: getenv(EnvSep)}
	if err := c.Validate(); err != nil {
		return Codec{}, err
	}
	return c, nil
}
