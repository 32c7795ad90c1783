package store

import (
	"strings"
	"testing"
)

func TestTransportWarning(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // in the warning; "" for none
	}{
		{"postgres://u:pw@db.example:5432/x?sslmode=disable", "sslmode=disable to db.example"},
		{"postgres://u:pw@10.0.0.7/x", "plaintext fallback to 10.0.0.7"},
		{"postgres://u:pw@db.example/x?sslmode=prefer", "plaintext fallback"},
		{"postgres://u:pw@db.example/x?sslmode=allow", "plaintext fallback"},
		{"host=db.example user=u sslmode=disable", "sslmode=disable to db.example"},
		{"postgres://u:pw@db.example/x?sslmode=require", ""},
		{"postgres://u:pw@db.example/x?sslmode=verify-full", ""},
		{"postgres://u:pw@127.0.0.1/x?sslmode=disable", ""},
		{"postgres://u:pw@localhost/x?sslmode=disable", ""},
		{"postgres://u:pw@[::1]:5432/x?sslmode=disable", ""},
		{"host=/var/run/postgresql user=u sslmode=disable", ""},
		{DefaultDatabaseURL, ""},
	} {
		got := TransportWarning(tc.url)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("TransportWarning(%q) = %q, want %q", tc.url, got, tc.want)
		}
		if strings.Contains(got, "pw") {
			t.Errorf("TransportWarning(%q) = %q, holds the password", tc.url, got)
		}
	}
}
