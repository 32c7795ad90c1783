// Package webhook is bouncer's intake of email service providers' event
// webhooks: Amazon SES through SNS (/webhooks/ses), SendGrid's Signed Event
// Webhook (/webhooks/sendgrid), Postmark's bounce and spam complaint
// webhooks (/webhooks/postmark) and Mailgun's (/webhooks/mailgun).
//
// Each request is verified by the provider's own scheme before anything is
// read into the store: SNS's RSA signature (SignatureVersion 1, SHA1; 2,
// SHA256) over its canonical string with a certificate fetched from an SNS
// host, SendGrid's ECDSA P-256 signature over timestamp and body, Postmark's
// basic auth or token, Mailgun's HMAC-SHA256 of timestamp and token. Signed
// timestamps older (or further ahead) than Config.MaxAge are refused, as
// is a Mailgun token presented again for another event.
//
// Each event becomes what a mailbox bounce saying the same becomes:
// classify.Classifier.Event (or .SES) decides the category from the status,
// code and text, the provider's label being evidence only; the event is
// saved by store.DB.SaveWebhooks in the same transaction as its rows,
// suppressions and outbox events, under the provider's event id, so an
// event delivered again writes nothing. The raw payload is kept in
// webhook_events. Events committed together (group commit) share one
// transaction; the provider gets its 2xx only after the commit.
package webhook

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

// Options are what a Handler uses besides its Config.
type Options struct {
	Log        *slog.Logger
	Registerer prometheus.Registerer // bouncer_webhook_events_total; nil: not registered
	Classifier *classify.Classifier  // nil: classify's defaults
	// Notify is called after a commit that wrote outbox events (the
	// relay's wake-up); may be nil.
	Notify func()

	// The rest is for tests, and not reachable from the environment.

	// HTTPClient fetches SNS signing certificates and confirms
	// subscriptions; nil: a client with a 10 s timeout.
	HTTPClient *http.Client
	// SNSHost reports whether a SigningCertURL or SubscribeURL host is
	// SNS's; nil: sns.<region>.amazonaws.com (or .com.cn).
	SNSHost func(host string) bool
	// SNSRoots verify SNS signing certificates; nil: the system's.
	SNSRoots *x509.CertPool
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Handler serves the configured providers' endpoints. Build it with New.
type Handler struct {
	cfg     Config
	db      *store.DB
	opts    Options
	log     *slog.Logger
	cls     *classify.Classifier
	events  *prometheus.CounterVec
	commits *committer
	sns     *snsVerifier
	sendgrd *sendgridVerifier
	mailgun *mailgunVerifier
}

// New returns a Handler for cfg, which must have passed Validate.
func New(cfg Config, db *store.DB, opts Options) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	h := &Handler{cfg: cfg, db: db, opts: opts, log: opts.Log, cls: opts.Classifier}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.cls == nil {
		h.cls = classify.New(classify.Options{})
	}
	if h.opts.Now == nil {
		h.opts.Now = time.Now
	}
	if h.opts.HTTPClient == nil {
		h.opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	h.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bouncer_webhook_events_total",
		Help: "Webhook events by provider and outcome (stored, duplicate, ignored, confirmed, bad_signature, stale, replayed, unknown_topic, bad_request, too_large, error).",
	}, []string{"provider", "outcome"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(h.events); err != nil {
			return nil, fmt.Errorf("webhook: metrics: %w", err)
		}
	}
	h.commits = &committer{save: h.save}
	h.sns = newSNSVerifier(h)
	if cfg.SendGridKey != "" {
		k, _ := parseECDSAKey(cfg.SendGridKey) // checked by Validate
		h.sendgrd = &sendgridVerifier{key: k}
	}
	h.mailgun = &mailgunVerifier{key: []byte(cfg.MailgunKey), seen: map[string]tokenUse{}}
	return h, nil
}

// Register mounts the configured providers' endpoints on mux:
// POST /webhooks/ses, /webhooks/sendgrid, /webhooks/postmark,
// /webhooks/mailgun. They are authenticated by the providers' signatures,
// not by any token of the rest of the server.
func (h *Handler) Register(mux *http.ServeMux) {
	if len(h.cfg.SNSTopics) > 0 {
		mux.Handle("POST /webhooks/ses", h.endpoint("ses", h.parseSNS))
	}
	if h.sendgrd != nil {
		mux.Handle("POST /webhooks/sendgrid", h.endpoint("sendgrid", h.parseSendGrid))
	}
	if h.cfg.PostmarkPassword != "" || h.cfg.PostmarkToken != "" {
		mux.Handle("POST /webhooks/postmark", h.endpoint("postmark", h.parsePostmark))
	}
	if h.cfg.MailgunKey != "" {
		mux.Handle("POST /webhooks/mailgun", h.endpoint("mailgun", h.parseMailgun))
	}
}

