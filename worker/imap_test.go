package worker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// authIMAP is an in-memory IMAP server that also takes XOAUTH2 and
// OAUTHBEARER with one token, optionally over TLS.
type authIMAP struct {
	addr  string
	token string
}

type oauthSession struct {
	imapserver.SessionIMAP4rev2
	user, pass, token string
}

func (s *oauthSession) AuthenticateMechanisms() []string {
	return []string{"PLAIN", "XOAUTH2", "OAUTHBEARER"}
}

func (s *oauthSession) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case "PLAIN":
		return sasl.NewPlainServer(func(_, u, p string) error { return s.Login(u, p) }), nil
	case "OAUTHBEARER":
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if o.Token != s.token || s.Login(o.Username, s.pass) != nil {
				return &sasl.OAuthBearerError{Status: "invalid_token"}
			}
			return nil
		}), nil
	case "XOAUTH2":
		return &xoauth2Server{s: s}, nil
	}
	return nil, errors.New("unsupported mechanism")
}

type xoauth2Server struct {
	s      *oauthSession
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, errors.New("invalid token")
	}
	want := "user=" + x.s.user + "\x01auth=Bearer " + x.s.token + "\x01\x01"
	if string(resp) != want || x.s.Login(x.s.user, x.s.pass) != nil {
		x.failed = true
		return []byte(`{"status":"401"}`), false, nil
	}
	return nil, true, nil
}

// startAuthIMAP serves mode: "plain" (no TLS), "implicit" (TLS on
// connect) or "starttls"; it returns the server and the CA file.
func startAuthIMAP(t *testing.T, mode string) (*authIMAP, string) {
	t.Helper()
	certPEM, keyPEM := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, certPEM, 0o644)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tcfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("bounces", "secret")
	user.Create("INBOX", nil)
	mem.AddUser(user)
	a := &authIMAP{token: "tok-123"}
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &oauthSession{SessionIMAP4rev2: mem.NewSession().(imapserver.SessionIMAP4rev2),
				user: "bounces", pass: "secret", token: a.token}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: mode == "plain",
		Logger:       discardLogger{},
	}
	if mode == "starttls" {
		opts.TLSConfig = tcfg
	}
	srv := imapserver.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	if mode == "implicit" {
		ln = tls.NewListener(ln, tcfg)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a, caFile
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestDialAuthAndTLS(t *testing.T) {
	plain, _ := startAuthIMAP(t, "plain")
	implicit, ca := startAuthIMAP(t, "implicit")
	starttls, ca2 := startAuthIMAP(t, "starttls")
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte("tok-123\n"), 0o600)

	tests := []struct {
		name    string
		url     string
		ca      string
		wantErr string
	}{
		{name: "login", url: "imap://bounces:secret@" + plain.addr + "/INBOX?tls=none"},
		{name: "plain", url: "imap://bounces:secret@" + plain.addr + "/INBOX?tls=none&auth=plain"},
		{name: "bad password", url: "imap://bounces:wrong@" + plain.addr + "/INBOX?tls=none", wantErr: "login as bounces"},
		{name: "xoauth2 file", url: "imap://bounces@" + plain.addr + "/INBOX?tls=none&auth=xoauth2&token_file=" + tokFile},
		{name: "oauthbearer command", url: "imap://bounces@" + plain.addr + "/INBOX?tls=none&auth=oauthbearer&token_command=echo+tok-123"},
		{name: "xoauth2 bad token", url: "imap://bounces@" + plain.addr + "/INBOX?tls=none&auth=xoauth2&token_command=echo+nope", wantErr: "login as bounces"},
		{name: "imaps custom CA", url: "imaps://bounces:secret@" + implicit.addr + "/INBOX", ca: ca},
		{name: "imaps unknown CA", url: "imaps://bounces:secret@" + implicit.addr + "/INBOX", wantErr: "certificate"},
		{name: "starttls custom CA", url: "imap://bounces:secret@" + starttls.addr + "/INBOX", ca: ca2},
		{name: "starttls wrong CA", url: "imap://bounces:secret@" + starttls.addr + "/INBOX", ca: ca, wantErr: "certificate"},
		{name: "starttls missing", url: "imap://bounces:secret@" + plain.addr + "/INBOX", wantErr: "STARTTLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMailboxURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if tt.ca != "" {
				m.CAFile = tt.ca
			}
			if err := m.finish(); err != nil {
				t.Fatal(err)
			}
			c, err := Dial(t.Context(), &m, 5*time.Second, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Dial(%s) error = %v, want %q", tt.name, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "tok-123") {
					t.Errorf("Dial error %q shows a secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial(%s) = %v", tt.name, err)
			}
			defer c.Close()
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Errorf("select after login: %v", err)
			}
		})
	}
}

// A server that accepts the connection but never speaks is given up on
// within the timeout.
func TestDialTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	m, _ := ParseMailboxURL("imap://b:p@" + ln.Addr().String() + "/INBOX?tls=none")
	m.finish()
	start := time.Now()
	_, err = Dial(t.Context(), &m, 500*time.Millisecond, nil)
	if err == nil {
		t.Fatal("Dial to a silent server succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Dial gave up after %v, want about 0.5s", d)
	}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
