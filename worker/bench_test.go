package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// BenchmarkDrain drains a backlog of bounces from Dovecot into Postgres
// and NATS with a worker in a child process, then measures APPEND-to-event
// latency while it IDLEs. It reports msgs/s, p50/p99 latency and the
// worker's peak RSS. Run it once:
//
//	go test ./worker -run '^$' -bench BenchmarkDrain -benchtime 1x
//
// BOUNCER_BENCH_MESSAGES sets the backlog (default 20000).
func BenchmarkDrain(b *testing.B) {
	total := 20000
	if v, err := strconv.Atoi(os.Getenv("BOUNCER_BENCH_MESSAGES")); err == nil && v > 0 {
		total = v
	}
	d := wt.StartDovecot(b)
	n := wt.StartNATS(b)
	dbURL := wt.NewDatabase(b)

	// The backlog: the bounces of the real-bounce corpus when it is there
	// (as the figures in the README were measured), else of the project's
	// fixtures; each made unique by a header.
	src := loadCorpus
	if haveRealCorpus() {
		src = loadRealCorpus
	}
	var bounces [][]byte
	for _, m := range src(b) {
		if m.Dest == "Processed" {
			bounces = append(bounces, m.Raw)
		}
	}
	if len(bounces) == 0 {
		b.Fatal("the classifier finds no bounce in the corpus")
	}
	start := time.Now()
	const conns = 1
	var wg sync.WaitGroup
	for k := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := wt.IMAPClient(b, d.Addr(), d.User, d.Password)
			var batch [][]byte
			for i := k; i < total; i += conns {
				batch = append(batch, append([]byte(fmt.Sprintf("X-Bench-Seq: %d\r\n", i)), bounces[i%len(bounces)]...))
				if len(batch) == 200 {
					wt.AppendRaw(b, c, "INBOX", batch...)
					batch = batch[:0]
				}
			}
			wt.AppendRaw(b, c, "INBOX", batch...)
		}()
	}
	wg.Wait()
	b.Logf("appended %d messages in %v", total, time.Since(start).Round(time.Millisecond))

	ctx := context.Background()
	pc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close(ctx)
	b.ResetTimer()
	start = time.Now()
	child := startBenchWorker(b, dbURL, n.URL(), d.URL("INBOX"))
	for {
		var stored, pending int
		// Cheap to ask 20 times a second: the pending events are read
		// from the outbox's partial index.
		pc.QueryRow(ctx, "SELECT (SELECT count(*) FROM source_messages), (SELECT count(*) FROM outbox WHERE published_at IS NULL)").Scan(&stored, &pending)
		if stored == total && pending == 0 {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("drained %d of %d in 10 min", stored, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	drain := time.Since(start)
	b.StopTimer()
	rate := float64(total) / drain.Seconds()

	// Latency under IDLE: fresh bounces, one every 50 ms.
	nc, err := nats.Connect(n.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	sub, err := nc.Subscribe("bounce.>", func(m *nats.Msg) {
		var p struct{ Recipient string }
		json.Unmarshal(m.Data, &p)
		mu.Lock()
		defer mu.Unlock()
		if t0, ok := sent[p.Recipient]; ok {
			lat = append(lat, time.Since(t0))
			delete(sent, p.Recipient)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()
	c := wt.IMAPClient(b, d.Addr(), d.User, d.Password)
	const probes = 100
	for i := range probes {
		tag := fmt.Sprintf("probe%d-%d", i, time.Now().UnixNano())
		mu.Lock()
		sent["user-"+tag+"@example.com"] = time.Now()
		mu.Unlock()
		wt.AppendRaw(b, c, "INBOX", freshBounce(tag))
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		if got == probes || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	slices.Sort(lat)
	got := len(lat)
	mu.Unlock()
	if got < probes {
		b.Errorf("%d of %d probe events arrived", got, probes)
	}
	rss := peakRSS(b, child.Process.Pid)
	var p50, p99 time.Duration
	if got > 0 {
		p50, p99 = lat[got*50/100], lat[min(got-1, got*99/100)]
	}
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(float64(p50.Milliseconds()), "p50-ms")
	b.ReportMetric(float64(p99.Milliseconds()), "p99-ms")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
	b.Logf("drained %d bounces in %v: %.0f msgs/s; APPEND-to-event under IDLE p50 %v p99 %v (%d probes); worker peak RSS %.1f MB",
		total, drain.Round(time.Millisecond), rate, p50, p99, got, float64(rss)/(1<<20))
}

func startBenchWorker(b *testing.B, dbURL, natsURL, imapURL string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorker$")
	cmd.Env = append(os.Environ(),
		"BOUNCER_HELPER_WORKER=1", "BOUNCER_TEST_QUIET=1",
		"DATABASE_URL="+dbURL, "NATS_URL="+natsURL, "BOUNCER_IMAP_URL="+imapURL,
		"BOUNCER_OWNER=bench",
	)
	// The garbage collector as `bouncer run` sets it (cmd/bouncer's tuneGC),
	// unless the caller chose.
	if os.Getenv("GOGC") == "" {
		cmd.Env = append(cmd.Env, "GOGC=400")
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT=192MiB")
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// peakRSS is the process's high-water resident set (VmHWM), in bytes.
func peakRSS(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Logf("peak RSS: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
