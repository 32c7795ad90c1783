package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !ready {
			http.Error(w, "mailbox bounces: connecting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	check := func(args ...string) error {
		var out bytes.Buffer
		e := &env{stdout: &out, stderr: &out, getenv: func(k string) string {
			if k == "BOUNCER_HTTP_ADDR" {
				return addr
			}
			return ""
		}}
		return run(t.Context(), e, append([]string{"healthcheck"}, args...))
	}
	if err := check(); err != nil {
		t.Errorf("healthcheck (BOUNCER_HTTP_ADDR, ready) = %v, want nil", err)
	}
	ready = false
	if err := check(srv.URL + "/readyz"); err == nil || !strings.Contains(err.Error(), "connecting") {
		t.Errorf("healthcheck (not ready) = %v, want the server's reason", err)
	}
	if err := check("http://127.0.0.1:1/readyz"); err == nil || errors.Is(err, errUsage) {
		t.Errorf("healthcheck (nothing listening) = %v, want a failure that is not a usage error", err)
	}
	if err := check("a", "b"); !errors.Is(err, errUsage) {
		t.Errorf("healthcheck a b = %v, want a usage error", err)
	}
	for in, want := range map[string]string{"": "127.0.0.1:8080", "0.0.0.0:8080": "127.0.0.1:8080", ":9000": "127.0.0.1:9000", "[::]:8080": "127.0.0.1:8080", "10.0.0.5:80": "10.0.0.5:80"} {
		if got := probeAddr(in); got != want {
			t.Errorf("probeAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
