package explain

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

// reviewDB is a database for the suppressions page: hard bounces with
// realistic long addresses, rules and server words, their addresses
// subscribed to a list first.
type reviewDB struct {
	db   *store.DB
	conn *pgx.Conn
}

const (
	longList = "newsletter-weekly-digest.lists.international-engineering-consultancy.example.co.uk"
	longDiag = "550-5.1.1 The email account that you tried to reach does not exist. Please try " +
		"double-checking the recipient's email address for typos or unnecessary spaces. Learn more at " +
		"https://support.google.com/mail/?p=NoSuchUser d75a77b69052e-4a7f3c8b1a2si123456789qtb.350 - gsmtp"
)

func newReviewDB(t *testing.T) *reviewDB {
	t.Helper()
	db, u := storetest.Open(t, store.Options{})
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(t.Context()) })
	return &reviewDB{db: db, conn: conn}
}

// save stores a bounce of addr that rule decided (a dead mailbox: a
// global suppression), after subscribing addr to longList.
func (r *reviewDB) save(t *testing.T, uid uint32, addr, rule string) {
	t.Helper()
	if _, err := r.conn.Exec(t.Context(), `INSERT INTO list_members (list_id, address, status) VALUES ($1, $2, 'subscribed')`, longList, addr); err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("bounce-%d-%s", uid, addr)
	rep := &classify.Report{
		Kind: classify.KindDSN, MessageID: "<" + key + "@mx.bounces.example-corporation.com>",
		ReportingMTA: "dns; mx.bounces.example-corporation.com",
		Original:     classify.Original{Source: "message/rfc822", ListID: longList, CampaignID: "spring-sale-2025-second-reminder"},
		Recipients: []classify.Recipient{{Address: addr, Action: "failed", Status: "5.1.1", SMTPCode: 550,
			Diagnostic: longDiag, RemoteMTA: "dns; gmail-smtp-in.l.google.com", Category: classify.MailboxUnknown,
			Severity: classify.Hard, Suppress: true, Rule: rule}},
	}
	res, err := r.db.SaveBatch(t.Context(), []store.Message{{
		Mailbox: "bounces@imap.mail-infrastructure.example-corporation.com/INBOX", UIDValidity: 1712345678, UID: uid,
		SHA256: sha256.Sum256([]byte(key)), Size: 4000, MessageID: rep.MessageID, InternalDate: time.Now(), Report: rep,
	}})
	if err != nil || res.Suppressions != 1 {
		t.Fatalf("SaveBatch(%s) = %+v, %v; want one suppression", addr, res, err)
	}
}

func (r *reviewDB) member(t *testing.T, addr string) string {
	t.Helper()
	var s string
	if err := r.conn.QueryRow(t.Context(), `SELECT status FROM list_members WHERE list_id = $1 AND address = $2`, longList, addr).Scan(&s); err != nil {
		t.Fatalf("member %s: %v", addr, err)
	}
	return s
}

