package store_test

import (
	"fmt"
	"testing"

	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

// An import larger than one transaction's chunk writes every row once, and
// a second run adds nothing; the batch check and keyset pages see them.
func TestImportChunksAndPages(t *testing.T) {
	t.Parallel()
	db, _ := storetest.Open(t, store.Options{})
	rows := make([]store.ImportRow, 4500)
	for i := range rows {
		rows[i] = store.ImportRow{Address: fmt.Sprintf("u%d@example.org", i)}
	}
	for run, want := range []store.ImportResult{{Read: 4500, Added: 4500}, {Read: 4500, Unchanged: 4500}} {
		got, err := db.ImportSuppressions(t.Context(), rows, "test", false)
		if err != nil || got != want {
			t.Fatalf("import run %d = %+v, %v; want %+v", run+1, got, err, want)
		}
	}
	res, err := db.CheckSuppressions(t.Context(), []string{"u4499@example.org", "other@example.org", "x"}, "")
	if err != nil || res[0].Suppression == nil || res[1].Suppression != nil || res[2].Invalid == "" {
		t.Fatalf("CheckSuppressions = %+v, %v; want suppressed, clean, invalid", res, err)
	}
	seen := 0
	f := store.PageFilter{Limit: store.MaxPage / 4}
	for {
		page, more, err := db.ListPage(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page)
		if !more {
			break
		}
		f.After = page[len(page)-1].ID
	}
	if seen != 4500 {
		t.Errorf("pages held %d suppressions, want 4500", seen)
	}
	if _, err := db.ImportSuppressions(t.Context(), []store.ImportRow{{Address: "ok@example.org"}, {Address: "nope"}}, "test", false); err == nil {
		t.Error("import with an invalid row = nil error")
	}
	if res, _ := db.CheckSuppressions(t.Context(), []string{"ok@example.org"}, ""); res[0].Suppression != nil {
		t.Error("a refused import wrote its valid row")
	}
}
