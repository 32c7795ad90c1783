package webhook

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

// fuzzHandler is a Handler with every provider configured and no store:
// the fuzz target calls the parsers, which never save.
func fuzzHandler(t testing.TB) (*Handler, *ecdsa.PrivateKey) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	cfg := DefaultConfig()
	cfg.SendGridKey = base64.StdEncoding.EncodeToString(pub)
	cfg.MailgunKey, cfg.PostmarkToken = "fuzz-key", "fuzz-token"
	cfg.SNSTopics = []string{"arn:aws:sns:eu-west-1:1:t"}
	h, err := New(cfg, nil, Options{SNSHost: func(string) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	return h, k
}

// FuzzWebhook feeds each provider's parser a body (validly signed for
// SendGrid; for Mailgun, whose signature covers only timestamp and token,
// the body's own signature is replaced by a valid one when it has the
// shape). Invariants: no panic; an accepted event has an id, a report,
// and never suppresses a recipient of a sender-side category or one the
// provider only dropped from its own list.
func FuzzWebhook(f *testing.F) {
	for _, s := range []string{
		`[{"email":"a@example.org","event":"bounce","sg_event_id":"x","status":"5.1.1","reason":"550 5.1.1 user unknown"}]`,
		`[{"email":"a@example.org","event":"dropped","sg_event_id":"y","reason":"Bounced Address"}]`,
		`{"signature":{"timestamp":"1","token":"t","signature":"00"},"event-data":{"id":"i","event":"failed","severity":"permanent","recipient":"a@example.org","delivery-status":{"code":553,"message":"5.7.1 relaying denied"}}}`,
		`{"RecordType":"Bounce","ID":1,"Type":"HardBounce","Email":"a@example.org","Details":"550 5.1.1 user unknown"}`,
		`{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:eu-west-1:1:t","Message":"{}","SignatureVersion":"1","SigningCertURL":"https://sns.eu-west-1.amazonaws.com/x.pem"}`,
		`{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"a@example.org","diagnosticCode":"smtp; 553 sorry, relaying denied"}]}}`,
		`[]`, `{}`, `null`, `[{"event":"bounce","sg_event_id":""}]`,
	} {
		f.Add([]byte(s))
	}
	h, key := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		now := time.Now()
		h.opts.Now = func() time.Time { return now }
		ts := strconv.FormatInt(now.Unix(), 10)
		sum := sha256.Sum256(append([]byte(ts), body...))
		sig, _ := ecdsa.SignASN1(rand.Reader, key, sum[:])
		r := httptest.NewRequest(http.MethodPost, "/webhooks/sendgrid", bytes.NewReader(body))
		r.Header.Set(sendgridSignatureHeader, base64.StdEncoding.EncodeToString(sig))
		r.Header.Set(sendgridTimestampHeader, ts)
		evs, _, _ := h.parseSendGrid(t.Context(), r, body)
		check(t, evs)

		mac := hmac.New(sha256.New, h.mailgun.key)
		mac.Write([]byte(ts + "tok"))
		signed := bytes.Replace(body, []byte(`{"timestamp":"1","token":"t","signature":"00"}`),
			[]byte(`{"timestamp":"`+ts+`","token":"tok","signature":"`+hex.EncodeToString(mac.Sum(nil))+`"}`), 1)
		h.mailgun.seen = map[string]tokenUse{}
		evs, _, _ = h.parseMailgun(t.Context(), nil, signed)
		check(t, evs)

		r = httptest.NewRequest(http.MethodPost, "/webhooks/postmark?token=fuzz-token", bytes.NewReader(body))
		evs, _, _ = h.parsePostmark(t.Context(), r, body)
		check(t, evs)

		// SNS: refused before any fetch (no host is SNS's here), but the
		// envelope is read; its Message is what SES would carry.
		evs, _, _ = h.parseSNS(t.Context(), nil, body)
		check(t, evs)
		if rep, ok := h.cls.SES(body); ok {
			check(t, []store.WebhookEvent{{EventID: "x", Message: store.Message{Report: rep}}})
		}
	})
}

func check(t *testing.T, evs []store.WebhookEvent) {
	t.Helper()
	for _, ev := range evs {
		rep := ev.Message.Report
		if ev.EventID == "" || rep == nil {
			t.Fatalf("event %+v: no id or no report", ev)
		}
		for _, r := range rep.Recipients {
			if r.Suppress && (classify.NeverSuppress(r.Category) || r.Category == classify.Unknown) {
				t.Errorf("recipient %q of category %s suppresses (rule %s)", r.Address, r.Category, r.Rule)
			}
			if r.Suppress && (ev.Type == "dropped" || r.Rule != "" && len(r.Rule) > 17 && r.Rule[:17] == "suppression_list:") {
				t.Errorf("recipient %q dropped by the provider's own list suppresses", r.Address)
			}
		}
	}
}
