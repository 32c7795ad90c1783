// Command listmonk is a recipe: it feeds bouncer's suppressions to
// listmonk's blocklist. It consumes `suppression.added` from the BOUNCES
// JetStream stream with a durable consumer and, for each global
// suppression, finds the subscriber in listmonk (by the subscriber UUID
// listmonk put in X-Listmonk-Subscriber when the event carries it, else by
// address) and blocklists it through listmonk's HTTP API:
//
//	GET /api/subscribers?query=subscribers.email='...'
//	PUT /api/subscribers/{id}/blocklist
//
// An event is acknowledged only once listmonk has answered (or has no such
// subscriber), so nothing is lost when listmonk is down: JetStream delivers
// it again after RETRY_AFTER (default a minute). A list-scope suppression is acknowledged and
// left alone: bouncer's list ids are List-Id values, not listmonk's.
//
// Run it beside bouncer:
//
//	NATS_URL=nats://127.0.0.1:4222 LISTMONK_URL=http://127.0.0.1:9000 \
//	LISTMONK_USER=bouncer LISTMONK_TOKEN=... go run ./deploy/recipes/listmonk
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// event is the part of a suppression.added payload this recipe reads.
type event struct {
	Recipient    string `json:"recipient"`
	SubscriberID string `json:"subscriber_id"`
	Suppression  struct {
		Scope string `json:"scope"`
	} `json:"suppression"`
}

type listmonk struct {
	base, auth string
	http       *http.Client
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// blocklist blocklists the subscriber e names; no such subscriber is done.
func (l *listmonk) blocklist(ctx context.Context, e event) error {
	query := "subscribers.email = " + sqlString(e.Recipient)
	if uuidRE.MatchString(e.SubscriberID) {
		query = "subscribers.uuid = " + sqlString(e.SubscriberID)
	}
	var found struct {
		Data struct {
			Results []struct {
				ID int64 `json:"id"`
			} `json:"results"`
		} `json:"data"`
	}
	if err := l.do(ctx, http.MethodGet, "/api/subscribers?per_page=1&query="+url.QueryEscape(query), &found); err != nil {
		return err
	}
	if len(found.Data.Results) == 0 {
		return nil
	}
	return l.do(ctx, http.MethodPut, fmt.Sprintf("/api/subscribers/%d/blocklist", found.Data.Results[0].ID), nil)
}

// sqlString quotes s for listmonk's SQL query expression.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (l *listmonk) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", l.auth)
	resp, err := l.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("listmonk: %s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	lm := &listmonk{
		base: strings.TrimRight(os.Getenv("LISTMONK_URL"), "/"),
		auth: "token " + os.Getenv("LISTMONK_USER") + ":" + os.Getenv("LISTMONK_TOKEN"),
		http: &http.Client{Timeout: 30 * time.Second},
	}
	if lm.base == "" {
		return errors.New("set LISTMONK_URL, LISTMONK_USER and LISTMONK_TOKEN (a listmonk API user)")
	}
	retry := time.Minute
	if v := os.Getenv("RETRY_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("RETRY_AFTER=%q: %w", v, err)
		}
		retry = d
	}
	nc, err := nats.Connect(os.Getenv("NATS_URL"))
	if err != nil {
		return err
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "BOUNCES", jetstream.ConsumerConfig{
		Durable: "listmonk-blocklist", FilterSubject: "suppression.added",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxAckPending: 100,
	})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var e event
		if err := json.Unmarshal(m.Data(), &e); err != nil || e.Suppression.Scope != "global" {
			m.Ack() // not for this recipe
			return
		}
		// A call under way finishes on shutdown: Stop waits for it.
		if err := lm.blocklist(context.WithoutCancel(ctx), e); err != nil {
			log.Printf("blocklist %s: %v (retried in %v)", e.Recipient, err, retry)
			m.NakWithDelay(retry)
			return
		}
		if err := m.DoubleAck(context.WithoutCancel(ctx)); err != nil {
			log.Printf("blocklisted %s, ack lost: %v (it comes again; blocklisting twice is harmless)", e.Recipient, err)
			return
		}
		log.Printf("blocklisted %s", e.Recipient)
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	log.Printf("feeding suppression.added to listmonk at %s", lm.base)
	<-ctx.Done()
	return ctx.Err()
}
