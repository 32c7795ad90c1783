package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealthcheck probes a health URL: exit 0 on a 2xx answer. It exists for
// images without a shell or an HTTP client (the distroless bouncer image):
// `bouncer healthcheck` in a Docker HEALTHCHECK or a compose healthcheck.
func runHealthcheck(ctx context.Context, e *env, args []string) error {
	fl := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fl.SetOutput(e.stderr)
	timeout := fl.Duration("timeout", 5*time.Second, "give up after this long")
	fl.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: bouncer healthcheck [--timeout 5s] [URL]")
		fmt.Fprintln(e.stderr, "GETs URL (default http://BOUNCER_HTTP_ADDR/readyz) and exits 0 on a 2xx answer.")
		fl.PrintDefaults()
	}
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	if fl.NArg() > 1 {
		return fmt.Errorf("%w: healthcheck takes at most one URL, got %d arguments", errUsage, fl.NArg())
	}
	url := fl.Arg(0)
	if url == "" {
		url = "http://" + probeAddr(e.getenv("BOUNCER_HTTP_ADDR")) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return fmt.Errorf("%w: healthcheck: %q is not an HTTP URL (want http://HOST:PORT/PATH)", errUsage, url)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("healthcheck: %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// probeAddr turns a listen address into one to connect to: an empty or
// unspecified host means this host.
func probeAddr(listen string) string {
	if listen == "" {
		return "127.0.0.1:8080"
	}
	host, port, ok := strings.Cut(listen, ":")
	if i := strings.LastIndexByte(listen, ':'); i >= 0 {
		host, port, ok = listen[:i], listen[i+1:], true
	}
	if !ok {
		return listen
	}
	switch host {
	case "", "0.0.0.0", "[::]", "::":
		host = "127.0.0.1"
	}
	return host + ":" + port
}
