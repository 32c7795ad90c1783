package main

import (
	"log/slog"
	"net/http"
	"time"
)

// The limits of every HTTP server bouncer runs (`run`'s health, metrics
// and explain page, `serve`, `demo`): a client that sends its headers
// slowly (slow loris), a body slowly, or reads slowly, or keeps an idle
// connection, holds a goroutine and a descriptor only this long. Request
// bodies are limited where they are read (explain: http.MaxBytesReader,
// answered 413).
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = time.Minute // a 10 MiB upload on a slow line
	httpWriteTimeout      = time.Minute
	httpIdleTimeout       = 2 * time.Minute
	httpMaxHeaderBytes    = 64 << 10
)

// newHTTPServer is the server of h with bouncer's limits; its own errors
// (TLS handshakes, accept) go to log at Warn when log is not nil.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
	}
	if log != nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	}
	return srv
}
