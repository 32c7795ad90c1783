// Package api serves bouncer's suppressions over HTTP as JSON, under
// /api/v1/: check one address or a batch, list with filters and keyset
// paging, add, remove (who and why required; list memberships put back),
// import and export CSV or NDJSON, an address's history, and the erasure
// of a person (GDPR art. 17). The routes are documented by an OpenAPI 3
// document embedded here and served at /api/v1/openapi.json; its test
// checks the document against the routes and the real answers.
//
// Access control is not this package's: Register takes the wrapper that
// applies it (the explain page's Protect: token, loopback host,
// cross-origin checks).
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/store"
)

// Limits of request bodies and batches.
const (
	// MaxBatch is the most addresses one batch check takes.
	MaxBatch = 1000
	// DefaultMaxBody bounds JSON bodies (a batch of MaxBatch long
	// addresses fits).
	DefaultMaxBody = 1 << 20
	// DefaultMaxImport bounds an import's body.
	DefaultMaxImport = 64 << 20
	// DefaultPage and store.MaxPage bound a list's page.
	DefaultPage = 100
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the embedded OpenAPI 3 document.
func OpenAPI() []byte { return openAPI }

// Options configure the API. The zero value is usable.
type Options struct {
	Logger *slog.Logger // database errors; default: discard
	// MaxBody and MaxImport bound request bodies (defaults
	// DefaultMaxBody, DefaultMaxImport); larger ones are answered 413.
	MaxBody, MaxImport int64
	// Timeout bounds one request's database work (default 30 s; exports
	// are not bounded).
	Timeout time.Duration
}

// API is the handler set. It is safe for concurrent use.
type API struct {
	db   *store.DB // nil: every route but the document answers 503
	log  *slog.Logger
	opts Options
	mux  *http.ServeMux
}

// Routes are the API's patterns, as http.ServeMux patterns; the OpenAPI
// document has exactly these.
var Routes = []string{
	"GET /api/v1/suppressions/check",
	"POST /api/v1/suppressions/check",
	"GET /api/v1/suppressions",
	"POST /api/v1/suppressions",
	"DELETE /api/v1/suppressions/{address}",
	"POST /api/v1/suppressions/import",
	"GET /api/v1/suppressions/export",
	"GET /api/v1/addresses/{address}/history",
	"DELETE /api/v1/subjects/{address}",
	"GET /api/v1/openapi.json",
}

// New returns the API over db (nil: no database; the routes say so).
func New(db *store.DB, opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.MaxImport <= 0 {
		opts.MaxImport = DefaultMaxImport
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	a := &API{db: db, log: opts.Logger, opts: opts, mux: http.NewServeMux()}
	handlers := []http.HandlerFunc{a.checkOne, a.checkBatch, a.list, a.add, a.remove,
		a.importSuppressions, a.export, a.history, a.erase, a.document}
	for i, p := range Routes {
		h := handlers[i]
		if p != "GET /api/v1/openapi.json" {
			h = a.needDB(h)
		}
		a.mux.Handle(p, h)
	}
	return a
}

// Register mounts the API on mux under /api/v1/ behind protect (which
// applies access control; nil: none). Paths under /api/v1/ that no
// handler of mux serves get a JSON 404 from here.
func (a *API) Register(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	var h http.Handler = a
	if protect != nil {
		h = protect(a)
	}
	mux.Handle("/api/v1/", h)
}

// ServeHTTP serves the route r names; an unknown path is answered 404,
// a known path with another method 405 (with Allow), both in JSON.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if _, pattern := a.mux.Handler(r); pattern != "" {
		a.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, p := a.mux.Handler(r2); p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such API route: %s (see /api/v1/openapi.json)", r.URL.Path))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
}

func (a *API) needDB(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.db == nil {
			writeError(w, http.StatusServiceUnavailable, "the suppressions API needs a database: set DATABASE_URL (or --database-url)")
			return
		}
		h(w, r)
	}
}

func (a *API) document(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}

// ctx bounds a request's database work.
func (a *API) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.opts.Timeout)
}

// errorBody is every error's JSON.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// storeError answers an error of the store: invalid input 422, nothing
// to remove 404, anything else 503 (logged; the message names no cause
// a client could act on beyond retrying).
func (a *API) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrInvalid):
		writeError(w, http.StatusUnprocessableEntity, cleanMessage(err))
	case errors.Is(err, store.ErrNotSuppressed):
		writeError(w, http.StatusNotFound, cleanMessage(err))
	case errors.Is(err, store.ErrNoErasureKey):
		writeError(w, http.StatusNotImplemented, cleanMessage(err))
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "the database did not answer in time; retry")
	default:
		a.log.Warn("api: database error", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the database is not available; retry")
	}
}

// cleanMessage is err's message without the store's package prefixes.
func cleanMessage(err error) string {
	msg := err.Error()
	for _, p := range []string{"store: invalid argument: ", "store: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}

// readJSON decodes r's body (at most max bytes) into v; it answers the
// error itself and returns false on a body too large (413) or not JSON
// of the wanted form (400).
func readJSON(w http.ResponseWriter, r *http.Request, max int64, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, max)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", max))
		return false
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "the body is empty: want a JSON object")
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "the body is not the JSON wanted: "+err.Error())
		return false
	}
	return true
}
