package explain

import (
	"crypto/sha256"
	"html"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

// The lookup, against a real database holding a saved bounce (storetest:
// a missing server fails the test, it is never skipped).
func TestLookup(t *testing.T) {
	t.Parallel()
	db, _ := storetest.Open(t, store.Options{})
	c := classify.New(classify.Options{})
	raw := readFixture(t, "mailbox_unknown-postfix.eml")
	rep, err := c.Classify(raw)
	if err != nil {
		t.Fatal(err)
	}
	rcpt := rep.Records()[0]
	if rcpt.Category != classify.MailboxUnknown || !rcpt.Suppress {
		t.Fatalf("fixture: got %s suppress=%v, want a suppressed mailbox_unknown", rcpt.Category, rcpt.Suppress)
	}
	res, err := db.SaveBatch(t.Context(), []store.Message{{
		Mailbox: "bounces@127.0.0.1/INBOX", UIDValidity: 7, UID: 42, SHA256: sha256.Sum256(raw),
		Size: len(raw), MessageID: rep.MessageID, InternalDate: time.Now(), Report: rep,
	}})
	if err != nil || res.Bounces != 1 || res.Suppressions != 1 {
		t.Fatalf("SaveBatch = %+v, %v; want one bounce and one suppression", res, err)
	}

	srv := server(t, New(c, db, Options{}))
	// The address as a person types it: another case, angle brackets.
	typed := "<" + strings.ToUpper(rcpt.Recipient) + ">"
	resp, page := do(t, newRequest(t, "GET", srv.URL+"/lookup?address="+url.QueryEscape(typed), nil))
	if resp.StatusCode != 200 {
		t.Fatalf("GET /lookup?address=%s = %d, want 200:\n%s", typed, resp.StatusCode, page)
	}
	norm, _ := store.NormalizeAddress(rcpt.Recipient)
	// Long words may wrap only at the <wbr> seams the page marks.
	page = strings.ReplaceAll(page, "<wbr>", "")
	for _, want := range []string{"History of " + norm, "in force", "hard", "mailbox_unknown", rcpt.Rule,
		"bounces@127.0.0.1/INBOX", html.EscapeString(rcpt.Diagnostic)} {
		if !strings.Contains(page, want) {
			t.Errorf("GET /lookup: page lacks %q", want)
		}
	}

	// The explain page says the address is suppressed now, and links to
	// its history.
	resp, page = do(t, postForm(t, srv.URL+"/", string(raw), "", nil))
	if resp.StatusCode != 200 || !strings.Contains(page, "suppressed (global, reason hard) since") ||
		!strings.Contains(page, `href="/lookup?address=`+url.QueryEscape(rcpt.Recipient)) {
		t.Errorf("POST / (a suppressed address) = %d, want the suppression and a history link", resp.StatusCode)
	}
	// Another address of the same message kind: nothing recorded.
	_, page = do(t, newRequest(t, "GET", srv.URL+"/lookup?address=nobody%40example.org", nil))
	for _, want := range []string{"never suppressed", "No bounces recorded"} {
		if !strings.Contains(page, want) {
			t.Errorf("GET /lookup (unknown address): page lacks %q", want)
		}
	}
	resp, page = do(t, newRequest(t, "GET", srv.URL+"/lookup?address=not-an-address", nil))
	if resp.StatusCode != 400 || !strings.Contains(page, "whole email address") {
		t.Errorf("GET /lookup?address=not-an-address = %d, want 400 asking for an address", resp.StatusCode)
	}

	// The database goes away: the page says so, and still explains.
	db.Close()
	resp, page = do(t, newRequest(t, "GET", srv.URL+"/lookup?address=nobody%40example.org", nil))
	if resp.StatusCode != 503 || !strings.Contains(page, "did not answer") {
		t.Errorf("GET /lookup (database closed) = %d, want 503 saying the database did not answer", resp.StatusCode)
	}
	resp, page = do(t, postForm(t, srv.URL+"/", string(raw), "", nil))
	if resp.StatusCode != 200 || !strings.Contains(page, "mailbox_unknown") || !strings.Contains(page, "the database did not answer") {
		t.Errorf("POST / (database closed) = %d, want 200 with the result and the database's absence", resp.StatusCode)
	}
}

func TestLookupWithoutDatabase(t *testing.T) {
	t.Parallel()
	srv := server(t, New(classify.New(classify.Options{}), nil, Options{}))
	resp, page := do(t, newRequest(t, "GET", srv.URL+"/lookup?address=a%40b.example", nil))
	if resp.StatusCode != 200 || !strings.Contains(page, "Address lookup needs a database") {
		t.Errorf("GET /lookup (no database) = %d, want 200 saying a database is needed", resp.StatusCode)
	}
	_, page = do(t, newRequest(t, "GET", srv.URL+"/", nil))
	if strings.Contains(page, `action="/lookup"`) || !strings.Contains(page, "DATABASE_URL") {
		t.Errorf("GET / (no database): want no lookup form and a word on DATABASE_URL")
	}
}
