package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestWriteVersion(t *testing.T) {
	for _, tc := range []struct {
		info *debug.BuildInfo
		want string
	}{
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-04T15:00:00Z"}, {Key: "vcs.modified", Value: "false"}}},
			"bouncer v1.2.3 (commit 0123abcd, 2026-12-04T15:00:00Z) go1.26.8\n"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}},
			"bouncer (devel) (commit 0123abcd+modified) go1.26.8\n"},
		{&debug.BuildInfo{GoVersion: "go1.26.8"}, "bouncer (devel) (commit unknown) go1.26.8\n"},
	} {
		var b bytes.Buffer
		writeVersion(&b, tc.info)
		if b.String() != tc.want {
			t.Errorf("writeVersion(%+v) = %q, want %q", tc.info.Main, b.String(), tc.want)
		}
	}
}

// A built binary prints what the toolchain recorded in it; built in a git
// checkout (-buildvcs=true: GOFLAGS may turn stamping off), that includes
// the commit checked out.
func TestVersionOfBuiltBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bouncer")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("bouncer version: %v", err)
	}
	var want bytes.Buffer
	writeVersion(&want, info)
	if string(out) != want.String() || !strings.Contains(string(out), runtime.Version()) {
		t.Errorf("bouncer version = %q, want %q", out, want.String())
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Logf("not checked against the commit: git rev-parse HEAD: %v", err)
		return
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && s.Value != strings.TrimSpace(string(head)) {
			t.Errorf("vcs.revision = %s, want HEAD %s", s.Value, head)
		}
	}
}

func TestVersionUsage(t *testing.T) {
	e := &env{stdout: io.Discard, stderr: io.Discard, getenv: os.Getenv}
	if err := run(context.Background(), e, []string{"version", "extra"}); !errors.Is(err, errUsage) {
		t.Errorf("bouncer version extra = %v, want a usage error", err)
	}
}
