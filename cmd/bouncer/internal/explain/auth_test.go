package explain

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
)

const testToken = "s3cret-token-for-tests-0123456789"

func TestToken(t *testing.T) {
	t.Parallel()
	srv := server(t, New(classify.New(classify.Options{}), nil, Options{Token: testToken}))
	bounce := readFixture(t, "mailbox_unknown-postfix.eml")

	api := func(auth string) *http.Request {
		req := newRequest(t, "POST", srv.URL+"/api/v1/parse", bytes.NewReader(bounce))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return req
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
		code int
	}{
		{"API without a token", api(""), 401},
		{"API with a wrong token", api("Bearer wrong-token-wrong-token"), 401},
		{"API with the token as Basic", api("Basic " + testToken), 401},
		{"API with ?token= (URLs get logged)", newRequest(t, "POST", srv.URL+"/api/v1/parse?token="+testToken, bytes.NewReader(bounce)), 401},
		{"API with the token", api("Bearer " + testToken), 200},
	} {
		resp, body := do(t, tc.req)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, resp.StatusCode, body, tc.code)
		}
		if tc.code == 401 && (resp.Header.Get("WWW-Authenticate") != `Bearer realm="bouncer"` || !strings.Contains(body, `"error"`)) {
			t.Errorf("%s: WWW-Authenticate %q, body %q; want a Bearer challenge and a JSON error", tc.name, resp.Header.Get("WWW-Authenticate"), body)
		}
	}

	// The page without the token: the login form, and nothing else.
	for _, path := range []string{"/", "/lookup?address=a@b.example"} {
		resp, page := do(t, newRequest(t, "GET", srv.URL+path, nil))
		if resp.StatusCode != 401 || !strings.Contains(page, `action="/login"`) || strings.Contains(page, `id="explain"`) {
			t.Errorf("GET %s without a token = %d, want 401 with only the login form", path, resp.StatusCode)
		}
	}
	resp, page := do(t, postForm(t, srv.URL+"/", string(bounce), "", nil))
	if resp.StatusCode != 401 || strings.Contains(page, "mailbox_unknown") {
		t.Errorf("POST / without a token = %d, want 401 and no result", resp.StatusCode)
	}

	login := func(token string) *http.Response {
		req := newRequest(t, "POST", srv.URL+"/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, _ := do(t, req)
		return resp
	}
	if resp := login("wrong-token-wrong-token"); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Errorf("POST /login with a wrong token = %d with %d cookies, want 401 and none", resp.StatusCode, len(resp.Cookies()))
	}
	resp = login(testToken)
	cookie := sessionCookie(t, "POST /login", resp)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" {
		t.Errorf("POST /login = %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	req := postForm(t, srv.URL+"/", string(bounce), "", nil)
	req.AddCookie(cookie)
	resp, page = do(t, req)
	if resp.StatusCode != 200 || !strings.Contains(page, "mailbox_unknown") || !strings.Contains(page, `action="/logout"`) {
		t.Errorf("POST / with the session cookie = %d, want 200 with the result and a logout button", resp.StatusCode)
	}
	req = newRequest(t, "GET", srv.URL+"/", nil)
	req.AddCookie(&http.Cookie{Name: cookieName, Value: testToken})
	if resp, _ := do(t, req); resp.StatusCode != 401 {
		t.Errorf("GET / with the token itself as cookie = %d, want 401", resp.StatusCode)
	}

	// ?token= on a page: a session, and a redirect that drops the token.
	resp, _ = do(t, newRequest(t, "GET", srv.URL+"/lookup?address=a%40b.example&token="+testToken, nil))
	sessionCookie(t, "GET /lookup?token=", resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || loc != "/lookup?address=a%40b.example" {
		t.Errorf("GET /lookup?...&token= = %d to %q, want 303 to the same page without the token", resp.StatusCode, loc)
	}
	if resp, _ := do(t, newRequest(t, "GET", srv.URL+"/?token=wrong-token-wrong-token", nil)); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Errorf("GET /?token=wrong = %d, want 401 and no cookie", resp.StatusCode)
	}
	// Bearer works for the page too (curl).
	req = newRequest(t, "GET", srv.URL+"/", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, _ := do(t, req); resp.StatusCode != 200 {
		t.Errorf("GET / with Bearer = %d, want 200", resp.StatusCode)
	}

	// A form posted from another site is refused even with the cookie.
	req = postForm(t, srv.URL+"/", string(bounce), "", nil)
	req.AddCookie(cookie)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, _ := do(t, req); resp.StatusCode != 403 {
		t.Errorf("cross-site POST / = %d, want 403", resp.StatusCode)
	}

	resp, _ = do(t, newRequest(t, "POST", srv.URL+"/logout", nil))
	if c := resp.Cookies(); resp.StatusCode != 303 || len(c) != 1 || c[0].MaxAge >= 0 {
		t.Errorf("POST /logout = %d %v, want 303 clearing the cookie", resp.StatusCode, c)
	}
}

func sessionCookie(t *testing.T, what string, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name != cookieName {
			continue
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Value == "" {
			t.Errorf("%s: cookie %v, want HttpOnly, SameSite=Strict, Path=/", what, c)
		}
		if strings.Contains(c.Value, testToken) {
			t.Errorf("%s: the cookie holds the token", what)
		}
		return c
	}
	t.Fatalf("%s: no %s cookie", what, cookieName)
	return nil
}

// Without a token the server is on loopback; a request for another host
// name comes through a DNS-rebinding page and is refused.
func TestNoTokenLoopbackHostsOnly(t *testing.T) {
	t.Parallel()
	srv := server(t, New(classify.New(classify.Options{}), nil, Options{}))
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	for host, want := range map[string]int{
		"127.0.0.1:" + port: 200, "localhost:" + port: 200, "app.localhost:" + port: 200, "[::1]:" + port: 200,
		"localhost": 200, "evil.example:" + port: 421, "evil.example": 421, "127.0.0.1.nip.io:" + port: 421,
	} {
		req := newRequest(t, "GET", srv.URL+"/", nil)
		req.Host = host
		if resp, _ := do(t, req); resp.StatusCode != want {
			t.Errorf("GET / with Host %q = %d, want %d", host, resp.StatusCode, want)
		}
	}
	// With a token, any host name (a reverse proxy's) is fine.
	srv = server(t, New(classify.New(classify.Options{}), nil, Options{Token: testToken}))
	req := newRequest(t, "GET", srv.URL+"/", nil)
	req.Host = "bouncer.example.com"
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, _ := do(t, req); resp.StatusCode != 200 {
		t.Errorf("GET / with a token and Host bouncer.example.com = %d, want 200", resp.StatusCode)
	}
}

func TestCheckListen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr, token string
		wantErr     error // nil, ErrTokenRequired, or errShort
	}{
		{"127.0.0.1:8080", "", nil},
		{"127.0.0.2:8080", "", nil},
		{"localhost:8080", "", nil},
		{"[::1]:8080", "", nil},
		{":8080", "", ErrTokenRequired},
		{"0.0.0.0:8080", "", ErrTokenRequired},
		{"[::]:8080", "", ErrTokenRequired},
		{"192.0.2.10:8080", "", ErrTokenRequired},
		{"bouncer.example.com:8080", "", ErrTokenRequired},
		{"app.localhost:8080", "", ErrTokenRequired}, // net.Listen resolves it with DNS
		{"0.0.0.0:8080", testToken, nil},
		{"0.0.0.0:8080", "short", errShort},
		{"127.0.0.1:8080", "short", errShort},
	} {
		err := CheckListen(tc.addr, tc.token)
		switch {
		case tc.wantErr == nil && err != nil,
			tc.wantErr == ErrTokenRequired && !errors.Is(err, ErrTokenRequired),
			tc.wantErr == errShort && (err == nil || !strings.Contains(err.Error(), "at least 16")):
			t.Errorf("CheckListen(%q, %q) = %v, want %v", tc.addr, tc.token, err, tc.wantErr)
		}
	}
}

