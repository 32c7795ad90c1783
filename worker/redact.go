package worker

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
)

// Redacted is what RedactURL and Scrub put in place of a secret.
const Redacted = "xxxxx"

// keywordPassword matches the password of a libpq keyword/value connection
// string (password=secret or password='se cret'), the form pgx accepts
// besides a URL.
var keywordPassword = regexp.MustCompile(`(?i)\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)`)

// userinfoPassword matches the password of a URL that url.Parse refuses
// (a bad port, say), whose error would otherwise quote it whole.
var userinfoPassword = regexp.MustCompile(`(://[^:/@\s]*:)([^@\s]*)@`)

// RedactURL returns s, a URL (IMAP, Postgres, NATS) or a libpq keyword
// connection string, without its password: the one form of a connection
// setting that may reach an error or a log line.
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Redacted()
	}
	s = userinfoPassword.ReplaceAllString(s, "${1}"+Redacted+"@")
	return keywordPassword.ReplaceAllString(s, "password="+Redacted)
}

// Secrets returns the passwords and tokens held by the connection settings
// given (URLs, keyword strings, comma-separated lists of URLs, or bare
// secrets when bare is set), for Scrub. A NATS URL's user without a
// password is a token (nats://TOKEN@HOST), so it counts as a secret too.
func Secrets(settings []string, bare ...string) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 3 { // shorter would blank ordinary words
			out = append(out, s)
		}
	}
	for _, v := range bare {
		add(v)
	}
	for _, setting := range settings {
		for _, s := range strings.Split(setting, ",") {
			s = strings.TrimSpace(s)
			if u, err := url.Parse(s); err == nil && u.User != nil {
				if p, ok := u.User.Password(); ok {
					add(p)
				} else if strings.HasPrefix(u.Scheme, "nats") || strings.HasPrefix(u.Scheme, "tls") {
					add(u.User.Username())
				}
			}
			for _, m := range keywordPassword.FindAllStringSubmatch(s, -1) {
				add(strings.Trim(m[1], "'"))
			}
			for _, m := range userinfoPassword.FindAllStringSubmatch(s, -1) {
				add(m[2])
				if p, err := url.PathUnescape(m[2]); err == nil {
					add(p)
				}
			}
		}
	}
	return out
}

// Scrub returns s with every secret replaced by Redacted, whether it
// appears as given, URL-escaped or JSON-escaped (a log line). It is the
// last line of defence behind RedactURL: an error from a library that
// quotes a connection string whole cannot leak it.
func Scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		forms := []string{sec, url.QueryEscape(sec), url.PathEscape(sec), url.UserPassword("", sec).String()[1:]}
		if b, err := json.Marshal(sec); err == nil {
			forms = append(forms, string(b[1:len(b)-1]))
		}
		for _, f := range forms {
			if f != "" {
				s = strings.ReplaceAll(s, f, Redacted)
			}
		}
	}
	return s
}
