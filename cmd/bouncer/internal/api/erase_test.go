package api_test

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/api"
	"github.com/bouncer-mail/bouncer/store"
)

type historyBody struct {
	Address      string
	Check        api.Check
	Suppressions []api.Suppression
	Bounces      []api.Bounce
}

// saveBounce saves a real bounce of the classifier's fixtures (with
// extra appended to make another message) and returns its recipient.
func saveBounce(t *testing.T, db *store.DB, uid uint32, extra string) (string, store.SaveResult) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "classify", "testdata", "mailbox_unknown-postfix.eml"))
	if err != nil {
		t.Fatal(err)
	}
	raw = append(raw, extra...)
	rep, err := classify.New(classify.Options{}).Classify(raw)
	if err != nil || len(rep.Records()) != 1 {
		t.Fatalf("classify: %v", err)
	}
	res, err := db.SaveBatch(t.Context(), []store.Message{{Mailbox: "bounces@127.0.0.1/INBOX", UIDValidity: 1, UID: uid,
		SHA256: sha256.Sum256(raw), Size: len(raw), MessageID: rep.MessageID, InternalDate: time.Now(), Report: rep}})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Records()[0].Recipient, res
}

// History, then erasure: the person's rows are gone or pseudonymised,
// every check still says suppressed, and a new bounce suppresses nothing
// again.
func TestHistoryAndErasure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testKey)
	rcpt, res := saveBounce(t, f.db, 1, "")
	if res.Suppressions != 1 {
		t.Fatalf("SaveBatch = %+v, want one suppression", res)
	}
	ctx := t.Context()
	if _, err := f.pool(ctx, `INSERT INTO list_members (list_id, address) VALUES ('news', '`+rcpt+`')`); err != nil {
		t.Fatal(err)
	}
	code, body := f.do("GET", "/api/v1/addresses/"+strings.ToUpper(rcpt)+"/history", "", nil)
	h := decode[historyBody](t, "history", body)
	if code != 200 || h.Address != rcpt || !h.Check.Suppressed || len(h.Suppressions) != 1 || len(h.Bounces) != 1 || h.Bounces[0].Category != "mailbox_unknown" {
		t.Fatalf("history = %d %s, want one bounce and one suppression", code, body)
	}
	code, body = f.do("GET", "/api/v1/addresses/nobody/history", "", nil)
	wantError(t, "history of a non-address", code, body, 422, "not an email address")
	code, body = f.do("GET", "/api/v1/addresses/"+rcpt+"/history?limit=0", "", nil)
	wantError(t, "history ?limit=0", code, body, 400, "?limit=")

	code, body = f.do("DELETE", "/api/v1/subjects/"+rcpt+"?by=dpo", "", nil)
	wantError(t, "erase without why", code, body, 400, "?by=WHO&why=WHY")
	code, body = f.do("DELETE", "/api/v1/subjects/"+rcpt+"?by=dpo&why=request+42", "", nil)
	e := decode[struct {
		Address, Pseudonym string
		AlreadyErased      bool `json:"already_erased"`
		Rows               map[string]int64
	}](t, "erase", body)
	if code != 200 || e.AlreadyErased || e.Rows["bounces"] != 1 || e.Rows["suppressions"] != 1 || e.Rows["list_members"] != 1 || e.Rows["outbox"] < 2 {
		t.Fatalf("erase = %d %s, want its bounce, suppression, membership and events", code, body)
	}
	// Nothing in the database names the address any more.
	for _, table := range []string{"bounces", "suppressions", "list_members", "outbox", "source_messages", "sent_messages"} {
		n, err := f.pool(ctx, `SELECT count(*) FROM `+table+` AS t WHERE t::text ILIKE '%`+rcpt+`%'`)
		if err != nil || n != 0 {
			t.Errorf("%s: %d rows still name %s (%v)", table, n, rcpt, err)
		}
	}
	// Every check answers suppressed.
	code, body = f.do("GET", "/api/v1/suppressions/check?address="+rcpt, "", nil)
	if c := decode[api.Check](t, "check", body); code != 200 || !c.Suppressed || c.Reason != "erased" {
		t.Errorf("check after erasure = %d %s, want suppressed, reason erased", code, body)
	}
	code, body = f.json("POST", "/api/v1/suppressions/check", map[string]any{"addresses": []string{rcpt}})
	if !strings.Contains(string(body), `"reason":"erased"`) {
		t.Errorf("batch check after erasure = %d %s, want erased", code, body)
	}
	if s, err := f.db.CheckSuppression(ctx, rcpt, ""); err != nil || s == nil || s.Reason != store.ReasonErased {
		t.Errorf("CheckSuppression after erasure = %v, %v; want erased", s, err)
	}
	// A new bounce is recorded, but suppresses nothing and emits no
	// suppression event naming the address.
	if _, res := saveBounce(t, f.db, 2, "\r\n"); res.Bounces != 1 || res.Suppressions != 0 {
		t.Errorf("SaveBatch of a new bounce after erasure = %+v, want a bounce and no suppression", res)
	}
	if n, _ := f.pool(ctx, `SELECT count(*) FROM outbox WHERE subject LIKE 'suppression.%' AND payload::text ILIKE '%`+rcpt+`%'`); n != 0 {
		t.Errorf("%d suppression events name the erased address", n)
	}
	code, body = f.do("DELETE", "/api/v1/subjects/"+rcpt+"?by=dpo&why=again", "", nil)
	if code != 200 || !strings.Contains(string(body), `"already_erased":true`) {
		t.Errorf("erase again = %d %s, want already_erased", code, body)
	}
}

func TestErasureNeedsKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	code, body := f.do("DELETE", "/api/v1/subjects/ana@example.org?by=dpo&why=request", "", nil)
	wantError(t, "erase without a key", code, body, 501, "BOUNCER_ERASURE_KEY")
}