// removedEvents returns the suppression.removed events in the outbox for
// addr, by who.
func (r *reviewDB) removedEvents(t *testing.T, addr string) []store.Payload {
	t.Helper()
	evs, err := r.db.PendingEvents(t.Context(), 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Payload
	for _, e := range evs {
		var p store.Payload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if e.Subject == store.SubjectSuppressionRemoved && p.Recipient == addr {
			out = append(out, p)
		}
	}
	return out
}

func (r *reviewDB) id(t *testing.T, addr string) int64 {
	t.Helper()
	rows, _, err := r.db.SearchSuppressions(t.Context(), store.ReviewFilter{Query: addr, State: store.StateAll})
	if err != nil || len(rows) != 1 {
		t.Fatalf("suppressions of %s = %d, %v; want 1", addr, len(rows), err)
	}
	return rows[0].ID
}

func postValues(t *testing.T, u string, v url.Values) *http.Request {
	t.Helper()
	req := newRequest(t, "POST", u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	return do(t, newRequest(t, "GET", u, nil))
}

func TestSuppressionsSearch(t *testing.T) {
	t.Parallel()
	r := newReviewDB(t)
	for i := range 52 {
		rule := "mailbox_unknown"
		if i%2 == 1 {
			rule = "destination_null_mx"
		}
		r.save(t, uint32(i+1), fmt.Sprintf("subscriber%02d@example.org", i), rule)
	}
	srv := server(t, New(nil, r.db, Options{}))

	resp, page := get(t, srv.URL+"/suppressions")
	if resp.StatusCode != 200 || !strings.Contains(page, "52 suppressions") || !strings.Contains(page, "subscriber51@<wbr>example.<wbr>org") {
		t.Fatalf("GET /suppressions = %d, want 200 with 52 suppressions, newest first:\n%s", resp.StatusCode, page)
	}
	if n := strings.Count(page, `<tr class="in-force">`); n != 50 {
		t.Errorf("first page has %d rows, want 50", n)
	}
	next := regexp.MustCompile(`href="(/suppressions\?before=[0-9]+[^"]*)" id="next"`).FindStringSubmatch(page)
	if next == nil {
		t.Fatalf("no next page link")
	}
	_, page = get(t, srv.URL+html.UnescapeString(next[1]))
	if n := strings.Count(page, `<tr class="in-force">`); n != 2 || !strings.Contains(page, "subscriber00@") || strings.Contains(page, `id="next"`) {
		t.Errorf("second page has %d rows, want the last 2 and no next link", n)
	}

	for _, tc := range []struct {
		query string
		want  string
	}{
		{"q=SUBSCRIBER07%40example.org", "1 suppression<"},
		{"q=example.org&rule=destination_null_mx", "26 suppressions"},
		{"category=mailbox_unknown&reason=hard&list=%28global%29", "52 suppressions"},
		{"category=complaint", "0 suppressions"},
		{"state=lifted", "0 suppressions"},
		{"from=2000-01-01&to=2000-01-31", "0 suppressions"},
		{"list=" + url.QueryEscape(longList), "0 suppressions"},
	} {
		resp, page := get(t, srv.URL+"/suppressions?"+tc.query)
		if resp.StatusCode != 200 || !strings.Contains(page, tc.want) {
			t.Errorf("GET /suppressions?%s = %d, want 200 and %q", tc.query, resp.StatusCode, tc.want)
		}
	}
	for _, q := range []string{"from=yesterday", "category=sad", "reason=bored", "before=x", "state=gone"} {
		resp, page := get(t, srv.URL+"/suppressions?"+q)
		if resp.StatusCode != 400 || !strings.Contains(page, "Cannot search") {
			t.Errorf("GET /suppressions?%s = %d, want 400 saying why", q, resp.StatusCode)
		}
	}
	if resp, _ := do(t, newRequest(t, "DELETE", srv.URL+"/suppressions", nil)); resp.StatusCode != 405 {
		t.Errorf("DELETE /suppressions = %d, want 405", resp.StatusCode)
	}
	// The explain page links to it.
	if _, page := get(t, srv.URL+"/"); !strings.Contains(page, `href="/suppressions"`) {
		t.Errorf("GET / does not link to /suppressions")
	}
}

func TestSuppressionUndo(t *testing.T) {
	t.Parallel()
	r := newReviewDB(t)
	const addr = "alexandra.konstantinopoulou@mail.example-corporation.com"
	r.save(t, 1, addr, "mailbox_unknown")
	id := r.id(t, addr)
	srv := server(t, New(nil, r.db, Options{}))
	detail := fmt.Sprintf("%s/suppressions/%d", srv.URL, id)

	resp, page := get(t, detail)
	for _, want := range []string{"Suppression " + fmt.Sprint(id), "in force", "<code>mailbox_unknown</code>", html.EscapeString(longDiag),
		"bounces@<wbr>imap.", "UID 1", `id="undo-button"`, "bounced"} {
		if resp.StatusCode != 200 || !strings.Contains(page, want) {
			t.Errorf("GET /suppressions/%d = %d, want 200 showing %q", id, resp.StatusCode, want)
		}
	}
	for path, code := range map[string]int{"/suppressions/abc": 400, "/suppressions/-3": 400, fmt.Sprintf("/suppressions/%d", id+99): 404} {
		if resp, _ := get(t, srv.URL+path); resp.StatusCode != code {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, code)
		}
	}
	if resp, _ := get(t, detail+"/undo"); resp.StatusCode != 405 {
		t.Errorf("GET /suppressions/%d/undo = %d, want 405", id, resp.StatusCode)
	}

	resp, page = do(t, postValues(t, detail+"/undo", url.Values{"why": {"  "}, "by": {"erin"}}))
	if resp.StatusCode != 400 || !strings.Contains(page, "Say why") || r.member(t, addr) != "bounced" {
		t.Errorf("undo without a reason = %d, want 400 asking why, nothing undone", resp.StatusCode)
	}
	cross := postValues(t, detail+"/undo", url.Values{"why": {"x"}})
	cross.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, _ := do(t, cross); resp.StatusCode != 403 || r.member(t, addr) != "bounced" {
		t.Errorf("cross-site undo = %d, want 403, nothing undone", resp.StatusCode)
	}
	if resp, _ := do(t, postValues(t, srv.URL+"/suppressions/x/undo", url.Values{"why": {"x"}})); resp.StatusCode != 400 {
		t.Errorf("undo of a bad id = %d, want 400", resp.StatusCode)
	}

	resp, _ = do(t, postValues(t, detail+"/undo", url.Values{"why": {"mailbox restored, confirmed by phone"}}))
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || loc != fmt.Sprintf("/suppressions/%d?undone=1", id) {
		t.Fatalf("undo = %d to %q, want 303 back to the suppression", resp.StatusCode, loc)
	}
	if got := r.member(t, addr); got != "subscribed" {
		t.Errorf("member after undo = %s, want subscribed", got)
	}
	evs := r.removedEvents(t, addr)
	if len(evs) != 1 || evs[0].Suppression.RemovedBy != defaultBy || evs[0].Suppression.RemovedWhy != "mailbox restored, confirmed by phone" {
		t.Errorf("suppression.removed events = %+v, want one by %q with the reason", evs, defaultBy)
	}
	_, page = get(t, detail+"?undone=1")
	if !strings.Contains(page, "Undone:") || !strings.Contains(page, "removed ") || strings.Contains(page, `id="undo-button"`) {
		t.Errorf("after undo the page does not say it is removed, or still offers undo")
	}
	resp, _ = do(t, postValues(t, detail+"/undo", url.Values{"why": {"again"}}))
	if resp.StatusCode != 409 {
		t.Errorf("undo twice = %d, want 409", resp.StatusCode)
	}
}

func TestSuppressionsBulkUndo(t *testing.T) {
	t.Parallel()
	r := newReviewDB(t)
	for i := range 4 {
		r.save(t, uint32(i+1), fmt.Sprintf("misfire%d@example.net", i), "filtered_after_data")
	}
	r.save(t, 9, "keep@example.net", "mailbox_unknown")
	srv := server(t, New(nil, r.db, Options{}))
	today := time.Now().UTC().Format(dateLayout)

	resp, page := get(t, srv.URL+"/suppressions/undo?rule=filtered_after_data&day="+today)
	if resp.StatusCode != 200 || !strings.Contains(page, "<strong>4</strong> suppressions") || !strings.Contains(page, `id="confirm-button"`) {
		t.Fatalf("preview = %d, want 4 and a confirm form:\n%s", resp.StatusCode, page)
	}
	max := regexp.MustCompile(`name="max" value="([0-9]+)"`).FindStringSubmatch(page)[1]
	for q, code := range map[string]int{"": 400, "day=01/05/2025": 400} {
		if resp, _ := get(t, srv.URL+"/suppressions/undo?"+q); resp.StatusCode != code {
			t.Errorf("preview ?%s = %d, want %d", q, resp.StatusCode, code)
		}
	}
	form := url.Values{"rule": {"filtered_after_data"}, "day": {today}, "count": {"4"}, "max": {max}, "by": {"carol"}}
	if resp, _ := do(t, postValues(t, srv.URL+"/suppressions/undo", form)); resp.StatusCode != 400 || r.member(t, "misfire0@example.net") != "bounced" {
		t.Errorf("confirm without a reason = %d, want 400 and nothing undone", resp.StatusCode)
	}
	form.Set("why", "rule misfired on a filter")
	form.Set("count", "3")
	if resp, page := do(t, postValues(t, srv.URL+"/suppressions/undo", form)); resp.StatusCode != 409 || !strings.Contains(page, "<strong>4</strong>") {
		t.Errorf("confirm with a stale count = %d, want 409 and the new count", resp.StatusCode)
	}
	form.Set("count", "4")
	resp, _ = do(t, postValues(t, srv.URL+"/suppressions/undo", form))
	if resp.StatusCode != 303 || !strings.Contains(resp.Header.Get("Location"), "undone=4") {
		t.Fatalf("confirm = %d to %q, want 303 saying 4 were undone", resp.StatusCode, resp.Header.Get("Location"))
	}
	for i := range 4 {
		a := fmt.Sprintf("misfire%d@example.net", i)
		if got, evs := r.member(t, a), r.removedEvents(t, a); got != "subscribed" || len(evs) != 1 || evs[0].Suppression.RemovedBy != "carol" {
			t.Errorf("%s after bulk undo: member %s, %d events; want subscribed and one suppression.removed by carol", a, got, len(evs))
		}
	}
	if got := r.member(t, "keep@example.net"); got != "bounced" {
		t.Errorf("another rule's member = %s, want bounced", got)
	}
	_, page = get(t, srv.URL+resp.Header.Get("Location"))
	if !strings.Contains(page, "Lifted 4 suppressions") || !strings.Contains(page, "4 suppressions<") {
		t.Errorf("after bulk undo the list does not show the 4 lifted")
	}
}

func TestSuppressionsWithoutDatabase(t *testing.T) {
	t.Parallel()
	srv := server(t, New(nil, nil, Options{}))
	for _, req := range []*http.Request{
		newRequest(t, "GET", srv.URL+"/suppressions", nil),
		newRequest(t, "GET", srv.URL+"/suppressions/1", nil),
		newRequest(t, "GET", srv.URL+"/suppressions/undo?rule=x", nil),
		postValues(t, srv.URL+"/suppressions/1/undo", url.Values{"why": {"x"}}),
		postValues(t, srv.URL+"/suppressions/undo", url.Values{"why": {"x"}, "rule": {"x"}}),
	} {
		resp, page := do(t, req)
		want := 200
		if req.Method == "POST" {
			want = 503
		}
		if resp.StatusCode != want || !strings.Contains(page, "needs a database") {
			t.Errorf("%s %s without a database = %d, want %d saying it needs one", req.Method, req.URL.Path, resp.StatusCode, want)
		}
	}
}

func TestSuppressionsToken(t *testing.T) {
	t.Parallel()
	srv := server(t, New(nil, nil, Options{Token: testToken}))
	for _, req := range []*http.Request{
		newRequest(t, "GET", srv.URL+"/suppressions", nil),
		postValues(t, srv.URL+"/suppressions/1/undo", url.Values{"why": {"x"}}),
	} {
		if resp, page := do(t, req); resp.StatusCode != 401 || !strings.Contains(page, `action="/login"`) {
			t.Errorf("%s %s without the token = %d, want 401 and the login form", req.Method, req.URL.Path, resp.StatusCode)
		}
	}
}

// The README documents every route of the suppressions page.
func TestSuppressionsReadme(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Paths {
		if !strings.HasPrefix(p, "/suppressions") {
			continue
		}
		if !strings.Contains(string(b), "`GET "+p) && !strings.Contains(string(b), "`POST "+p) {
			t.Errorf("README does not document %s", p)
		}
	}
}
