package api

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/store"
)

// ErrImport wraps an import's bad input: a line that is not of the form
// wanted. Nothing is written.
var ErrImport = errors.New("import")

// importLine is one NDJSON line of an import; a CSV header names the same
// keys. created_by is read as by, so an export imports back.
type importLine struct {
	Address   string `json:"address"`
	ListID    string `json:"list_id"`
	Reason    string `json:"reason"`
	Note      string `json:"note"`
	By        string `json:"by"`
	CreatedBy string `json:"created_by"`
	ExpiresAt string `json:"expires_at"`
}

func (l importLine) row() (store.ImportRow, error) {
	r := store.ImportRow{Address: strings.TrimSpace(l.Address), ListID: l.ListID, Note: l.Note, By: l.By}
	if r.By == "" {
		r.By = l.CreatedBy
	}
	if r.Address == "" {
		return r, errors.New("no address")
	}
	if l.Reason != "" {
		reason, err := store.ParseReason(l.Reason)
		if err != nil {
			return r, fmt.Errorf("reason %q: want hard, soft, complaint, unsubscribe or manual", l.Reason)
		}
		r.Reason = reason
	}
	if l.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339, l.ExpiresAt)
		if err != nil {
			return r, fmt.Errorf("expires_at %q: want an RFC 3339 time such as 2027-01-01T00:00:00Z", l.ExpiresAt)
		}
		r.ExpiresAt = t
	}
	return r, nil
}

// ReadImport reads the rows of an import: format "csv" (a header line
// naming the columns, address required, any of list_id, reason, note, by,
// created_by, expires_at; others are ignored, so an export reads back) or
// "ndjson" (one object per line with those keys; blank lines skipped). A
// bad line is an error wrapping ErrImport that names it.
func ReadImport(r io.Reader, format string) ([]store.ImportRow, error) {
	switch format {
	case "csv":
		return readCSV(r)
	case "ndjson":
		return readNDJSON(r)
	}
	return nil, fmt.Errorf("%w: format %q: want csv or ndjson", ErrImport, format)
}

func readNDJSON(r io.Reader) ([]store.ImportRow, error) {
	var rows []store.ImportRow
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var l importLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("%w: line %d: not a JSON object of address, list_id, reason, note, by, expires_at: %v", ErrImport, n, err)
		}
		row, err := l.row()
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrImport, n, err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrImport, err)
	}
	return rows, nil
}

func readCSV(r io.Reader) ([]store.ImportRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: line 1: want a header line naming the columns (address,list_id,reason,...): %w", ErrImport, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	if _, ok := col["address"]; !ok {
		return nil, fmt.Errorf("%w: line 1: the header %q has no address column", ErrImport, strings.Join(head, ","))
	}
	var rows []store.ImportRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrImport, err)
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return rec[i]
			}
			return ""
		}
		row, err := importLine{Address: get("address"), ListID: get("list_id"), Reason: get("reason"), Note: get("note"),
			By: get("by"), CreatedBy: get("created_by"), ExpiresAt: get("expires_at")}.row()
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrImport, line, err)
		}
		rows = append(rows, row)
	}
}

// importFormat is the format of an import request: ?format=, else its
// Content-Type (text/csv; application/x-ndjson, application/jsonl or
// application/json for NDJSON).
func importFormat(r *http.Request) (string, error) {
	if f := r.URL.Query().Get("format"); f != "" {
		if f != "csv" && f != "ndjson" {
			return "", fmt.Errorf("?format=%q: want csv or ndjson", f)
		}
		return f, nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "text/csv":
		return "csv", nil
	case "application/x-ndjson", "application/jsonl", "application/json":
		return "ndjson", nil
	}
	return "", fmt.Errorf("say the format: ?format=csv or ?format=ndjson, or Content-Type text/csv or application/x-ndjson (got %q)", r.Header.Get("Content-Type"))
}

// importSuppressions answers POST /api/v1/suppressions/import: a CSV or
// NDJSON body, every line checked before anything is written;
// ?dry_run=true answers what would change and writes nothing.
func (a *API) importSuppressions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	format, err := importFormat(r)
	dry := false
	if v := q.Get("dry_run"); v != "" && err == nil {
		if dry, err = strconv.ParseBool(v); err != nil {
			err = fmt.Errorf("?dry_run=%q: want true or false", v)
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, a.opts.MaxImport)
	rows, err := ReadImport(r.Body, format)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the import is larger than %d bytes: split it", a.opts.MaxImport))
		return
	case err != nil:
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	case len(rows) == 0:
		writeError(w, http.StatusUnprocessableEntity, "the import has no rows")
		return
	}
	by := strings.TrimSpace(q.Get("by"))
	if by == "" {
		by = "api import"
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	res, err := a.db.ImportSuppressions(ctx, rows, by, dry)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
