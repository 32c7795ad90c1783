package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/api"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/explain"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

const (
	testToken = "api-test-token-0123456789abcdef"
	testKey   = "erasure-key-for-tests-0123456789"
)

// fixture is a real bouncer HTTP stack (the explain page's checks, the
// API) on a fresh migrated database; every answer it gets is validated
// against the OpenAPI document.
type fixture struct {
	t      *testing.T
	db     *store.DB
	dbURL  string
	url    string
	router routers.Router
	doc    *openapi3.T
	c      *pgx.Conn
}

var registerNDJSON sync.Once

func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

func newFixture(t *testing.T, erasureKey string) *fixture {
	t.Helper()
	registerNDJSON.Do(func() { openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.PlainBodyDecoder) })
	opts := store.Options{}
	if erasureKey != "" {
		opts.ErasureKey = []byte(erasureKey)
	}
	db, dbURL := storetest.Open(t, opts)
	doc := loadDoc(t)
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	ex := explain.New(classify.New(classify.Options{}), db, explain.Options{Token: testToken})
	ex.Register(mux)
	api.New(db, api.Options{Logger: slog.New(slog.NewTextHandler(tlog{t}, nil))}).Register(mux, ex.Protect)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{t: t, db: db, dbURL: dbURL, url: srv.URL, router: router, doc: doc}
}

// do sends a request with the token and returns the status and body,
// after validating the answer against the document.
func (f *fixture) do(method, path, ctype string, body []byte) (int, []byte) {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.url+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	f.validate(req, resp, b)
	return resp.StatusCode, b
}

// validate checks a response of a documented route against the document:
// its status must be declared and its body match the schema.
func (f *fixture) validate(req *http.Request, resp *http.Response, body []byte) {
	f.t.Helper()
	route, params, err := f.router.FindRoute(req)
	if err != nil {
		if resp.StatusCode == 404 || resp.StatusCode == 405 || req.URL.Path == "/api/v1/parse" {
			return // an undocumented route or method; the explain page's own route
		}
		f.t.Errorf("%s %s: not in the document: %v", req.Method, req.URL.Path, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(f.t.Context(), in); err != nil {
		f.t.Errorf("%s %s answered %d %s: does not match the document: %v", req.Method, req.URL, resp.StatusCode, body, err)
	}
}

// json sends v as JSON.
func (f *fixture) json(method, path string, v any) (int, []byte) {
	f.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.do(method, path, "application/json", b)
}

func decode[T any](t *testing.T, what string, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: decode %s: %v", what, b, err)
	}
	return v
}

func wantError(t *testing.T, what string, code int, body []byte, wantCode int, wantText string) {
	t.Helper()
	var e struct{ Error string }
	if code != wantCode || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, wantText) {
		t.Errorf("%s = %d %s, want %d and an error saying %q", what, code, body, wantCode, wantText)
	}
}

// conn is a connection to the fixture's database, closed with the test.
func (f *fixture) conn(ctx context.Context) *pgx.Conn {
	f.t.Helper()
	if f.c == nil {
		c, err := pgx.Connect(ctx, f.dbURL)
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { c.Close(context.Background()) })
		f.c = c
	}
	return f.c
}

func newDB(t *testing.T) (*store.DB, string) {
	t.Helper()
	return storetest.Open(t, store.Options{})
}

// serveAPI serves a with no access control (loopback tests of limits).
func serveAPI(t *testing.T, a *api.API) string {
	t.Helper()
	mux := http.NewServeMux()
	a.Register(mux, nil)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// tlog writes a handler's log lines to the test's log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