// refusal is why a request is refused: its status, the metric's outcome
// and a one-line reason for the provider's log.
type refusal struct {
	status  int
	outcome string
	reason  string
}

func (r *refusal) Error() string { return r.reason }

func refuse(status int, outcome, format string, args ...any) *refusal {
	return &refusal{status, outcome, fmt.Sprintf(format, args...)}
}

// parseFunc verifies and reads one request of a provider: the events to
// save (none is fine: nothing of interest), or a refusal. ok is the
// outcome when there are no events ("confirmed"; "": "ignored").
type parseFunc func(ctx context.Context, r *http.Request, body []byte) (evs []store.WebhookEvent, ok string, err *refusal)

// endpoint is the HTTP handler of a provider: read the body (bounded),
// verify and parse it, save the events, answer.
func (h *Handler) endpoint(provider string, parse parseFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				h.answer(w, provider, refuse(http.StatusRequestEntityTooLarge, "too_large", "body larger than %d bytes", h.cfg.MaxBody))
			} else {
				h.answer(w, provider, refuse(http.StatusBadRequest, "bad_request", "reading the body: %v", err))
			}
			return
		}
		evs, ok, ref := parse(r.Context(), r, body)
		if ref != nil {
			h.answer(w, provider, ref)
			return
		}
		if len(evs) == 0 {
			outcome := cmp.Or(ok, "ignored")
			h.events.WithLabelValues(provider, outcome).Inc()
			writeLine(w, http.StatusOK, "ok: "+outcome)
			return
		}
		stored, err := h.commits.commit(r.Context(), evs)
		switch {
		case errors.Is(err, store.ErrInvalid): // retrying would not help
			h.answer(w, provider, refuse(http.StatusBadRequest, "bad_request", "%v", err))
			return
		case err != nil && r.Context().Err() != nil:
			return // the provider hung up; the events may be saved, its retry will say
		case err != nil:
			h.log.Error("webhook events not saved", "provider", provider, "events", len(evs), "err", err)
			h.answer(w, provider, refuse(http.StatusServiceUnavailable, "error", "not saved; retry"))
			return
		}
		n := 0
		for _, s := range stored {
			if s {
				n++
			}
		}
		h.events.WithLabelValues(provider, "stored").Add(float64(n))
		h.events.WithLabelValues(provider, "duplicate").Add(float64(len(stored) - n))
		writeLine(w, http.StatusOK, "ok: "+strconv.Itoa(n)+" stored, "+strconv.Itoa(len(stored)-n)+" duplicate")
	})
}

// answer refuses a request and counts it.
func (h *Handler) answer(w http.ResponseWriter, provider string, ref *refusal) {
	h.events.WithLabelValues(provider, ref.outcome).Inc()
	if ref.status >= 500 {
		h.log.Warn("webhook request failed", "provider", provider, "status", ref.status, "reason", ref.reason)
	} else {
		h.log.Info("webhook request refused", "provider", provider, "status", ref.status, "outcome", ref.outcome, "reason", ref.reason)
	}
	writeLine(w, ref.status, ref.reason)
}

func writeLine(w http.ResponseWriter, status int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, line+"\n")
}

// save is the committer's: one transaction for evs.
func (h *Handler) save(ctx context.Context, evs []store.WebhookEvent) ([]bool, error) {
	res, stored, err := h.db.SaveWebhooks(ctx, evs)
	if err == nil && res.Events > 0 && h.opts.Notify != nil {
		h.opts.Notify()
	}
	return stored, err
}

// event is a store.WebhookEvent of rep, received at (zero: now).
func event(provider, id, label, verifiedBy string, payload []byte, rep *classify.Report, at time.Time) store.WebhookEvent {
	return store.WebhookEvent{
		Provider: provider, EventID: id, Type: label, VerifiedBy: verifiedBy, Payload: payload,
		Message: store.Message{Report: rep, InternalDate: at, MessageID: provider + ":" + id},
	}
}
