package explain

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
)

// fixtures is the classifier's own corpus of messages.
const fixtures = "../../../../classify/testdata"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// server starts h on a loopback port.
func server(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// decodeNDJSON decodes the API's answer strictly: unknown fields fail.
func decodeNDJSON(t *testing.T, body string) []classify.Record {
	t.Helper()
	var recs []classify.Record
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var rec classify.Record
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("decode line %q: %v", sc.Text(), err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// The API answers, for every fixture of the classifier, exactly the records
// classify gives (the objects of bouncer parse --json), without "file".
func TestAPIAnswersTheRecordsOfClassify(t *testing.T) {
	t.Parallel()
	c := classify.New(classify.Options{})
	srv := server(t, New(c, nil, Options{}))
	paths, err := filepath.Glob(filepath.Join(fixtures, "*.eml"))
	if err != nil || len(paths) < 10 {
		t.Fatalf("fixtures: %d found, %v", len(paths), err)
	}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := do(t, newRequest(t, "POST", srv.URL+"/api/v1/parse", bytes.NewReader(raw)))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson; charset=utf-8" {
			t.Errorf("POST /api/v1/parse %s = %d %s, want 200 NDJSON", filepath.Base(p), resp.StatusCode, resp.Header.Get("Content-Type"))
			continue
		}
		if strings.Contains(body, `"file"`) {
			t.Errorf("POST /api/v1/parse %s: answer has a file field: %s", filepath.Base(p), body)
		}
		got := decodeNDJSON(t, body)
		want := c.Records(raw)
		if !reflect.DeepEqual(got, want) {
			wj, _ := json.Marshal(want)
			t.Errorf("POST /api/v1/parse %s = %s, want %s", filepath.Base(p), body, wj)
		}
	}
}

func TestAPIRejects(t *testing.T) {
	t.Parallel()
	srv := server(t, New(classify.New(classify.Options{}), nil, Options{MaxBody: 1024}))
	big := bytes.Repeat([]byte("Subject: x\n"), 200)
	for _, tc := range []struct {
		name   string
		method string
		body   io.Reader
		want   int
	}{
		{"empty body", "POST", strings.NewReader(""), 400},
		{"blank body", "POST", strings.NewReader("\r\n \n"), 400},
		{"too large, length known", "POST", bytes.NewReader(big), 413},
		{"too large, streamed", "POST", io.MultiReader(bytes.NewReader(big)), 413},
		{"GET", "GET", nil, 405},
		{"PUT", "PUT", strings.NewReader("x"), 405},
	} {
		resp, body := do(t, newRequest(t, tc.method, srv.URL+"/api/v1/parse", tc.body))
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s /api/v1/parse = %d %q, want %d", tc.name, tc.method, resp.StatusCode, body, tc.want)
			continue
		}
		if tc.want == 405 {
			if resp.Header.Get("Allow") != "POST" {
				t.Errorf("%s: Allow = %q, want POST", tc.name, resp.Header.Get("Allow"))
			}
			continue
		}
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
			t.Errorf("%s: body %q is not a JSON error (%v)", tc.name, body, err)
		}
	}
}

// postForm posts the page's form as a browser does: multipart, with the
// pasted text and, when fileName is set, a file.
func postForm(t *testing.T, url, text, fileName string, file []byte) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("message", text)
	fw, _ := mw.CreateFormFile("file", fileName)
	_, _ = fw.Write(file)
	_ = mw.Close()
	req := newRequest(t, "POST", url, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return req
}

// wantExplained checks that the page shows what classify says of the
// message's records.
func wantExplained(t *testing.T, what, page string, recs []classify.Record) {
	t.Helper()
	for i := range recs {
		rec := &recs[i]
		e := classify.Explain(rec)
		wants := []string{e.What, e.Todo}
		if rec.Error != "" {
			// The error quotes the message's bytes, which the page shows
			// as valid UTF-8.
			wants = []string{"This is not a mail message bouncer can read (classify: ", "Paste the whole message, headers included"}
		}
		if rec.Bounce {
			wants = append(wants, string(rec.Category), string(e.Fault), rec.Rule, rec.Status)
		}
		for _, w := range wants {
			if !strings.Contains(page, html.EscapeString(w)) {
				t.Errorf("%s: page lacks %q", what, w)
			}
		}
	}
}

