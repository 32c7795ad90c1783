package main

import (
	"crypto/tls"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// natsAuth returns the NATS options of the environment: a credentials file
// (NATS_CREDS_FILE, a JWT and NKey seed as `nsc` writes them), an NKey seed
// file (NATS_NKEY_FILE), the CAs trusted for TLS (NATS_TLS_CA) and a
// client certificate (NATS_TLS_CERT and NATS_TLS_KEY). A user
// and password (nats://USER:PASSWORD@HOST) or a token (nats://TOKEN@HOST)
// come in NATS_URL itself; tls:// URLs, or a server that requires TLS,
// are verified against the system pool or NATS_TLS_CA. Each file is
// checked here so that a wrong path is a usage error at start, not a
// reconnect loop.
func natsAuth(getenv func(string) string) ([]nats.Option, error) {
	var opts []nats.Option
	readable := func(name, path string) error {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s=%s: %v (want a readable file)", name, path, err)
		}
		return nil
	}
	if f := getenv("NATS_CREDS_FILE"); f != "" {
		if err := readable("NATS_CREDS_FILE", f); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(f))
	}
	if f := getenv("NATS_NKEY_FILE"); f != "" {
		if getenv("NATS_CREDS_FILE") != "" {
			return nil, fmt.Errorf("NATS_NKEY_FILE and NATS_CREDS_FILE are both set (want one: a creds file holds its own NKey)")
		}
		o, err := nats.NkeyOptionFromSeed(f)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY_FILE=%s: %v (want a file holding an NKey user seed, SU...)", f, err)
		}
		opts = append(opts, o)
	}
	if f := getenv("NATS_TLS_CA"); f != "" {
		if err := readable("NATS_TLS_CA", f); err != nil {
			return nil, err
		}
		opts = append(opts, nats.RootCAs(f))
	}
	o, err := natsClientCert(getenv("NATS_TLS_CERT"), getenv("NATS_TLS_KEY"))
	if err != nil {
		return nil, err
	}
	if o != nil {
		opts = append(opts, o)
	}
	return opts, nil
}

// natsClientCert returns the option presenting the client certificate in
// cert with its private key in key (PEM files), for a server that verifies
// its clients (nats-server's "verify: true"); nil when neither is set.
func natsClientCert(cert, key string) (nats.Option, error) {
	switch {
	case cert == "" && key == "":
		return nil, nil
	case cert == "" || key == "":
		return nil, fmt.Errorf("NATS_TLS_CERT and NATS_TLS_KEY: one is set without the other (want both, or neither)")
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		return nil, fmt.Errorf("NATS_TLS_CERT=%s, NATS_TLS_KEY=%s: %v (want a PEM certificate and its private key)", cert, key, err)
	}
	return nats.ClientCert(cert, key), nil
}
