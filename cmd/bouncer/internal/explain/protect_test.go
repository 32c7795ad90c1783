package explain

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
)

// Protect puts another handler behind the page's checks: the token (as
// Bearer only on /api/), the security headers, and, without a token, the
// loopback-host rule.
func TestProtect(t *testing.T) {
	t.Parallel()
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"ok":true}`)) })
	for _, tc := range []struct {
		name, token, auth, host, path string
		code                          int
	}{
		{"token given", testToken, "Bearer " + testToken, "", "/api/v1/x", 200},
		{"no token", testToken, "", "", "/api/v1/x", 401},
		{"wrong token", testToken, "Bearer wrong-token-wrong-token", "", "/api/v1/x", 401},
		{"token in the URL", testToken, "", "", "/api/v1/x?token=" + testToken, 401},
		{"no token configured, loopback", "", "", "", "/api/v1/x", 200},
		{"no token configured, another host", "", "", "evil.example", "/api/v1/x", 421},
	} {
		h := New(classify.New(classify.Options{}), nil, Options{Token: tc.token})
		mux := http.NewServeMux()
		mux.Handle("/api/v1/x", h.Protect(inner))
		srv := server(t, mux)
		req := newRequest(t, "GET", srv.URL+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, body := do(t, req)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.code)
		}
		if tc.code != 200 && !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("%s: body %q, want a JSON error", tc.name, body)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v, want the page's security headers", tc.name, resp.Header)
		}
	}
	// A cross-origin browser POST is refused.
	h := New(classify.New(classify.Options{}), nil, Options{})
	mux := http.NewServeMux()
	mux.Handle("/api/v1/x", h.Protect(inner))
	srv := server(t, mux)
	req := newRequest(t, "POST", srv.URL+"/api/v1/x", strings.NewReader("{}"))
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, body := do(t, req); resp.StatusCode != 403 {
		t.Errorf("cross-site POST = %d %s, want 403", resp.StatusCode, body)
	}
}
