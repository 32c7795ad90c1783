package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/api"
)

// The document is valid OpenAPI 3 and has exactly the API's routes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	var inDoc []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inDoc = append(inDoc, method+" "+path)
		}
	}
	slices.Sort(inDoc)
	routes := slices.Sorted(slices.Values(api.Routes))
	if !slices.Equal(inDoc, routes) {
		t.Errorf("the document's operations\n%s\nare not the routes\n%s", strings.Join(inDoc, "\n"), strings.Join(routes, "\n"))
	}
	// The document is what the API serves.
	srv := httptest.NewServer(http.HandlerFunc(api.New(nil, api.Options{}).ServeHTTP))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/openapi.json")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/openapi.json = %v, %v; want 200 JSON", resp, err)
	}
	resp.Body.Close()
	// Without a database every other route says how to get one.
	resp, err = http.Get(srv.URL + "/api/v1/suppressions/check?address=a@example.org")
	if err != nil || resp.StatusCode != 503 {
		t.Errorf("GET check without a database = %v, %v; want 503", resp, err)
	}
}

func TestAccessAndRouting(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.url+"/api/v1/suppressions", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("GET /api/v1/suppressions without the token = %v, %v; want 401 with a challenge", resp, err)
	}
	code, body := f.do("PUT", "/api/v1/suppressions/check", "", nil)
	wantError(t, "PUT check", code, body, 405, "method not allowed")
	code, body = f.do("GET", "/api/v1/nothing", "", nil)
	wantError(t, "GET an unknown route", code, body, 404, "no such API route")
	// The explain page's own API route is still there.
	code, _ = f.do("POST", "/api/v1/parse", "", []byte("Subject: hi\r\n\r\nhello\r\n"))
	if code != 200 {
		t.Errorf("POST /api/v1/parse = %d, want 200", code)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	code, body := f.json("POST", "/api/v1/suppressions", map[string]string{"address": "Ana@Mail.Example.NET", "by": "test", "reason": "hard"})
	if a := decode[struct {
		Created     bool
		Suppression api.Suppression
	}](t, "add", body); code != 201 || !a.Created || a.Suppression.Address != "ana@mail.example.net" {
		t.Fatalf("POST /api/v1/suppressions = %d %s, want 201 created", code, body)
	}
	code, body = f.json("POST", "/api/v1/suppressions", map[string]string{"address": "ana@mail.example.net", "by": "test", "reason": "soft"})
	if code != 200 || !strings.Contains(string(body), `"created":false`) {
		t.Errorf("POST a weaker suppression again = %d %s, want 200 not created", code, body)
	}
	code, body = f.do("GET", "/api/v1/suppressions/check?address=%3CANA@mail.example.net%3E", "", nil)
	if c := decode[api.Check](t, "check", body); code != 200 || !c.Suppressed || c.Reason != "hard" || c.Scope != "global" {
		t.Errorf("GET check of a suppressed address = %d %s, want suppressed, hard, global", code, body)
	}
	code, body = f.do("GET", "/api/v1/suppressions/check?address=bob@mail.example.net&list=news", "", nil)
	if c := decode[api.Check](t, "check", body); code != 200 || c.Suppressed || c.ListID != "news" {
		t.Errorf("GET check of a clean address = %d %s, want not suppressed", code, body)
	}
	code, body = f.do("GET", "/api/v1/suppressions/check", "", nil)
	wantError(t, "GET check without an address", code, body, 400, "missing ?address=")
	code, body = f.do("GET", "/api/v1/suppressions/check?address=nobody", "", nil)
	wantError(t, "GET check of a non-address", code, body, 422, "not an email address")

	code, body = f.json("POST", "/api/v1/suppressions/check", map[string]any{"addresses": []string{"bob@mail.example.net", "ana@mail.example.net", "junk"}})
	res := decode[struct{ Results []api.Check }](t, "batch", body).Results
	if code != 200 || len(res) != 3 || res[0].Suppressed || !res[1].Suppressed || res[2].Error == "" {
		t.Errorf("POST check batch = %d %s, want [clean, suppressed, error]", code, body)
	}
	many := make([]string, api.MaxBatch+1)
	for i := range many {
		many[i] = fmt.Sprintf("u%d@example.org", i)
	}
	code, body = f.json("POST", "/api/v1/suppressions/check", map[string]any{"addresses": many})
	wantError(t, "POST check of 1001 addresses", code, body, 422, "at most 1000")
	code, body = f.json("POST", "/api/v1/suppressions/check", map[string]any{"addresses": []string{}})
	wantError(t, "POST check of none", code, body, 422, "empty")
	code, body = f.do("POST", "/api/v1/suppressions/check", "application/json", []byte(`{"addresses": "a@b.example"}`))
	wantError(t, "POST check, addresses not a list", code, body, 400, "not the JSON wanted")
	code, body = f.do("POST", "/api/v1/suppressions/check", "application/json", []byte(`{"addresses": ["`+strings.Repeat("a", api.DefaultMaxBody)+`"]}`))
	wantError(t, "POST check of a huge body", code, body, 413, "larger than")
}

func TestAddErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	for _, tc := range []struct {
		body     string
		code     int
		contains string
	}{
		{`{"address": "a@example.org"}`, 422, `"by" is missing`},
		{`{"by": "me"}`, 422, `"address" is missing`},
		{`{"address": "a@example.org", "by": "me", "reason": "bored"}`, 422, `"reason" "bored"`},
		{`{"address": "a@example.org", "by": "me", "expires_in": "soon"}`, 422, `"expires_in" "soon"`},
		{`{"address": "not an address", "by": "me"}`, 422, "not a valid email address"},
		{`{"address": "a@example.org", "by": "me", "colour": "red"}`, 400, "unknown field"},
		{``, 400, "empty"},
	} {
		code, body := f.do("POST", "/api/v1/suppressions", "application/json", []byte(tc.body))
		wantError(t, "POST /api/v1/suppressions "+tc.body, code, body, tc.code, tc.contains)
	}
}
