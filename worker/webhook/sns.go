package webhook

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bouncer-mail/bouncer/store"
)

// Amazon SES publishes its notifications to an SNS topic, which posts them
// to an HTTPS subscription as JSON messages signed with RSA: SignatureVersion
// 1 over SHA1, 2 over SHA256, of a canonical string of the message's fields,
// with the certificate at SigningCertURL (an SNS host).
// https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html

type snsEnvelope struct {
	Type             string `json:"Type"`
	MessageID        string `json:"MessageId"`
	Token            string `json:"Token"`
	TopicArn         string `json:"TopicArn"`
	Subject          string `json:"Subject"`
	Message          string `json:"Message"`
	Timestamp        string `json:"Timestamp"`
	SignatureVersion string `json:"SignatureVersion"`
	Signature        string `json:"Signature"`
	SigningCertURL   string `json:"SigningCertURL"`
	SubscribeURL     string `json:"SubscribeURL"`
}

// canonical is the string SNS signs: name and value lines of the fields
// of e's type, in this order; Subject only when present.
func (e *snsEnvelope) canonical() string {
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k + "\n" + v + "\n") }
	add("Message", e.Message)
	add("MessageId", e.MessageID)
	if e.Type == "Notification" {
		if e.Subject != "" {
			add("Subject", e.Subject)
		}
	} else {
		add("SubscribeURL", e.SubscribeURL)
	}
	add("Timestamp", e.Timestamp)
	if e.Type != "Notification" {
		add("Token", e.Token)
	}
	add("TopicArn", e.TopicArn)
	add("Type", e.Type)
	return b.String()
}

// snsHost is the host of SNS's signing certificates and subscribe URLs.
var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// maxCerts bounds the certificate cache (SNS rotates them rarely).
const maxCerts = 64

type snsVerifier struct {
	h     *Handler
	host  func(string) bool
	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

func newSNSVerifier(h *Handler) *snsVerifier {
	v := &snsVerifier{h: h, host: h.opts.SNSHost, certs: map[string]*x509.Certificate{}}
	if v.host == nil {
		v.host = snsHost.MatchString
	}
	return v
}

// snsURL checks that raw is an https URL on an SNS host.
func (v *snsVerifier) snsURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || !v.host(u.Host) {
		return nil, fmt.Errorf("%q is not an https URL on an SNS host", raw)
	}
	return u, nil
}

// cert returns the certificate at rawURL, verified, from the cache or
// fetched. A fetch that fails is errFetch: not the sender's fault.
func (v *snsVerifier) cert(ctx context.Context, rawURL string) (*x509.Certificate, error) {
	u, err := v.snsURL(rawURL)
	if err != nil || !strings.HasSuffix(u.Path, ".pem") {
		return nil, fmt.Errorf("SigningCertURL %q is not a .pem on an SNS host", rawURL)
	}
	v.mu.Lock()
	defer v.mu.Unlock() // one fetch at a time; they are rare
	if c, ok := v.certs[u.String()]; ok && v.h.opts.Now().Before(c.NotAfter) {
		return c, nil
	}
	body, err := v.get(ctx, u, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errFetch, err)
	}
	c, err := v.verifyCert(body)
	if err != nil {
		return nil, err
	}
	if len(v.certs) >= maxCerts {
		clear(v.certs)
	}
	v.certs[u.String()] = c
	return c, nil
}

var errFetch = errors.New("fetching from SNS")

// get fetches u, at most limit bytes.
func (v *snsVerifier) get(ctx context.Context, u *url.URL, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.h.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u.Host+u.Path, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, limit))
}

