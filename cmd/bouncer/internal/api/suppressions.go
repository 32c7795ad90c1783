package api

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/store"
)

// pageFilter reads the filters of a list or an export from q.
func pageFilter(q url.Values) (store.PageFilter, error) {
	f := store.PageFilter{ListID: q.Get("list"), Reason: store.Reason(q.Get("reason")), Domain: q.Get("domain")}
	var err error
	boolean := func(name string) bool {
		v := q.Get(name)
		b, perr := strconv.ParseBool(v)
		if v != "" && perr != nil && err == nil {
			err = fmt.Errorf("?%s=%q: want true or false", name, v)
		}
		return b
	}
	f.Global, f.All = boolean("global"), boolean("all")
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" && err == nil {
			t, perr := time.Parse(time.RFC3339, v)
			if perr != nil {
				err = fmt.Errorf("?%s=%q: want an RFC 3339 time such as 2026-12-01T00:00:00Z", p.name, v)
			}
			*p.dst = t
		}
	}
	if f.Reason != "" {
		if _, perr := store.ParseReason(string(f.Reason)); perr != nil && err == nil {
			err = fmt.Errorf("?reason=%q: want hard, soft, complaint, unsubscribe or manual", f.Reason)
		}
	}
	if f.ListID != "" && f.Global && err == nil {
		err = fmt.Errorf("?list=%s and ?global=true contradict each other", f.ListID)
	}
	return f, err
}

// page is the answer of GET /api/v1/suppressions.
type page struct {
	Suppressions []Suppression `json:"suppressions"`
	// Next is the cursor of the next page (?after=), "" on the last one.
	Next string `json:"next,omitempty"`
}

// list answers GET /api/v1/suppressions: filters, keyset paging.
func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := pageFilter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.Limit = DefaultPage
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > store.MaxPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("?limit=%q: want 1 to %d", v, store.MaxPage))
			return
		}
	}
	if v := q.Get("after"); v != "" {
		if f.After, err = strconv.ParseInt(v, 10, 64); err != nil || f.After < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("?after=%q: want the \"next\" of the page before", v))
			return
		}
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	sups, more, err := a.db.ListPage(ctx, f)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	out := page{Suppressions: make([]Suppression, len(sups))}
	for i := range sups {
		out.Suppressions[i] = suppressionOf(&sups[i])
	}
	if more {
		out.Next = strconv.FormatInt(sups[len(sups)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, out)
}

// addRequest is the body of POST /api/v1/suppressions.
type addRequest struct {
	Address string `json:"address"`
	ListID  string `json:"list_id"`
	Reason  string `json:"reason"`
	Note    string `json:"note"`
	By      string `json:"by"`
	// ExpiresIn is a duration such as 30d or 12h ("": never).
	ExpiresIn string `json:"expires_in"`
}

// added is the answer of POST /api/v1/suppressions.
type added struct {
	Created     bool        `json:"created"`
	Suppression Suppression `json:"suppression"`
}

// add answers POST /api/v1/suppressions: 201 when it created or
// strengthened a suppression, 200 when one as strong was in force.
func (a *API) add(w http.ResponseWriter, r *http.Request) {
	var req addRequest
	if !readJSON(w, r, a.opts.MaxBody, &req) {
		return
	}
	sr := store.SuppressRequest{Address: req.Address, ListID: req.ListID, Note: req.Note, By: strings.TrimSpace(req.By)}
	switch {
	case strings.TrimSpace(req.Address) == "":
		writeError(w, http.StatusUnprocessableEntity, `"address" is missing`)
		return
	case sr.By == "":
		writeError(w, http.StatusUnprocessableEntity, `"by" is missing: say who adds the suppression`)
		return
	}
	if req.Reason != "" {
		reason, err := store.ParseReason(req.Reason)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf(`"reason" %q: want hard, soft, complaint, unsubscribe or manual (default)`, req.Reason))
			return
		}
		sr.Reason = reason
	}
	if req.ExpiresIn != "" {
		d, err := store.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf(`"expires_in" %q: want a duration such as 30d, 12h or 90m`, req.ExpiresIn))
			return
		}
		sr.Expires = d
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	s, created, err := a.db.Suppress(ctx, sr)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, added{Created: created, Suppression: suppressionOf(&s)})
}

// remove answers DELETE /api/v1/suppressions/{address}?by=&why=&list=:
// the suppression is closed (never deleted), list memberships are put
// back and suppression.removed is emitted.
func (a *API) remove(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	by, why := strings.TrimSpace(q.Get("by")), strings.TrimSpace(q.Get("why"))
	if by == "" || why == "" {
		writeError(w, http.StatusBadRequest, "say who removes the suppression and why: ?by=WHO&why=WHY")
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	s, err := a.db.Unsuppress(ctx, r.PathValue("address"), q.Get("list"), by, why)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, suppressionOf(&s))
}

// export answers GET /api/v1/suppressions/export?format=csv|ndjson and the
// filters of list, streamed page by page.
func (a *API) export(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := pageFilter(q)
	format := q.Get("format")
	if format == "" {
		format = "ndjson"
	}
	if err == nil && format != "csv" && format != "ndjson" {
		err = fmt.Errorf("?format=%q: want csv or ndjson", format)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var write func(*store.Suppression) error
	flush := func() error { return nil }
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		_ = cw.Write(exportColumns)
		write = func(s *store.Suppression) error { return cw.Write(csvRow(s)) }
		flush = func() error { cw.Flush(); return cw.Error() }
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		write = func(s *store.Suppression) error { return enc.Encode(suppressionOf(s)) }
	}
	err = a.db.ExportSuppressions(r.Context(), f, write)
	if err == nil {
		err = flush()
	}
	if err != nil {
		// The status is sent: cut the connection so the client sees a
		// truncated export, not a complete one.
		a.log.Warn("api: export failed", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// exportColumns are the CSV export's columns; the import reads address,
// list_id, reason, note, created_by and expires_at back.
var exportColumns = []string{"id", "address", "domain", "scope", "list_id", "reason", "category",
	"bounce_id", "note", "created_at", "created_by", "expires_at", "removed_at", "removed_by", "removed_why"}

func csvRow(s *store.Suppression) []string {
	t := func(x time.Time) string {
		if x.IsZero() {
			return ""
		}
		return x.UTC().Format(time.RFC3339)
	}
	bounce := ""
	if s.BounceID != 0 {
		bounce = strconv.FormatInt(s.BounceID, 10)
	}
	return []string{strconv.FormatInt(s.ID, 10), s.Address, s.Domain, string(s.Scope()), s.ListID,
		string(s.Reason), string(s.Category), bounce, s.Note, t(s.CreatedAt), s.CreatedBy, t(s.ExpiresAt),
		t(s.RemovedAt), s.RemovedBy, s.RemovedWhy}
}
