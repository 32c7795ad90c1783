package store_test

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

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
