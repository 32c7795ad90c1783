package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/chaos"
)

// TestChaosShort is `bouncer chaos` in short: 300 messages, 3 kills, each
// server restarted once and a UIDVALIDITY change, worked by two `bouncer
// run` processes of the real binary. Nothing may be lost or duplicated,
// and the report must show every message in the folders, the database and
// the stream. Outside CI it is skipped when Dovecot or PostgreSQL's
// initdb is not installed; under CI that fails.
func TestChaosShort(t *testing.T) {
	for _, prog := range []struct{ name, path, install string }{
		{"dovecot", "/usr/sbin/dovecot", "apt-get install dovecot-imapd"},
		{"initdb", "/usr/lib/postgresql/15/bin/initdb", "apt-get install postgresql"},
	} {
		if _, err := exec.LookPath(prog.name); err == nil {
			continue
		}
		if _, err := os.Stat(prog.path); err == nil {
			continue
		}
		if matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + prog.name); len(matches) > 0 {
			continue
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing under CI (%s)", prog.name, prog.install)
		}
		t.Skipf("%s is not installed (%s, or run bash .ci/run): the chaos test needs it", prog.name, prog.install)
	}
	bin := buildBouncer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var out bytes.Buffer
	seed := uint64(time.Now().UnixNano() % 1_000_000)
	err := chaos.Run(ctx, chaos.Options{Messages: 300, Kills: 3, Seed: seed, Bin: bin}, &out)
	t.Logf("bouncer chaos --messages 300 --kills 3 --seed %d:\n%s", seed, out.String())
	if err != nil {
		t.Fatalf("chaos.Run = %v, want nil", err)
	}
	report := out.String()
	faults := regexp.MustCompile(`(?m)^ +[0-9.]+s +at \d+/300 stored: `).FindAllString(report, -1)
	if len(faults) != 3+4 {
		t.Errorf("the report lists %d faults, want 7 (3 kills, 3 restarts, a UIDVALIDITY change)", len(faults))
	}
	for _, want := range []string{
		"messages stored (source_messages)       300      300",
		"stream against the outbox:         missing 0, duplicate 0, extra 0; unpublished 0",
		"OK: 0 lost, 0 duplicated, 0 extra, 0 different",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}
