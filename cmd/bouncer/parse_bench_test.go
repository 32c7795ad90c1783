package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkParseCorpus runs `bouncer parse --json` over the whole dev
// corpus (../shared/corpus/dev, the files of its expected.json) as one
// command, in process: reading, classifying on every core, NDJSON out.
// Compare with classify's BenchmarkEnmimeBare in the same run:
//
//	go test ./cmd/bouncer -run '^$' -bench ParseCorpus -cpu 1,2
//	go test ./classify -run '^$' -bench EnmimeBare -cpu 1
func BenchmarkParseCorpus(b *testing.B) {
	dir := os.Getenv("BOUNCER_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus", "dev")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		b.Skipf("corpus not found at %s: %v", dir, err)
	}
	var doc struct {
		Files map[string]json.RawMessage `json:"files"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		b.Fatal(err)
	}
	args := []string{"parse", "--json", "--workers", "0"}
	size := int64(0)
	for name := range doc.Files {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			b.Fatal(err)
		}
		size += st.Size()
		args = append(args, p)
	}
	args[3] = strconv.Itoa(runtime.GOMAXPROCS(0))
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := run(b.Context(), e, args); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(doc.Files))/b.Elapsed().Seconds(), "msgs/s")
}
