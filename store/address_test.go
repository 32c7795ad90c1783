package store

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestNormalizeAddress(t *testing.T) {
	tests := []struct{ in, addr, domain string }{
		{"jane@example.com", "jane@example.com", "example.com"},
		{"  Jane.Doe@Example.COM \r\n", "jane.doe@example.com", "example.com"},
		{"<jane@example.com>", "jane@example.com", "example.com"},
		{"rfc822; Jane@Example.com", "jane@example.com", "example.com"},
		{"jane@example.com.", "jane@example.com", "example.com"},
		{"Jörg@Bücher.DE", "jörg@xn--bcher-kva.de", "xn--bcher-kva.de"},
		{"user@xn--bcher-kva.de", "user@xn--bcher-kva.de", "xn--bcher-kva.de"},
		{"weird\"@\"x@under_score.example", "weird\"@\"x@under_score.example", "under_score.example"},
		{"no-at-sign", "no-at-sign", ""},
		{"nul\x00@exa\xffmple.com", "nul\uFFFD@exa\uFFFDmple.com", "exa\uFFFDmple.com"},
		{"jo\x00hn@example.com", "jo\uFFFDhn@example.com", "example.com"},
	}
	for _, tt := range tests {
		addr, domain := NormalizeAddress(tt.in)
		if addr != tt.addr || domain != tt.domain {
			t.Errorf("NormalizeAddress(%q) = %q, %q; want %q, %q", tt.in, addr, domain, tt.addr, tt.domain)
		}
		// An address with a NUL or a byte that is not UTF-8 in it is
		// never valid: its bytes must not be dropped into a valid one.
		if bad := strings.ContainsAny(tt.in, "\x00") || !utf8.ValidString(tt.in); bad && ValidAddress(addr, domain) {
			t.Errorf("ValidAddress(NormalizeAddress(%q)) = true, want false", tt.in)
		}
	}
}

func TestSoftThresholdMet(t *testing.T) {
	d := func(n int) time.Time { return time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC).AddDate(0, 0, n) }
	days := func(ns ...int) []time.Time {
		var out []time.Time
		for _, n := range ns {
			out = append(out, d(n))
		}
		return out
	}
	tests := []struct {
		days []time.Time
		at   int
		want bool
	}{
		{days(0, 1, 2), 2, true},
		{days(0, 1, 2), 0, true}, // saved out of order: the earliest arrives last
		{days(0, 1), 1, false},
		{days(0, 0, 0), 0, false}, // one day, three bounces
		{days(0, 10, 14), 14, true},
		{days(0, 10, 15), 15, false}, // 16 days apart
		{days(0, 10, 15, 20), 20, true},
		{days(0, 30, 31, 60), 60, false},
	}
	for _, tt := range tests {
		if got := softThresholdMet(tt.days, d(tt.at), 15, 3); got != tt.want {
			t.Errorf("softThresholdMet(%v, day %d, 15, 3) = %v, want %v", tt.days, tt.at, got, tt.want)
		}
	}
}
