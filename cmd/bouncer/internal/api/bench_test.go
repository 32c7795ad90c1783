package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/api"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/explain"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

// benchRows is how many suppressions BenchmarkCheckHTTP loads.
const benchRows = 1_000_000

func benchAddress(i int) string { return fmt.Sprintf("user%07d@d%03d.example", i, i%997) }

// loadSuppressions fills a fresh database with n suppressions by COPY (a
// tenth of them list-scope) and analyzes it.
func loadSuppressions(b *testing.B, url string, n int) {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	now := time.Now()
	start := time.Now()
	copied, err := conn.CopyFrom(ctx, pgx.Identifier{"suppressions"},
		[]string{"address", "address_raw", "domain", "list_id", "reason", "created_at", "created_by"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			a := benchAddress(i)
			list := ""
			if i%10 == 9 {
				list = "news"
			}
			return []any{a, a, a[strings.IndexByte(a, '@')+1:], list, "hard", now, "bench"}, nil
		}))
	if err != nil || copied != int64(n) {
		b.Fatalf("copy %d suppressions: %d, %v", n, copied, err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE suppressions"); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d suppressions in %v", n, time.Since(start).Round(time.Millisecond))
}

// BenchmarkCheckHTTP measures the check over real HTTP (the explain
// page's checks in front, as served) against 1 M suppressions in
// Postgres: one address per request, and batches of 1,000. It reports
// p50 and p99 of the request times.
//
//	go test ./cmd/bouncer/internal/api -run '^$' -bench CheckHTTP -benchtime 2000x
func BenchmarkCheckHTTP(b *testing.B) {
	db, url := storetest.Open(b, store.Options{})
	loadSuppressions(b, url, benchRows)
	addrs := make([]string, 1000)
	for i := range addrs {
		addrs[i] = benchAddress(i * 997 % (benchRows * 2)) // half suppressed, half not
	}
	plan, err := db.CheckPlan(context.Background(), addrs, "news")
	if err != nil || !strings.Contains(plan, "suppressions_open_key") || strings.Contains(plan, "Seq Scan on suppressions") {
		b.Fatalf("the check's plan does not probe suppressions_open_key:\n%s\n%v", plan, err)
	}
	mux := http.NewServeMux()
	ex := explain.New(classify.New(classify.Options{}), db, explain.Options{Token: testToken})
	ex.Register(mux)
	api.New(db, api.Options{}).Register(mux, ex.Protect)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := srv.Client()

	b.Run("single", func(b *testing.B) {
		i := 0
		timed(b, func() *http.Request {
			i++
			req, _ := http.NewRequest("GET", srv.URL+"/api/v1/suppressions/check?address="+addrs[i%len(addrs)]+"&list=news", nil)
			return req
		}, client)
	})
	body, _ := json.Marshal(map[string]any{"addresses": addrs, "list_id": "news"})
	b.Run("batch1000", func(b *testing.B) {
		timed(b, func() *http.Request {
			req, _ := http.NewRequest("POST", srv.URL+"/api/v1/suppressions/check", bytes.NewReader(body))
			return req
		}, client)
	})
}

// timed sends b.N requests one after the other (after 20 to warm the
// connections and the plan cache) and reports p50 and p99 in ms.
func timed(b *testing.B, next func() *http.Request, client *http.Client) {
	b.Helper()
	do := func() time.Duration {
		req := next()
		req.Header.Set("Authorization", "Bearer "+testToken)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 200 {
			b.Fatalf("%s %s = %d", req.Method, req.URL, resp.StatusCode)
		}
		return d
	}
	for range 20 {
		do()
	}
	var times []time.Duration
	b.ResetTimer()
	for range b.N {
		times = append(times, do())
	}
	b.StopTimer()
	slices.Sort(times)
	q := func(p float64) float64 {
		return float64(times[min(len(times)-1, int(p*float64(len(times))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
