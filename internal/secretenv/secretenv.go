// Package secretenv reads a secret the way every bouncer setting takes
// one: from a variable NAME, or from the file its NAME_FILE names (as
// Docker and Kubernetes mount secrets), without the white space around it.
package secretenv

import (
	"fmt"
	"os"
	"strings"
)

// Read returns the secret that name or name_FILE gives, "" when neither
// is set. Setting both is an error (one of them would be ignored), and so
// is a file that cannot be read or holds nothing. what names the file in
// errors ("token file").
func Read(getenv func(string) string, name, what string) (string, error) {
	file, val := getenv(name+"_FILE"), strings.TrimSpace(getenv(name))
	switch {
	case file != "" && val != "":
		return "", fmt.Errorf("both %s and %s_FILE are set; set one", name, name)
	case file != "":
		return File(file, what)
	}
	return val, nil
}

// File returns the secret in the file at path: its content without the
// white space around it (a final newline), which must not be empty.
func File(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s is empty", what, path)
	}
	return s, nil
}
