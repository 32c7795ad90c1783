package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// startAuthNATS runs a nats-server on loopback that requires the login
// opts sets (user/password, token or NKeys), and returns its host:port.
func startAuthNATS(t *testing.T, set func(*natsserver.Options)) string {
	t.Helper()
	o := &natsserver.Options{Host: "127.0.0.1", Port: wt.FreePort(t), NoSigs: true, NoLog: true}
	set(o)
	srv, err := natsserver.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return srv.Addr().String()
}

// NATS logins bouncer supports, each against an embedded nats-server that
// requires it: user and password in NATS_URL, a token in NATS_URL, an
// NKey seed in NATS_NKEY_FILE; the wrong secret is refused.
func TestNATSAuth(t *testing.T) {
	userPW := startAuthNATS(t, func(o *natsserver.Options) { o.Username, o.Password = "bouncer", "nats-pw-1" })
	token := startAuthNATS(t, func(o *natsserver.Options) { o.Authorization = "nats-token-1" })
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	nkey := startAuthNATS(t, func(o *natsserver.Options) { o.Nkeys = []*natsserver.NkeyUser{{Nkey: pub}} })
	for _, tc := range []struct {
		name, url string
		env       map[string]string
		ok        bool
	}{
		{"user and password", "nats://bouncer:nats-pw-1@" + userPW, nil, true},
		{"wrong password", "nats://bouncer:wrong@" + userPW, nil, false},
		{"no password", "nats://" + userPW, nil, false},
		{"token", "nats://nats-token-1@" + token, nil, true},
		{"wrong token", "nats://other@" + token, nil, false},
		{"nkey seed file", "nats://" + nkey, map[string]string{"NATS_NKEY_FILE": seedFile}, true},
		{"no nkey", "nats://" + nkey, nil, false},
	} {
		opts, err := natsAuth(func(k string) string { return tc.env[k] })
		if err != nil {
			t.Fatalf("%s: natsAuth = %v", tc.name, err)
		}
		nc, err := nats.Connect(tc.url, append(opts, nats.Timeout(5*time.Second))...)
		if err == nil {
			nc.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: nats.Connect(%s) error = %v, want ok %v", tc.name, redactDB(tc.url), err, tc.ok)
		}
	}
}

// A wrong NATS file is a usage error at start naming the variable.
func TestNATSAuthBadFiles(t *testing.T) {
	notSeed := filepath.Join(t.TempDir(), "not-a-seed")
	if err := os.WriteFile(notSeed, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"NATS_CREDS_FILE": "/nonexistent/x.creds"}, "NATS_CREDS_FILE=/nonexistent/x.creds"},
		{map[string]string{"NATS_TLS_CA": "/nonexistent/ca.pem"}, "NATS_TLS_CA=/nonexistent/ca.pem"},
		{map[string]string{"NATS_NKEY_FILE": notSeed}, "NATS_NKEY_FILE=" + notSeed},
		{map[string]string{"NATS_NKEY_FILE": notSeed, "NATS_CREDS_FILE": notSeed}, "both set"},
	} {
		_, err := natsAuth(func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("natsAuth(%v) = %v, want an error with %q", tc.env, err, tc.want)
		}
	}
}
