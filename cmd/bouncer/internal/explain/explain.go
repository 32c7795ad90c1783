// Package explain serves bouncer's explain page and its JSON API over HTTP,
// for `bouncer serve` and beside /metrics in `bouncer run`.
//
// Routes:
//
//	GET  /                 the page: paste a bounce or upload an .eml file
//	POST /                 the page's form (multipart/form-data or urlencoded:
//	                       field "message" for pasted text, "file" for a file)
//	POST /api/v1/parse     the raw message as the body; answers NDJSON, one
//	                       classify.Record per line: the objects `bouncer
//	                       parse --json -` prints, without the "file" field
//	GET  /lookup?address=  an address's suppressions and bounce history, when
//	                       a database is configured
//	/suppressions...       the suppressions page: search, evidence, undo and
//	                       bulk undo (see suppressions.go), with a database
//	POST /login, /logout   the page's token session (see Options.Token)
//
// The page is plain HTML from an embed.FS, rendered with html/template; it
// needs no JavaScript and loads nothing from elsewhere. The wording of every
// explanation is classify's (classify.Explain, classify.WriteExplanation).
//
// Access: with a token configured, every route but /login and /logout needs
// it: as "Authorization: Bearer TOKEN" (API and page), or for a browser as
// the session cookie set by the login form or by opening any page with
// ?token=TOKEN once (the answer is a redirect that drops it from the URL).
// The cookie holds an HMAC of the token, never the token. Without a token
// (allowed only on a loopback address, see CheckListen) requests must name
// a loopback host, which keeps DNS-rebinding pages out. Unsafe cross-origin
// browser requests are refused (http.CrossOriginProtection).
package explain

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/internal/secretenv"
	"github.com/bouncer-mail/bouncer/store"
)

// DefaultAddr is where `bouncer serve` listens when neither --addr nor
// BOUNCER_HTTP_ADDR says: loopback, so no token is needed.
const DefaultAddr = "127.0.0.1:8080"

// DefaultMaxBody is the largest request body accepted when Options.MaxBody
// is zero: a message with attachments fits, a flood does not.
const DefaultMaxBody = 10 << 20

// Options configure a Handler. The zero value is usable: no token, no
// logging, DefaultMaxBody.
type Options struct {
	// Token, when not empty, is required on every request (see the package
	// documentation). It must be set when the server listens beyond
	// loopback: see CheckListen.
	Token string
	// Logger receives database errors and the like. Default: discard.
	Logger *slog.Logger
	// MaxBody is the largest request body in bytes (default DefaultMaxBody).
	// A larger one is answered 413.
	MaxBody int64
	// Records, when set, classifies a message instead of the
	// Classifier's Records: bouncer's own, which with VERP keys says
	// whether each bounce is verified.
	Records func(raw []byte) []classify.Record
}

// Handler serves the explain page and the API. It is safe for concurrent
// use.
type Handler struct {
	c    *classify.Classifier
	recs func(raw []byte) []classify.Record
	db   *store.DB // nil: no address lookup
	log  *slog.Logger
	max  int64
	auth auth
	csp  string
	next http.Handler // the routes behind the checks
	cop  *http.CrossOriginProtection
}

// New returns the handler. c nil means classify's defaults. db may be nil:
// the page then says that address lookup needs a database. It returns the
// concrete type, which is an http.Handler; Register mounts it beside other
// routes.
func New(c *classify.Classifier, db *store.DB, opts Options) *Handler {
	if c == nil {
		c = classify.New(classify.Options{})
	}
	h := &Handler{c: c, db: db, log: opts.Logger, max: opts.MaxBody, recs: opts.Records}
	if h.recs == nil {
		h.recs = c.Records
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.max <= 0 {
		h.max = DefaultMaxBody
	}
	h.auth = newAuth(opts.Token)
	h.csp = "default-src 'none'; style-src '" + styleHash + "'; form-action 'self'; " +
		"frame-ancestors 'none'; base-uri 'none'"

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.page)
	mux.HandleFunc("POST /{$}", h.submit)
	mux.HandleFunc("POST /api/v1/parse", h.api)
	mux.HandleFunc("GET /lookup", h.lookup)
	mux.HandleFunc("GET /suppressions", h.suppressions)
	mux.HandleFunc("GET /suppressions/{id}", h.suppression)
	mux.HandleFunc("POST /suppressions/{id}/undo", h.undo)
	mux.HandleFunc("GET /suppressions/undo", h.bulkPreviewPage)
	mux.HandleFunc("POST /suppressions/undo", h.bulkUndo)
	mux.HandleFunc("POST /login", h.login)
	mux.HandleFunc("POST /logout", h.logout)
	h.cop = http.NewCrossOriginProtection()
	h.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusForbidden, "Cross-origin request refused: submit the form from bouncer's own page.")
	}))
	h.next = h.cop.Handler(mux)
	return h
}

