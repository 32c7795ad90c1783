package worker

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://bob:S3cr3t@db.example:5432/bouncer?sslmode=require", "postgres://bob:xxxxx@db.example:5432/bouncer?sslmode=require"},
		{"nats://alice:S3cr3t@127.0.0.1:4222", "nats://alice:xxxxx@127.0.0.1:4222"},
		{"imaps://bounces:S3cr3t@mail.example/INBOX", "imaps://bounces:xxxxx@mail.example/INBOX"},
		{"host=db port=5432 password=S3cr3t user=bob", "host=db port=5432 password=xxxxx user=bob"},
		{"host=db password='S3 cr3t' user=bob", "host=db password=xxxxx user=bob"},
		{"postgres://bob@db/bouncer", "postgres://bob@db/bouncer"},
		{"postgres://bob:S3cr3t@db:port/bouncer", "postgres://bob:xxxxx@db:port/bouncer"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSecretsScrub(t *testing.T) {
	secrets := Secrets([]string{
		"postgres://bob:pg%2Fpass@db/x",
		"nats://natstoken@127.0.0.1:4222",
		"imap://u:imap-pw@a/INBOX,imaps://v:second-pw@b/INBOX",
		"host=db password='kw pass'",
		"nats://u@127.0.0.1", // a token too short to scrub without blanking words
		"postgres://bob@db/x",
		"nats://bob:unparsed-pw@127.0.0.1:port",
	}, "bare-pw", "")
	want := []string{"bare-pw", "pg/pass", "natstoken", "imap-pw", "second-pw", "kw pass", "unparsed-pw"}
	for _, w := range want {
		found := false
		for _, s := range secrets {
			found = found || s == w
		}
		if !found {
			t.Errorf("Secrets(...) = %q, missing %q", secrets, w)
		}
	}
	for _, s := range secrets {
		if s == "bob" {
			t.Errorf("Secrets(...) = %q, holds the Postgres user name", secrets)
		}
	}
	line := `{"err":"dial postgres://bob:pg%2Fpass@db/x: \"kw pass\" pg/pass natstoken imap-pw"}`
	got := Scrub(line, secrets)
	for _, w := range want {
		if strings.Contains(got, w) || strings.Contains(got, "pg%2Fpass") {
			t.Errorf("Scrub(%q) = %q, still holds %q", line, got, w)
		}
	}
}
