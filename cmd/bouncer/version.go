package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

// runVersion prints the module version, the VCS commit it was built from
// and the Go version, as the Go toolchain recorded them in the binary:
// `go install …@v1.2.3` gives the module version, a build in a checkout
// gives "(devel)" with the commit, and "+modified" when the tree was dirty.
func runVersion(_ context.Context, e *env, args []string) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(e.stdout, "usage: bouncer version")
		fmt.Fprintln(e.stdout, "Prints the module version, the VCS commit (+modified for a dirty tree) and the Go version of this binary.")
		return nil
	}
	if len(args) > 0 {
		return fmt.Errorf("%w: version takes no arguments, got %q", errUsage, args[0])
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Errorf("this binary carries no build information (built without module support)")
	}
	writeVersion(e.stdout, info)
	return nil
}

// writeVersion prints info as one line: "bouncer VERSION (commit REV[+modified], TIME) GOVERSION".
func writeVersion(w io.Writer, info *debug.BuildInfo) {
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	commit := "commit unknown"
	if rev != "" {
		commit = "commit " + rev
		if modified {
			commit += "+modified"
		}
		if at != "" {
			commit += ", " + at
		}
	}
	fmt.Fprintf(w, "bouncer %s (%s) %s\n", version, commit, info.GoVersion)
}