var errShort = errors.New("token too short")

func TestLoadToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fromFile := file("token", testToken+"\n")
	fromEnvFile := file("env-token", "env-file-token-0123456789\r\n")
	empty := file("empty", "\n")
	for _, tc := range []struct {
		name    string
		env     map[string]string
		flag    string
		want    string
		wantErr string
	}{
		{"nothing", nil, "", "", ""},
		{"env", map[string]string{"BOUNCER_HTTP_TOKEN": " env-token-0123456789 "}, "", "env-token-0123456789", ""},
		{"env file", map[string]string{"BOUNCER_HTTP_TOKEN_FILE": fromEnvFile}, "", "env-file-token-0123456789", ""},
		{"flag wins over env", map[string]string{"BOUNCER_HTTP_TOKEN": "env-token-0123456789", "BOUNCER_HTTP_TOKEN_FILE": fromEnvFile}, fromFile, testToken, ""},
		{"both env", map[string]string{"BOUNCER_HTTP_TOKEN": "env-token-0123456789", "BOUNCER_HTTP_TOKEN_FILE": fromEnvFile}, "", "", "both"},
		{"empty file", nil, empty, "", "is empty"},
		{"missing file", nil, filepath.Join(dir, "missing"), "", "no such file"},
	} {
		got, err := LoadToken(func(k string) string { return tc.env[k] }, tc.flag)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: LoadToken = %q, %v; want %q, error containing %q", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}
