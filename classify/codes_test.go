package classify

import (
	"testing"
	"time"
)

func TestParseDate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"Mon,  2 Nov 2026 09:00:01 +0000 (UTC)", "2026-11-02T09:00:01Z"},
		{"Thu, 29 Apr 2010 23:34:45 +0900 (JST)", "2010-04-29T23:34:45+09:00"},
		{"29 Apr 99 23:34 EST", "1999-04-29T23:34:00-05:00"},
		{"Tue, 24 May 2016 04:35:08 -0700", "2016-05-24T04:35:08-07:00"},
	} {
		got, ok := parseDate(tc.in)
		if !ok || got.Format(time.RFC3339) != tc.want {
			t.Errorf("parseDate(%q) = %v, %v; want %s", tc.in, got.Format(time.RFC3339), ok, tc.want)
		}
	}
	if _, ok := parseDate("yesterday"); ok {
		t.Error(`parseDate("yesterday") succeeded`)
	}
}

func TestFindCodes(t *testing.T) {
	for _, tc := range []struct {
		in     string
		status string
		code   int
	}{
		{"553 5.7.1 Not an open relay", "5.7.1", 553},
		{"553-5.1.1 The email account does not exist", "5.1.1", 553},
		{"553 sorry, no mailbox here by that name (#5.1.1)", "5.1.1", 553},
		{"Diagnostic: smtp; 553 information. (#5.7.1)", "5.7.1", 553},
		{"Command failed. reason -301 negative response from SMTP server ( RSP^553 Relaying blocked", "", 553},
		{"host 192.0.2.5 said: 550 5.1.1 user unknown", "5.1.1", 550},
		{"connect to 192.0.2.1:25: Connection timed out", "", 0},
		{"554 <a@b.example>... 550 Host unknown", "", 550},
		{"5.1.0 - Unknown address error 550-'5.2.2 <x@y.example>... Mailbox Full'", "5.2.2", 550},
		{"version 5.1.1.2 is not a status", "", 0},
	} {
		if got := quotedStatus(tc.in); got != tc.status {
			t.Errorf("quotedStatus(%q) = %q, want %q", tc.in, got, tc.status)
		}
		if got := findReplyCode(tc.in); got != tc.code {
			t.Errorf("findReplyCode(%q) = %d, want %d", tc.in, got, tc.code)
		}
	}
}
