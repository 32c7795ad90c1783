package api_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/api"
	"github.com/bouncer-mail/bouncer/store"
)

// Import: a dry run counts and writes nothing, the import writes, a second
// one changes nothing; a bad line names itself and writes nothing; an
// export imports back unchanged.
func TestImportExport(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	csvBody := []byte("address,list_id,reason,note\nana@example.org,,hard,from the old system\nbob@example.org,news,complaint,\nANA@example.org,,manual,twice\n")
	code, body := f.do("POST", "/api/v1/suppressions/import?dry_run=true", "text/csv", csvBody)
	if r := decode[store.ImportResult](t, "dry run", body); code != 200 || r != (store.ImportResult{Read: 3, Added: 2, Unchanged: 1, DryRun: true}) {
		t.Errorf("dry run = %d %s, want 3 read, 2 to add", code, body)
	}
	if n, _ := f.pool(t.Context(), `SELECT count(*) FROM suppressions`); n != 0 {
		t.Errorf("a dry run wrote %d suppressions", n)
	}
	code, body = f.do("POST", "/api/v1/suppressions/import", "text/csv", csvBody)
	if r := decode[store.ImportResult](t, "import", body); code != 200 || r.Added != 2 || r.DryRun {
		t.Errorf("import = %d %s, want 2 added", code, body)
	}
	code, body = f.do("POST", "/api/v1/suppressions/import?format=csv", "", csvBody)
	if r := decode[store.ImportResult](t, "import again", body); code != 200 || r.Added != 0 || r.Unchanged != 3 {
		t.Errorf("import again = %d %s, want nothing added", code, body)
	}
	nd := []byte(`{"address":"cy@example.org","reason":"unsubscribe","by":"crm"}` + "\n\n" + `{"address":"dee@example.org","expires_at":"2099-01-01T00:00:00Z"}` + "\n")
	code, body = f.do("POST", "/api/v1/suppressions/import", "application/x-ndjson", nd)
	if r := decode[store.ImportResult](t, "ndjson", body); code != 200 || r.Added != 2 {
		t.Errorf("NDJSON import = %d %s, want 2 added", code, body)
	}
	for _, tc := range []struct {
		name, ctype, path string
		body              string
		code              int
		text              string
	}{
		{"bad address", "text/csv", "", "address\nok@example.org\nnot-an-address\n", 422, "row 1"},
		{"bad reason", "text/csv", "", "address,reason\nok@example.org,bored\n", 422, "line 2: reason"},
		{"no address column", "text/csv", "", "email\nok@example.org\n", 422, "no address column"},
		{"bad JSON", "application/x-ndjson", "", "{\"address\":\"ok@example.org\"}\n{oops\n", 422, "line 2"},
		{"unknown format", "application/pdf", "", "x", 400, "say the format"},
		{"bad dry_run", "text/csv", "?dry_run=perhaps", "address\nok@example.org\n", 400, "dry_run"},
		{"empty", "text/csv", "", "address\n", 422, "no rows"},
	} {
		code, body := f.do("POST", "/api/v1/suppressions/import"+tc.path, tc.ctype, []byte(tc.body))
		wantError(t, "import, "+tc.name, code, body, tc.code, tc.text)
	}
	if n, _ := f.pool(t.Context(), `SELECT count(*) FROM suppressions WHERE address = 'ok@example.org'`); n != 0 {
		t.Errorf("refused imports wrote %d suppressions", n)
	}

	code, csvOut := f.do("GET", "/api/v1/suppressions/export?format=csv", "", nil)
	if code != 200 || strings.Count(string(csvOut), "\n") != 5 || !strings.Contains(string(csvOut), "bob@example.org,example.org,list,news,complaint") {
		t.Errorf("CSV export = %d\n%s\nwant a header and 4 rows", code, csvOut)
	}
	code, ndOut := f.do("GET", "/api/v1/suppressions/export?list=news", "", nil)
	if code != 200 || bytes.Count(ndOut, []byte("\n")) != 1 || !bytes.Contains(ndOut, []byte(`"address":"bob@example.org"`)) {
		t.Errorf("NDJSON export of list news = %d\n%s\nwant bob's suppression", code, ndOut)
	}
	code, body = f.do("GET", "/api/v1/suppressions/export?format=xml", "", nil)
	wantError(t, "export as XML", code, body, 400, "csv or ndjson")
	// What was exported imports back as it is.
	rows, err := api.ReadImport(bytes.NewReader(csvOut), "csv")
	if err != nil || len(rows) != 4 {
		t.Fatalf("ReadImport(the CSV export) = %d rows, %v", len(rows), err)
	}
	code, body = f.do("POST", "/api/v1/suppressions/import", "text/csv", csvOut)
	if r := decode[store.ImportResult](t, "re-import", body); code != 200 || r.Added != 0 || r.Unchanged != 4 {
		t.Errorf("importing the export = %d %s, want nothing added", code, body)
	}
}

func TestImportTooLarge(t *testing.T) {
	t.Parallel()
	db, _ := newDB(t)
	srv := serveAPI(t, api.New(db, api.Options{MaxImport: 64}))
	resp, body := post(t, srv+"/api/v1/suppressions/import?format=csv", strings.Repeat("address\n", 20))
	wantError(t, "import over the limit", resp, body, 413, "larger than 64 bytes")
}
