package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/worker"
	"github.com/bouncer-mail/bouncer/worker/verp"
)

func runParse(ctx context.Context, e *env, args []string) error {
	fl := flag.NewFlagSet("parse", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	asJSON := fl.Bool("json", false, "print NDJSON: one object per (file, recipient)")
	workers := fl.Int("workers", runtime.GOMAXPROCS(0), "messages classified at once")
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer parse [--json] [--workers N] FILE|DIR|- ...")
		fmt.Fprintln(e.stderr, "Classifies each message; directories are walked, - reads one message from stdin.")
		fl.PrintDefaults()
	}
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	if fl.NArg() == 0 {
		return fmt.Errorf("%w: parse needs at least one FILE, DIR or -", errUsage)
	}
	if *workers < 1 {
		return fmt.Errorf("%w: parse: --workers %d (want 1 or more)", errUsage, *workers)
	}
	if e.getenv("GOGC") == "" {
		// Classifying is allocation-heavy and its live heap small: a
		// higher GC target trades a few MB for a third more throughput
		// on two cores. GOGC set by the user wins. (The worker's target;
		// parse sets no memory limit: it may be given any number of cores.)
		defer debug.SetGCPercent(debug.SetGCPercent(workerGCPercent))
	}

	paths := make(chan string, 64)
	go walkInputs(fl.Args(), paths)
	var unreadable []string
	c, err := envClassifier(e, "parse")
	if err != nil {
		return err
	}
	codec, err := parseCodec(e, "parse")
	if err != nil {
		return err
	}
	out := &orderedWriter{w: e.stdout, pending: map[int][]byte{}}
	type job struct {
		seq  int
		path string
	}
	jobs := make(chan job, *workers*2)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			var in []byte // reused: a message's output is written before the next is read
			for j := range jobs {
				buf.Reset()
				raw, err := readInput(j.path, e.stdin, in[:0])
				in = raw
				if err != nil {
					mu.Lock()
					unreadable = append(unreadable, err.Error())
					mu.Unlock()
					fmt.Fprintf(e.stderr, "bouncer: parse: %v\n", err)
				} else {
					formatMessage(&buf, c, codec, j.path, raw, *asJSON)
				}
				out.put(j.seq, bytes.Clone(buf.Bytes()))
			}
		}()
	}
	seq := 0
	for p := range paths {
		if ctx.Err() != nil {
			continue // drain the walker
		}
		jobs <- job{seq, p}
		seq++
	}
	close(jobs)
	wg.Wait()
	if err := out.err; err != nil {
		return fmt.Errorf("parse: write output: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(unreadable) > 0 {
		return fmt.Errorf("parse: %d input(s) could not be read", len(unreadable))
	}
	return nil
}

// walkInputs sends each input to paths, then closes it: "-" and files as
// they are, directories walked in name order.
func walkInputs(args []string, paths chan<- string) {
	defer close(paths)
	for _, arg := range args {
		if arg == "-" {
			paths <- arg
			continue
		}
		st, err := os.Stat(arg)
		if err != nil || !st.IsDir() {
			paths <- arg // the read reports the error
			continue
		}
		var files []string
		_ = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				files = append(files, p) // reported when read
				return nil
			}
			if d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		sort.Strings(files)
		for _, f := range files {
			paths <- f
		}
	}
}

// readInput reads a file, or stdin for "-", into buf.
func readInput(path string, stdin io.Reader, buf []byte) ([]byte, error) {
	if path == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
}

// parseCodec is the VERP codec when keys are set (parse and the explain
// page then say whether each bounce is verified), else nil; bad keys are
// a usage error of cmd.
func parseCodec(e *env, cmd string) (*verp.Codec, error) {
	c, err := verp.LoadCodec(e.getenv)
	switch {
	case errors.Is(err, verp.ErrNoKeys):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %v", errUsage, cmd, err)
	}
	return &c, nil
}

// envClassifier is the classifier `parse` and `serve` use: classify's
// defaults with the header lists of BOUNCER_LIST_HEADERS,
// BOUNCER_CAMPAIGN_HEADERS and BOUNCER_SUBSCRIBER_HEADERS, as `bouncer
// run` reads them.
func envClassifier(e *env, cmd string) (*classify.Classifier, error) {
	h, err := worker.HeadersFromEnv(e.getenv)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errUsage, cmd, err)
	}
	return classify.New(h.Options(0)), nil
}

// records classifies raw; with a codec, each record says whether its
// bounce is verified by a signed return path (worker.VerifyVERP).
func records(c *classify.Classifier, codec *verp.Codec, raw []byte) []classify.Record {
	if codec == nil {
		return c.Records(raw)
	}
	rep, err := c.Classify(raw)
	if err != nil {
		return []classify.Record{classify.ErrorRecord(err)}
	}
	trust := worker.VerifyVERP(codec, rep)
	recs := rep.Records()
	k := 0
	for i := range rep.Recipients {
		if !rep.Recipients[i].Failed() || k >= len(recs) || !recs[k].Bounce {
			continue
		}
		v := trust[i].Verified
		recs[k].Verified, recs[k].VerifiedBy = &v, trust[i].By
		k++
	}
	return recs
}

// recordsFunc is records for the explain page.
func recordsFunc(c *classify.Classifier, codec *verp.Codec) func(raw []byte) []classify.Record {
	return func(raw []byte) []classify.Record { return records(c, codec, raw) }
}

// formatMessage classifies raw and writes its records to buf: NDJSON, or
// the human explanation.
func formatMessage(buf *bytes.Buffer, c *classify.Classifier, codec *verp.Codec, path string, raw []byte, asJSON bool) {
	recs := records(c, codec, raw)
	if asJSON {
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		for i := range recs {
			recs[i].File = path
			_ = enc.Encode(&recs[i]) // a Record always encodes
		}
		return
	}
	fmt.Fprintf(buf, "== %s\n", path)
	for i := range recs {
		if i > 0 {
			buf.WriteByte('\n')
		}
		classify.WriteExplanation(buf, &recs[i])
	}
	buf.WriteByte('\n')
}

// orderedWriter writes chunks in sequence order whatever order they finish
// in, so the output does not depend on scheduling.
type orderedWriter struct {
	mu      sync.Mutex
	w       io.Writer
	next    int
	pending map[int][]byte
	err     error
}

func (o *orderedWriter) put(seq int, b []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending[seq] = b
	for {
		chunk, ok := o.pending[o.next]
		if !ok {
			return
		}
		delete(o.pending, o.next)
		o.next++
		if o.err == nil && len(chunk) > 0 {
			_, o.err = o.w.Write(chunk)
		}
	}
}