// Paths are the URL paths Handler answers, as http.ServeMux patterns
// without a method: Register mounts them, and Handler answers every method
// itself (405 for the wrong one).
var Paths = []string{"/{$}", "/api/v1/parse", "/lookup", "/login", "/logout",
	"/suppressions", "/suppressions/{id}", "/suppressions/{id}/undo", "/suppressions/undo"}

// Register mounts h on mux at Paths, beside whatever else mux serves
// (/metrics, /healthz, /readyz in `bouncer run`).
func (h *Handler) Register(mux *http.ServeMux) {
	for _, p := range Paths {
		mux.Handle(p, h)
	}
}

// ServeHTTP sets the security headers, checks access and serves the route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.guard(w, r, h.next)
}

// guard sets the security headers and checks access (loopback host
// without a token, the token otherwise), then serves r with next.
func (h *Handler) guard(w http.ResponseWriter, r *http.Request, next http.Handler) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	// Pages show addresses and bounce history: keep them out of caches.
	hd.Set("Cache-Control", "no-store")

	if !h.auth.enabled() && !loopbackHost(r.Host) {
		// Without a token the server is on loopback, so a browser that
		// reached it under another name was sent by a DNS-rebinding page.
		h.fail(w, r, http.StatusMisdirectedRequest, "Without a token bouncer answers only to localhost or a loopback address; open it as http://127.0.0.1:PORT/ or configure BOUNCER_HTTP_TOKEN.")
		return
	}
	if r.URL.Path == "/login" || r.URL.Path == "/logout" {
		next.ServeHTTP(w, r)
		return
	}
	switch ok, tokenInURL := h.auth.check(r); {
	case ok && tokenInURL && r.Method == http.MethodGet:
		// Opened with ?token=: keep a session and drop the token from the
		// address bar, the history and later Referer headers.
		h.auth.setCookie(w, r)
		q := r.URL.Query()
		q.Del("token")
		u := *r.URL
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
		return
	case !ok:
		if isAPI(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bouncer"`)
		}
		msg := "This bouncer needs its access token."
		if tokenInURL || r.Header.Get("Authorization") != "" {
			msg = "Wrong token."
		}
		h.fail(w, r, http.StatusUnauthorized, msg)
		return
	}
	next.ServeHTTP(w, r)
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// fail answers an error: JSON {"error": ...} for the API, the page with
// the message otherwise (the login form for a 401).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if isAPI(r) {
		writeJSONError(w, code, msg)
		return
	}
	p := h.newPage(r)
	p.Error = msg
	p.NeedLogin = code == http.StatusUnauthorized
	h.render(w, code, p)
}

// readBody reads r's body, at most h.max bytes. tooLarge reports a body
// over the limit; it is answered 413 by the caller.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (b []byte, tooLarge bool, err error) {
	if r.ContentLength > h.max {
		return nil, true, nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.max)
	b, err = io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, true, nil
	}
	return b, false, err
}

func (h *Handler) tooLargeText() string {
	return fmt.Sprintf("The message is larger than this server accepts (%s). Send a smaller one, or classify it with `bouncer parse FILE`.", sizeText(h.max))
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// auth holds the token rules. The token itself is kept only as a hash, so
// comparisons take the same time whatever the input's length.
type auth struct {
	sum     [32]byte // sha256 of the token; zero: no token
	session string   // the session cookie's value
}

const (
	cookieName = "bouncer_session"
	cookieAge  = 12 * time.Hour
)

func newAuth(token string) auth {
	if token == "" {
		return auth{}
	}
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("bouncer explain session v1"))
	return auth{sum: sha256.Sum256([]byte(token)), session: hex.EncodeToString(mac.Sum(nil))}
}

