package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and two client
// certificates: one it signed, one self-signed.
type testPKI struct {
	caFile, clientCert, clientKey, strangerCert, strangerKey string
	server                                                   tls.Certificate
	pool                                                     *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serial := int64(1)
	sign := func(tmpl, parent *x509.Certificate, pub, priv any) []byte {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	caKey := key()
	caTmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER := sign(caTmpl, nil, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{caFile: write("ca.pem", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)

	srvKey := key()
	srvDER := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "nats"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, &srvKey.PublicKey, caKey)
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}

	client := func(name string, parent *x509.Certificate, signer *ecdsa.PrivateKey) (string, string) {
		k := key()
		if signer == nil {
			signer = k
		}
		der := sign(&x509.Certificate{Subject: pkix.Name{CommonName: name},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, parent, &k.PublicKey, signer)
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p.clientCert, p.clientKey = client("bouncer", ca, caKey)
	p.strangerCert, p.strangerKey = client("stranger", nil, nil)
	return p
}

// With NATS_TLS_CERT and NATS_TLS_KEY, bouncer presents a client
// certificate to a nats-server that requires one signed by its CA; without
// one, or with one the CA did not sign, the server refuses it.
func TestNATSClientCert(t *testing.T) {
	pki := newTestPKI(t)
	addr := startAuthNATS(t, func(o *natsserver.Options) {
		o.TLS, o.TLSVerify, o.TLSTimeout = true, true, 5
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs: pki.pool, MinVersion: tls.VersionTLS12}
	})
	for _, tc := range []struct {
		name string
		env  map[string]string
		ok   bool
	}{
		{"client certificate", map[string]string{"NATS_TLS_CA": pki.caFile, "NATS_TLS_CERT": pki.clientCert, "NATS_TLS_KEY": pki.clientKey}, true},
		{"no client certificate", map[string]string{"NATS_TLS_CA": pki.caFile}, false},
		{"certificate of another CA", map[string]string{"NATS_TLS_CA": pki.caFile, "NATS_TLS_CERT": pki.strangerCert, "NATS_TLS_KEY": pki.strangerKey}, false},
	} {
		opts, err := natsAuth(func(k string) string { return tc.env[k] })
		if err != nil {
			t.Fatalf("%s: natsAuth = %v", tc.name, err)
		}
		nc, err := nats.Connect("tls://"+addr, append(opts, nats.Timeout(5*time.Second))...)
		if err == nil {
			nc.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: nats.Connect(tls://%s) error = %v, want ok %v", tc.name, addr, err, tc.ok)
		}
	}
}

// NATS_TLS_CERT and NATS_TLS_KEY go together, and must be a certificate
// and its key: anything else is a usage error of run and demo that names
// them.
func TestNATSClientCertUsage(t *testing.T) {
	pki := newTestPKI(t)
	dbURL := wt.NewDatabase(t)
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"NATS_TLS_CERT": pki.clientCert}, "one is set without the other"},
		{map[string]string{"NATS_TLS_KEY": pki.clientKey}, "one is set without the other"},
		{map[string]string{"NATS_TLS_CERT": pki.clientCert, "NATS_TLS_KEY": pki.strangerKey}, "NATS_TLS_CERT="},
		{map[string]string{"NATS_TLS_CERT": "/nonexistent/c.pem", "NATS_TLS_KEY": "/nonexistent/k.pem"}, "NATS_TLS_CERT="},
	} {
		for _, cmd := range []string{"run", "demo"} {
			vars := map[string]string{"DATABASE_URL": dbURL, "BOUNCER_HTTP_ADDR": "off", "BOUNCER_IMAP_URL": "imap://u:p@127.0.0.1:1/INBOX?tls=none"}
			for k, v := range tc.env {
				vars[k] = v
			}
			var out syncBuffer
			err := run(t.Context(), &env{stdout: &out, stderr: &out, getenv: func(k string) string { return vars[k] }}, []string{cmd})
			if err == nil || exitStatus(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("bouncer %s with %v = %v (exit %d), want a usage error with %q", cmd, tc.env, err, exitStatus(err), tc.want)
			}
		}
	}
}