// verifyCert reads a PEM certificate (and intermediates) and verifies its
// chain.
func (v *snsVerifier) verifyCert(body []byte) (*x509.Certificate, error) {
	var certs []*x509.Certificate
	for b, rest := pem.Decode(body); b != nil; b, rest = pem.Decode(rest) {
		if c, err := x509.ParseCertificate(b.Bytes); err == nil && b.Type == "CERTIFICATE" {
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("SigningCertURL holds no PEM certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: v.h.opts.SNSRoots, Intermediates: inter,
		CurrentTime: v.h.opts.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fmt.Errorf("SNS signing certificate: %w", err)
	}
	if _, ok := certs[0].PublicKey.(*rsa.PublicKey); !ok {
		return nil, errors.New("SNS signing certificate has no RSA key")
	}
	return certs[0], nil
}

// verify checks e's signature.
func (v *snsVerifier) verify(ctx context.Context, e *snsEnvelope) error {
	var hash crypto.Hash
	var sum []byte
	switch e.SignatureVersion {
	case "1":
		s := sha1.Sum([]byte(e.canonical()))
		hash, sum = crypto.SHA1, s[:]
	case "2":
		s := sha256.Sum256([]byte(e.canonical()))
		hash, sum = crypto.SHA256, s[:]
	default:
		return fmt.Errorf("SignatureVersion %q (want 1 or 2)", e.SignatureVersion)
	}
	sig, err := base64.StdEncoding.DecodeString(e.Signature)
	if err != nil {
		return errors.New("signature is not base64")
	}
	c, err := v.cert(ctx, e.SigningCertURL)
	if err != nil {
		return err
	}
	if err := rsa.VerifyPKCS1v15(c.PublicKey.(*rsa.PublicKey), hash, sum, sig); err != nil {
		return errors.New("SNS signature does not verify")
	}
	return nil
}

func (h *Handler) parseSNS(ctx context.Context, _ *http.Request, body []byte) ([]store.WebhookEvent, string, *refusal) {
	var e snsEnvelope
	if err := json.Unmarshal(body, &e); err != nil || e.Type == "" {
		return nil, "", refuse(http.StatusBadRequest, "bad_request", "not an SNS message: %v", err)
	}
	if !slices.Contains(h.cfg.SNSTopics, e.TopicArn) {
		return nil, "", refuse(http.StatusForbidden, "unknown_topic", "SNS topic %q is not in BOUNCER_WEBHOOK_SNS_TOPICS", e.TopicArn)
	}
	if err := h.sns.verify(ctx, &e); errors.Is(err, errFetch) {
		return nil, "", refuse(http.StatusServiceUnavailable, "error", "%v", err)
	} else if err != nil {
		return nil, "", refuse(http.StatusUnauthorized, "bad_signature", "%v", err)
	}
	at, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		return nil, "", refuse(http.StatusBadRequest, "bad_request", "SNS Timestamp %q is not RFC 3339", e.Timestamp)
	}
	if ref := h.checkTime("SNS", at, h.opts.Now()); ref != nil {
		return nil, "", ref
	}
	switch e.Type {
	case "SubscriptionConfirmation":
		return nil, "confirmed", h.confirmSNS(ctx, &e)
	case "Notification":
	default: // UnsubscribeConfirmation: nothing to do
		return nil, "", nil
	}
	rep, ok := h.cls.SES([]byte(e.Message))
	if !ok || e.MessageID == "" {
		return nil, "", nil
	}
	return []store.WebhookEvent{event("ses", e.MessageID, sesLabel(e.Message), "webhook:ses:sns-signature-v"+e.SignatureVersion, body, rep, at)}, "", nil
}

// confirmSNS confirms a subscription to an allowed topic: a GET of its
// SubscribeURL, which must be on an SNS host.
func (h *Handler) confirmSNS(ctx context.Context, e *snsEnvelope) *refusal {
	u, err := h.sns.snsURL(e.SubscribeURL)
	if err != nil {
		return refuse(http.StatusBadRequest, "bad_request", "SubscribeURL: %v", err)
	}
	if _, err := h.sns.get(ctx, u, 64<<10); err != nil {
		return refuse(http.StatusBadGateway, "error", "confirming the subscription to %s: %v", e.TopicArn, err)
	}
	h.log.Info("SNS subscription confirmed", "topic", e.TopicArn)
	return nil
}

// sesLabel is the notification's type, and a bounce's type and subtype.
func sesLabel(msg string) string {
	var n struct {
		NotificationType, EventType string
		Bounce                      struct{ BounceType, BounceSubType string }
	}
	json.Unmarshal([]byte(msg), &n)
	l := n.NotificationType + n.EventType
	if n.Bounce.BounceType != "" {
		l += "/" + n.Bounce.BounceType + "/" + n.Bounce.BounceSubType
	}
	return l
}