func TestPageExplains(t *testing.T) {
	t.Parallel()
	c := classify.New(classify.Options{})
	srv := server(t, New(c, nil, Options{}))

	relay := readFixture(t, "relay_denied-seed-autoreply.eml")
	resp, page := do(t, postForm(t, srv.URL+"/", string(relay), "", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("POST / (pasted relay_denied bounce) = %d, want 200:\n%s", resp.StatusCode, page)
	}
	recs := c.Records(relay)
	wantExplained(t, "pasted relay_denied", page, recs)
	// classify's own words for the suppression decision and the note on
	// bounces of auto-replies.
	for _, words := range []string{classify.SuppressWords(&recs[0]), classify.AutoReplyNote} {
		if !strings.Contains(page, html.EscapeString(words)) {
			t.Errorf("page lacks classify's words %q", words)
		}
	}
	if !strings.Contains(page, "553") {
		t.Errorf("page lacks the SMTP code 553")
	}

	// An uploaded file wins over the textarea.
	multi := readFixture(t, "multi-mixed-dsn.eml")
	resp, page = do(t, postForm(t, srv.URL+"/", "ignored", "multi.eml", multi))
	if resp.StatusCode != 200 || !strings.Contains(page, "multi.eml") {
		t.Fatalf("POST / (uploaded multi-recipient DSN) = %d, want 200 naming the file", resp.StatusCode)
	}
	recs = c.Records(multi)
	if len(recs) < 2 {
		t.Fatalf("fixture multi-mixed-dsn gives %d records, want several", len(recs))
	}
	wantExplained(t, "uploaded multi-recipient DSN", page, recs)
	if n := strings.Count(page, `<article class="result`); n != len(recs) {
		t.Errorf("page shows %d results, want %d", n, len(recs))
	}

	// Not a bounce, and a message that cannot be read.
	for _, name := range []string{"not_bounce-human-reply.eml", "auto_reply-vacation.eml", "hostile-no-header.eml"} {
		raw := readFixture(t, name)
		resp, page := do(t, postForm(t, srv.URL+"/", string(raw), "", nil))
		if resp.StatusCode != 200 {
			t.Errorf("POST / (%s) = %d, want 200", name, resp.StatusCode)
		}
		wantExplained(t, name, page, c.Records(raw))
	}

	// Pasted text that is no message: said so, with how to paste one; no
	// colour of a verdict, no advice about a quarantine folder.
	resp, page = do(t, postForm(t, srv.URL+"/", "asdf qwerty, not a message at all", "", nil))
	if resp.StatusCode != 200 || !strings.Contains(page, `<article class="result unreadable"`) ||
		!strings.Contains(page, "not a mail message bouncer can read") {
		t.Errorf("POST / (garbage) = %d, want 200 and an unreadable result:\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, "result fault-") || strings.Contains(strings.ToLower(page), "quarantine") {
		t.Errorf("POST / (garbage): the page shows a verdict's colour or quarantine advice:\n%s", page)
	}

	// An urlencoded form (no enctype, or curl -d) works too.
	req := newRequest(t, "POST", srv.URL+"/", strings.NewReader(url.Values{"message": {string(relay)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, page = do(t, req)
	if resp.StatusCode != 200 || !strings.Contains(page, "relay_denied") {
		t.Errorf("POST / urlencoded = %d, want 200 with relay_denied", resp.StatusCode)
	}
}

func TestPageLimits(t *testing.T) {
	t.Parallel()
	srv := server(t, New(classify.New(classify.Options{}), nil, Options{MaxBody: 4096}))

	resp, page := do(t, postForm(t, srv.URL+"/", "  \r\n", "", nil))
	if resp.StatusCode != 400 || !strings.Contains(page, "Nothing to explain yet") {
		t.Errorf("POST / (empty) = %d, want 400 with a friendly message:\n%s", resp.StatusCode, page)
	}
	resp, page = do(t, postForm(t, srv.URL+"/", strings.Repeat("x", 5000), "", nil))
	if resp.StatusCode != 413 || !strings.Contains(page, "larger than this server accepts (4 KiB)") {
		t.Errorf("POST / (5000 bytes, limit 4 KiB) = %d, want 413 with the limit named:\n%s", resp.StatusCode, page)
	}
	req := postForm(t, srv.URL+"/", strings.Repeat("x", 5000), "", nil)
	req.ContentLength = -1 // streamed: the limit is found while reading
	req.Body = io.NopCloser(io.MultiReader(req.Body))
	if resp, _ := do(t, req); resp.StatusCode != 413 {
		t.Errorf("POST / (5000 bytes streamed) = %d, want 413", resp.StatusCode)
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"PUT", "/", "GET, HEAD, POST"},
		{"DELETE", "/lookup", "GET, HEAD"},
		{"GET", "/login", "POST"},
	} {
		resp, _ := do(t, newRequest(t, tc.method, srv.URL+tc.path, nil))
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s = %d (Allow %q), want 405 (Allow %q)", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow)
		}
	}
	if resp, _ := do(t, newRequest(t, "GET", srv.URL+"/nothing-here", nil)); resp.StatusCode != 404 {
		t.Errorf("GET /nothing-here = %d, want 404", resp.StatusCode)
	}
}

// Hostile text is shown as text, in the textarea and in the results.
func TestPageEscapes(t *testing.T) {
	t.Parallel()
	srv := server(t, New(classify.New(classify.Options{}), nil, Options{}))
	msg := "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\n\r\n" +
		"</textarea><script>alert(1)</script>\r\n<x@remote.example>: host mx.remote.example said: " +
		"550 5.1.1 <img src=x onerror=alert(2)> User unknown (in reply to RCPT TO command)\r\n"
	resp, page := do(t, postForm(t, srv.URL+"/", msg, "", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("POST / = %d, want 200", resp.StatusCode)
	}
	for _, bad := range []string{"<script>", "<img", "</textarea><"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("page does not show the pasted text back, escaped")
	}
}

var styleRE = regexp.MustCompile(`(?s)<style>(.*?)</style>`)

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	srv := server(t, New(classify.New(classify.Options{}), nil, Options{}))
	for _, path := range []string{"/", "/api/v1/parse", "/nothing-here"} {
		resp, body := do(t, newRequest(t, "GET", srv.URL+path, nil))
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "http") || strings.Contains(csp, "*") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q allows outside or unsafe sources", path, csp)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
			"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
			if h.Get(k) != v {
				t.Errorf("GET %s: %s = %q, want %q", path, k, h.Get(k), v)
			}
		}
		if path != "/" {
			continue
		}
		// The inline style sheet is allowed by its hash, and is the only
		// thing the page loads: no scripts, no outside URLs.
		m := styleRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("GET /: no <style> element")
		}
		sum := sha256.Sum256([]byte(m[1]))
		if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
			t.Errorf("GET /: CSP %q does not allow the page's style sheet (%s)", csp, want)
		}
		for _, bad := range []string{"<script", "src=", `href="http`, "<link", "@import", "url("} {
			if strings.Contains(body, bad) {
				t.Errorf("GET /: page contains %q", bad)
			}
		}
	}
}

// Mounted beside the worker's routes, each keeps its own.
func TestRegisterBesideOtherRoutes(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "# metrics") })
	New(classify.New(classify.Options{}), nil, Options{}).Register(mux)
	srv := server(t, mux)
	for _, tc := range []struct {
		method, path string
		body         io.Reader
		code         int
		want         string
	}{
		{"GET", "/healthz", nil, 200, "ok"},
		{"GET", "/metrics", nil, 200, "# metrics"},
		{"GET", "/", nil, 200, "Explain a bounce"},
		{"POST", "/api/v1/parse", bytes.NewReader(readFixture(t, "mailbox_unknown-postfix.eml")), 200, `"category":"mailbox_unknown"`},
		{"GET", "/lookup?address=a@b.example", nil, 200, "needs a database"},
		{"GET", "/api/v1/parse", nil, 405, ""},
	} {
		resp, body := do(t, newRequest(t, tc.method, srv.URL+tc.path, tc.body))
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s = %d %.80q, want %d with %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.want)
		}
	}
}
