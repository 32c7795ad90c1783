package webhook_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWebhookIntake posts signed Mailgun events (one per request, the
// costliest shape: SendGrid batches) from 32 concurrent senders over real
// HTTP; each is verified, classified and committed to the real Postgres
// (group commit) before its 200, while a worker relays the outbox to the
// real JetStream. It reports events/s; the outbox is drained before it
// returns.
func BenchmarkWebhookIntake(b *testing.B) {
	b.Run("mailgun-1-per-request", benchMailgun)
	b.Run("sendgrid-50-per-request", benchSendGrid)
}

func benchMailgun(b *testing.B) {
	e := newEnv(b)
	e.relay()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	now := time.Now()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			id := fmt.Sprintf("bench-%d-%d", now.UnixNano(), i)
			body := mailgunBody(id, "failed", "permanent", fmt.Sprintf("r%d@example.org", i), "550", "5.1.1 user unknown", now, "tok-"+id)
			resp, err := client.Post(e.srv.URL+"/webhooks/mailgun", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("POST = %d, want 200", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if got := e.n(`SELECT count(*) FROM webhook_events`); got != b.N {
		b.Errorf("webhook_events = %d, want %d", got, b.N)
	}
	e.published()
}

// benchSendGrid posts signed SendGrid batches of 50 bounce events (SendGrid
// batches its events so) from 8 concurrent senders; b.N counts events.
func benchSendGrid(b *testing.B) {
	const per = 50
	e := newEnv(b)
	e.relay()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	now := time.Now()
	reqs := (b.N + per - 1) / per
	b.SetParallelism(4)
	b.ResetTimer()
	var sent atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if sent.Add(1) > int64(reqs) {
				continue
			}
			evs := make([]map[string]any, per)
			for k := range evs {
				i := seq.Add(1)
				evs[k] = map[string]any{"email": fmt.Sprintf("r%d@example.org", i), "event": "bounce", "type": "bounce",
					"sg_event_id": fmt.Sprintf("sg-%d-%d", now.UnixNano(), i), "status": "5.1.1",
					"reason": "550 5.1.1 user unknown", "timestamp": now.Unix()}
			}
			body := sendgridBody(evs...)
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/webhooks/sendgrid", bytes.NewReader(body))
			for k, v := range e.sendgridHeaders(body, now) {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("POST = %d, want 200", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	n := int(seq.Load())
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	if got := e.n(`SELECT count(*) FROM webhook_events`); got != n {
		b.Errorf("webhook_events = %d, want %d", got, n)
	}
	e.published()
}
