package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/bouncer-mail/bouncer/store"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// Undo from the suppressions page of `bouncer run`: the bounce suppresses
// a list member, the page's undo form lifts it, the membership is back and
// suppression.removed is published on NATS (the outbox relay of the same
// process sends it).
func TestRunUndoFromPagePublishes(t *testing.T) {
	m := wt.StartMemIMAP(t, nil)
	n := wt.StartNATS(t)
	dbURL := wt.NewDatabase(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", wt.FreePort(t))
	vars := map[string]string{
		"DATABASE_URL":      dbURL,
		"NATS_URL":          n.URL(),
		"BOUNCER_IMAP_URL":  m.URL("INBOX"),
		"BOUNCER_HTTP_ADDR": httpAddr,
		"BOUNCER_LOG_LEVEL": "warn",
	}
	ctx := t.Context()
	if err := store.Migrate(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const list, addr = "news.lists.example.com", "ana@mail.example.net"
	member := func() string {
		var s string
		if err := conn.QueryRow(ctx, `SELECT status FROM list_members WHERE list_id = $1 AND address = $2`, list, addr).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := conn.Exec(ctx, `INSERT INTO list_members (list_id, address) VALUES ($1, $2)`, list, addr); err != nil {
		t.Fatal(err)
	}
	// JetStream publishes reach plain subscribers of the subject too.
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("suppression.>")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "classify", "testdata", "mailbox_unknown-postfix.eml"))
	if err != nil {
		t.Fatal(err)
	}
	wt.AppendRaw(t, wt.IMAPClient(t, m.Addr(), m.User, m.Password), "INBOX", raw)

	logs, stop := runInBackground(t, vars, "run")
	defer stop()

	added := nextEvent(t, sub)
	if added.subject != store.SubjectSuppressionAdded || added.p.Recipient != addr || member() != "bounced" {
		t.Fatalf("first event %s for %s, member %s; want suppression.added for %s and the member bounced", added.subject, added.p.Recipient, member(), addr)
	}
	id := added.p.Suppression.ID
	form := url.Values{"why": {"mailbox restored, confirmed by phone"}, "by": {"erin"}}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(fmt.Sprintf("http://%s/suppressions/%d/undo", httpAddr, id), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /suppressions/%d/undo = %d, want 303", id, resp.StatusCode)
	}
	if got := member(); got != "subscribed" {
		t.Errorf("member after undo = %s, want subscribed", got)
	}
	removed := nextEvent(t, sub)
	if removed.subject != store.SubjectSuppressionRemoved || removed.p.Recipient != addr || removed.p.Suppression.ID != id ||
		removed.p.Suppression.RemovedBy != "erin" || removed.p.Suppression.RemovedWhy != form.Get("why") || removed.msgID == "" {
		t.Errorf("after undo: %s %+v (Nats-Msg-Id %q); want suppression.removed of %d by erin with the reason", removed.subject, removed.p, removed.msgID, id)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("bouncer run logged errors:\n%s", logs.String())
	}
}

type event struct {
	subject, msgID string
	p              store.Payload
}

// nextEvent waits for the next message on sub.
func nextEvent(t *testing.T, sub *nats.Subscription) event {
	t.Helper()
	msg, err := sub.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("waiting for a suppression event: %v", err)
	}
	e := event{subject: msg.Subject, msgID: msg.Header.Get(nats.MsgIdHdr)}
	if err := json.Unmarshal(msg.Data, &e.p); err != nil || e.p.Suppression == nil {
		t.Fatalf("event %s: %v: %s", msg.Subject, err, msg.Data)
	}
	return e
}
