package classify

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/jhillyerd/enmime/v2"
)

// Benchmarks over the whole dev corpus. Each op is one message; they report
// msgs/s, MB/s (b.SetBytes), and B/msg. BenchmarkEnmimeBare is the
// reference: enmime alone, keeping raw content and skipping text
// conversion and charset detection, on the same messages in the same run.
//
//	go test ./classify -run '^$' -bench . -benchmem -cpu 1,2

func loadCorpus(b *testing.B) [][]byte {
	dir := corpusDir(b)
	var files []string
	for _, pat := range []string{"*.eml", "*/*.eml"} {
		f, _ := filepath.Glob(filepath.Join(dir, pat))
		files = append(files, f...)
	}
	msgs := make([][]byte, 0, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, raw)
	}
	if len(msgs) == 0 {
		b.Fatal("empty corpus")
	}
	return msgs
}

func avgSize(msgs [][]byte) int64 {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	return int64(n / len(msgs))
}

func report(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkClassify(b *testing.B) {
	msgs := loadCorpus(b)
	c := New(Options{})
	b.SetBytes(avgSize(msgs))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := c.Classify(msgs[i%len(msgs)])
		if err == nil {
			_ = rep.Records()
		}
	}
	report(b)
}

func BenchmarkClassifyParallel(b *testing.B) {
	msgs := loadCorpus(b)
	c := New(Options{})
	b.SetBytes(avgSize(msgs))
	b.ReportAllocs()
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := msgs[int(next.Add(1))%len(msgs)]
			if rep, err := c.Classify(m); err == nil {
				_ = rep.Records()
			}
		}
	})
	report(b)
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "procs")
}

func BenchmarkEnmimeBare(b *testing.B) {
	msgs := loadCorpus(b)
	p := enmime.NewParser(enmime.RawContent(true), enmime.DisableTextConversion(true), enmime.DisableCharacterDetection(true))
	b.SetBytes(avgSize(msgs))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = p.ReadParts(bytes.NewReader(msgs[i%len(msgs)]))
	}
	report(b)
}
