package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/explain"
)

// The HTTP server of run, serve and demo, on a real listener: every
// timeout and the header limit set; a client that never finishes its
// headers is cut off; oversize headers get 431, oversize bodies 413.
func TestHTTPServerLimits(t *testing.T) {
	const token = "tok-123456"
	mux := http.NewServeMux()
	explain.New(classify.New(classify.Options{}), nil, explain.Options{Token: token}).Register(mux)
	srv := newHTTPServer(mux, nil)
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout} {
		if d <= 0 || d > 2*time.Minute {
			t.Errorf("newHTTPServer().%s = %v, want in (0, 2m]", name, d)
		}
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Errorf("newHTTPServer().MaxHeaderBytes = %d, want in (0, 1 MiB]", srv.MaxHeaderBytes)
	}
	srv.ReadHeaderTimeout = 300 * time.Millisecond // the slow loris below waits this long, not 10s
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()

	t.Run("slow loris", func(t *testing.T) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a") // and never the end of the headers
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(c)
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a request with unfinished headers still open after %v, want closed after ReadHeaderTimeout %v", time.Since(start), srv.ReadHeaderTimeout)
		}
	})
	t.Run("oversize header", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 2*httpMaxHeaderBytes))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("GET / with a %d-byte header = %d, want 431", 2*httpMaxHeaderBytes, resp.StatusCode)
		}
	})
	t.Run("oversize body", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), explain.DefaultMaxBody+1)
		// Streamed: no Content-Length, so the limit is the reader's.
		req, _ := http.NewRequest("POST", base+"/api/v1/parse", io.MultiReader(bytes.NewReader(big)))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "larger than 10 MiB") {
			t.Errorf("POST /api/v1/parse (%d bytes streamed) = %d %q, want 413 naming the limit", len(big), resp.StatusCode, body)
		}
	})
	t.Run("oversize login form", func(t *testing.T) {
		form := url.Values{"token": {strings.Repeat("t", 100<<10)}}.Encode()
		resp, err := http.Post(base+"/login", "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("POST /login (%d bytes) = %d, want 413", len(form), resp.StatusCode)
		}
	})
}
