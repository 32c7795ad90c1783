//go:build race

package main

// raceEnabled: the test binary runs under the race detector, and so do the
// bouncer binaries it builds.
const raceEnabled = true
