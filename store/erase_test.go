package store_test

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

// Every table that holds an address (a column address or recipient) has
// its statement in the erasure's list: a table added later without one
// fails here.
func TestEraseCoversAddressTables(t *testing.T) {
	t.Parallel()
	url := storetest.Migrated(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), `
SELECT DISTINCT c.table_name FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
  AND c.column_name IN ('address', 'recipient', 'address_raw', 'payload')`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 4 {
		t.Fatalf("tables with addresses: %v, %v", tables, err)
	}
	var erased []string
	for _, s := range store.EraseStatements() {
		erased = append(erased, s[0])
	}
	for _, table := range tables {
		if !slices.Contains(erased, table) {
			t.Errorf("table %s holds addresses but the erasure (store/erase.go eraseStatements) does not touch it", table)
		}
	}
}

// A provider's raw payload naming the person loses every spelling of the
// address to the pseudonym, bytes that are not UTF-8 around it kept, and
// another person's payload is untouched.
func TestEraseWebhookPayloads(t *testing.T) {
	t.Parallel()
	url := storetest.Migrated(t)
	db, err := store.Open(t.Context(), url, store.Options{ErasureKey: []byte("0123456789abcdef-erasure")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ev := webhookEvent("erase-1", rcpt("gone.person@example.com", classify.MailboxUnknown))
	ev.Payload = []byte("{\"recipient\":\"Gone.Person@Example.com\",\"note\":\"\xff\\\\ <gone.person@example.com>\"}")
	other := webhookEvent("erase-2", rcpt("kept@example.com", classify.MailboxUnknown))
	other.Payload = []byte(`{"recipient":"kept@example.com"}`)
	if _, _, err := db.SaveWebhooks(t.Context(), []store.WebhookEvent{ev, other}); err != nil {
		t.Fatal(err)
	}
	e, err := db.Erase(t.Context(), "gone.person@example.com", "test", "asked to be forgotten")
	if err != nil {
		t.Fatal(err)
	}
	if e.Rows["webhook_events"] != 1 {
		t.Errorf("webhook_events rows erased = %d, want 1", e.Rows["webhook_events"])
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	payload := func(id string) string {
		var p []byte
		if err := conn.QueryRow(t.Context(), `SELECT payload FROM webhook_events WHERE event_id = $1`, id).Scan(&p); err != nil {
			t.Fatal(err)
		}
		return string(p)
	}
	want := "{\"recipient\":\"" + e.Pseudonym + "\",\"note\":\"\xff\\\\ <" + e.Pseudonym + ">\"}"
	if got := payload("erase-1"); got != want {
		t.Errorf("erased payload = %q, want %q", got, want)
	}
	if got := payload("erase-2"); got != string(other.Payload) {
		t.Errorf("another person's payload = %q, want it untouched", got)
	}
}
