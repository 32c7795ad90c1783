package webhook_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker"
	"github.com/bouncer-mail/bouncer/worker/webhook"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

const (
	testTopic   = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
	mailgunKey  = "key-test-mailgun-signing"
	pmUser      = "postmark"
	pmPassword  = "pm-secret-password"
	testMaxBody = 64 << 10
)

// env is a webhook Handler on a real HTTP server, saving to a database of
// the test's own, with a worker relaying its events to a real JetStream,
// and an SNS look-alike: a CA, a signing certificate and key made here, the
// certificate served over loopback TLS.
type env struct {
	t        testing.TB
	db       *store.DB
	dbURL    string
	raw      *pgxpool.Pool
	nats     *wt.NATS
	reg      *prometheus.Registry
	srv      *httptest.Server
	sgKey    *ecdsa.PrivateKey
	sns      *httptest.Server
	snsKey   *rsa.PrivateKey
	confirms atomic.Int32 // SubscribeURL GETs
	certGets atomic.Int32 // signing certificate GETs
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, dbURL: wt.NewDatabase(t), nats: wt.StartNATS(t), reg: prometheus.NewRegistry()}
	db, err := store.Open(t.Context(), e.dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	e.db = db
	if e.raw, err = pgxpool.New(t.Context(), e.dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.raw.Close)
	e.sgKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := x509.MarshalPKIXPublicKey(&e.sgKey.PublicKey)
	roots := e.startSNS()

	cfg := webhook.DefaultConfig()
	cfg.MaxBody = testMaxBody
	cfg.SNSTopics = []string{testTopic}
	cfg.SendGridKey = base64.StdEncoding.EncodeToString(pub)
	cfg.PostmarkUser, cfg.PostmarkPassword = pmUser, pmPassword
	cfg.MailgunKey = mailgunKey
	h, err := webhook.New(cfg, db, webhook.Options{
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: e.reg,
		HTTPClient: e.sns.Client(), SNSRoots: roots,
		SNSHost: func(h string) bool { return h == e.sns.Listener.Addr().String() },
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// startSNS makes a CA and a signing certificate, serves the certificate
// (and a SubscribeURL) over TLS, and returns the pool trusting the CA.
func (e *env) startSNS() *x509.CertPool {
	t := e.t
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test SNS CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	e.snsKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &e.snsKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /SimpleNotificationService-test.pem", func(w http.ResponseWriter, r *http.Request) {
		e.certGets.Add(1)
		w.Write(leafPEM)
	})
	mux.HandleFunc("GET /confirm", func(w http.ResponseWriter, r *http.Request) { e.confirms.Add(1) })
	e.sns = httptest.NewTLSServer(mux)
	t.Cleanup(e.sns.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return roots
}

// post sends body to /webhooks/provider and returns the status.
func (e *env) post(provider string, body []byte, hdr http.Header) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/webhooks/"+provider, bytes.NewReader(body))
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// n is the single integer a query returns.
func (e *env) n(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.raw.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// metric is bouncer_webhook_events_total{provider, outcome}.
func (e *env) metric(provider, outcome string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "bouncer_webhook_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["provider"] == provider && l["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// relay runs a worker (on an idle in-memory mailbox) whose outbox relay
// publishes what the webhooks committed, until the test ends.
func (e *env) relay() {
	t := e.t
	m := wt.StartMemIMAP(t, nil)
	cfg := worker.DefaultConfig()
	cfg.IMAPURLs = []string{m.URL("INBOX")}
	cfg.Owner = fmt.Sprintf("webhook-test-%d", time.Now().UnixNano())
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.nats.URL())
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(cfg, e.db, nc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Worker.Run = %v", err)
		}
		nc.Close()
	})
}

// published returns the BOUNCES stream's messages, by mailbox, once the
// outbox is empty; and fails on a Nats-Msg-Id seen twice.
func (e *env) published() map[string][]store.Payload {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.n(`SELECT count(*) FROM outbox WHERE published_at IS NULL`) > 0 {
		if time.Now().After(deadline) {
			e.t.Fatal("outbox not drained within 30s")
		}
		time.Sleep(50 * time.Millisecond) // the relay reports nothing to wait on
	}
	nc, err := nats.Connect(e.nats.URL())
	if err != nil {
		e.t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, worker.StreamName)
	if err != nil {
		e.t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string][]store.Payload{}
	seen := map[string]bool{}
	for got := uint64(0); got < info.State.Msgs; {
		batch, err := cons.Fetch(int(info.State.Msgs-got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			e.t.Fatal(err)
		}
		for m := range batch.Messages() {
			got++
			id := m.Headers().Get(jetstream.MsgIDHeader)
			if seen[id] {
				e.t.Errorf("Nats-Msg-Id %s published twice", id)
			}
			seen[id] = true
			var p store.Payload
			if err := json.Unmarshal(m.Data(), &p); err != nil {
				e.t.Fatal(err)
			}
			out[p.Mailbox] = append(out[p.Mailbox], p)
		}
	}
	return out
}

// Signed payloads, built with each provider's scheme.

func mailgunBody(id, event, severity, rcpt, code, msg string, ts time.Time, token string) []byte {
	tsS := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(mailgunKey))
	mac.Write([]byte(tsS + token))
	b, _ := json.Marshal(map[string]any{
		"signature": map[string]string{"timestamp": tsS, "token": token, "signature": hex.EncodeToString(mac.Sum(nil))},
		"event-data": map[string]any{"id": id, "event": event, "severity": severity, "recipient": rcpt,
			"timestamp": float64(ts.UnixNano()) / 1e9, "reason": "generic",
			"delivery-status": map[string]any{"code": atoi(code), "message": msg, "description": ""},
			"message":         map[string]any{"headers": map[string]string{"message-id": "orig-" + id + "@news.example"}}},
	})
	return b
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func (e *env) sendgridHeaders(body []byte, ts time.Time) http.Header {
	tsS := strconv.FormatInt(ts.Unix(), 10)
	sum := sha256.Sum256(append([]byte(tsS), body...))
	sig, _ := ecdsa.SignASN1(rand.Reader, e.sgKey, sum[:])
	return http.Header{"X-Twilio-Email-Event-Webhook-Signature": {base64.StdEncoding.EncodeToString(sig)},
		"X-Twilio-Email-Event-Webhook-Timestamp": {tsS}}
}

func sendgridBody(events ...map[string]any) []byte {
	b, _ := json.Marshal(events)
	return b
}

func postmarkAuth(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

// snsBody is an SNS message of typ signed with version (1 or 2), as AWS
// documents the canonical string.
func (e *env) snsBody(typ, id, topic, message string, ts time.Time, version int) []byte {
	f := map[string]string{"Type": typ, "MessageId": id, "TopicArn": topic, "Message": message,
		"Timestamp": ts.UTC().Format("2006-01-02T15:04:05.000Z"), "SignatureVersion": strconv.Itoa(version),
		"SigningCertURL": e.sns.URL + "/SimpleNotificationService-test.pem"}
	keys := []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	if typ != "Notification" {
		f["Token"] = "tok-" + id
		f["SubscribeURL"] = e.sns.URL + "/confirm?Token=tok-" + id
		keys = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	} else {
		f["Subject"] = "Amazon SES Email Event Notification"
	}
	var canon strings.Builder
	for _, k := range keys {
		canon.WriteString(k + "\n" + f[k] + "\n")
	}
	var sig []byte
	if version == 1 {
		s := sha1.Sum([]byte(canon.String()))
		sig, _ = rsa.SignPKCS1v15(nil, e.snsKey, crypto.SHA1, s[:])
	} else {
		s := sha256.Sum256([]byte(canon.String()))
		sig, _ = rsa.SignPKCS1v15(nil, e.snsKey, crypto.SHA256, s[:])
	}
	f["Signature"] = base64.StdEncoding.EncodeToString(sig)
	b, _ := json.Marshal(f)
	return b
}

// sesBounce is an SES Bounce notification for rcpt.
func sesBounce(typ, subType, rcpt, status, diag string) string {
	b, _ := json.Marshal(map[string]any{"notificationType": "Bounce",
		"bounce": map[string]any{"bounceType": typ, "bounceSubType": subType,
			"bouncedRecipients": []map[string]string{{"emailAddress": rcpt, "status": status, "diagnosticCode": diag, "action": "failed"}}},
		"mail": map[string]any{"messageId": "ses-1", "headers": []map[string]string{{"name": "Message-ID", "value": "<orig-ses@news.example>"}}}})
	return string(b)
}

// flip changes one byte of b (a copy) in its middle.
func flip(b []byte) []byte {
	c := bytes.Clone(b)
	i := len(c) / 2
	for c[i] == '"' || c[i] == '\\' {
		i++
	}
	c[i] ^= 1
	return c
}

// flipIn changes one byte of b (a copy) inside the first sub.
func flipIn(b []byte, sub string) []byte {
	c := bytes.Clone(b)
	i := bytes.Index(c, []byte(sub))
	c[i+len(sub)/2] ^= 1
	return c
}