func (a *auth) enabled() bool { return a.session != "" }

// match reports, in constant time, whether s is the token.
func (a *auth) match(s string) bool {
	got := sha256.Sum256([]byte(s))
	return subtle.ConstantTimeCompare(got[:], a.sum[:]) == 1
}

// check reports whether r carries the token (Bearer, the session cookie or,
// for a page, ?token=), and whether it came in the URL. The API takes the
// token only as Bearer: URLs end up in logs.
func (a *auth) check(r *http.Request) (ok, tokenInURL bool) {
	if !a.enabled() {
		return true, false
	}
	if t := r.URL.Query().Get("token"); t != "" && r.Method == http.MethodGet && !isAPI(r) {
		return a.match(t), true
	}
	if v, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found {
		return a.match(strings.TrimSpace(v)), false
	}
	if c, err := r.Cookie(cookieName); err == nil {
		return subtle.ConstantTimeCompare([]byte(c.Value), []byte(a.session)) == 1, false
	}
	return false, false
}

func (a *auth) setCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: a.session, Path: "/",
		MaxAge: int(cookieAge / time.Second), HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

// login checks the login form's token and starts a session.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if !h.auth.enabled() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	err := r.ParseForm()
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		h.fail(w, r, http.StatusRequestEntityTooLarge, "The login form is larger than 64 KiB.")
		return
	}
	if err != nil || !h.auth.match(strings.TrimSpace(r.PostForm.Get("token"))) {
		h.fail(w, r, http.StatusUnauthorized, "Wrong token.")
		return
	}
	h.auth.setCookie(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// ErrTokenRequired is returned by CheckListen for an address beyond
// loopback without a token.
var ErrTokenRequired = errors.New("explain: a token is required when listening beyond loopback (set BOUNCER_HTTP_TOKEN or BOUNCER_HTTP_TOKEN_FILE)")

// MinTokenLength is the shortest token accepted: long enough that guessing
// it over HTTP is hopeless.
const MinTokenLength = 16

// CheckListen checks the token rules for a server listening on addr (as
// given to net.Listen): beyond loopback a token is required, and a token,
// when given, must be at least MinTokenLength bytes.
func CheckListen(addr, token string) error {
	if token != "" && len(token) < MinTokenLength {
		return fmt.Errorf("explain: the token is %d bytes, want at least %d (e.g. openssl rand -hex 24)", len(token), MinTokenLength)
	}
	if token == "" && !Loopback(addr) {
		return fmt.Errorf("%w; %s is not a loopback address", ErrTokenRequired, addr)
	}
	return nil
}

// Loopback reports whether a server listening on addr (host:port) can be
// reached from this machine only: the host is "localhost" or a loopback IP.
// An empty host (":8080") listens on every interface; any other name may
// resolve anywhere, so it counts as beyond loopback.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return isLoopbackName(host)
}

// loopbackHost reports whether a request's Host names this machine.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	// Browsers resolve every *.localhost name to loopback (RFC 6761 §6.3).
	return isLoopbackName(host) || strings.HasSuffix(host, ".localhost")
}

func isLoopbackName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true // RFC 6761 §6.3
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadToken returns the access token from the configuration: the file
// tokenFile when not empty (a flag), else the file named by
// BOUNCER_HTTP_TOKEN_FILE, else BOUNCER_HTTP_TOKEN; "" when none is set.
// Surrounding white space (a file's final newline) is not part of it.
// Setting both variables is an error: one of them would be ignored.
func LoadToken(getenv func(string) string, tokenFile string) (string, error) {
	var t string
	var err error
	if tokenFile != "" {
		t, err = secretenv.File(tokenFile, "token file")
	} else {
		t, err = secretenv.Read(getenv, "BOUNCER_HTTP_TOKEN", "token file")
	}
	if err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	return t, nil
}
