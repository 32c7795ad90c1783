package explain

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

// The suppressions page: search, the evidence of one suppression, undo
// with a reason, and bulk undo of one rule's or one day's suppressions
// after a preview. Routes (see Paths):
//
//	GET  /suppressions              search form, results, paging
//	GET  /suppressions/{id}         one suppression and its evidence
//	POST /suppressions/{id}/undo    lift it (fields why, by)
//	GET  /suppressions/undo         bulk undo, step 1: preview (rule, day)
//	POST /suppressions/undo         bulk undo, step 2: confirm (rule, day,
//	                                count, max from the preview; why, by)

// defaultBy is who an undo is recorded as when the form names no one: the
// token is shared, so the page knows no operator by name.
const defaultBy = "explain page"

// supPage is what suppressions.html renders.
type supPage struct {
	*page
	Form    reviewForm
	Rows    []store.ReviewRow
	Total   int
	NextURL string // the next page of results, "" on the last
	Detail  *store.SuppressionDetail
	InForce bool // Detail is in force now
	Preview *bulkPreview
	Why, By string // an undo form's values, back after an error
}

// reviewForm is the search form's values, as typed.
type reviewForm struct {
	Q, List, Reason, Rule, Category, From, To, State string
}

// bulkPreview is step 1 of a bulk undo: what the confirm form sends back.
type bulkPreview struct {
	Rule, Day string
	store.UndoPreview
}

func (h *Handler) newSupPage(r *http.Request) *supPage {
	return &supPage{page: h.newPage(r), Form: reviewForm{State: string(store.StateActive)}}
}

func (h *Handler) renderSup(w http.ResponseWriter, code int, p *supPage) {
	var buf strings.Builder
	if err := pageTmpl.ExecuteTemplate(&buf, "suppressions.html", p); err != nil {
		h.log.Error("explain: render suppressions page", "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(buf.String()))
}

// needDB answers for a route that needs the database when there is none.
func (h *Handler) needDB(w http.ResponseWriter, r *http.Request) bool {
	if h.db != nil {
		return false
	}
	p := h.newSupPage(r)
	p.Notice = "The suppressions page needs a database: start bouncer with DATABASE_URL set (the explain page works without one)."
	code := http.StatusOK
	if r.Method != http.MethodGet {
		code = http.StatusServiceUnavailable
	}
	h.renderSup(w, code, p)
	return true
}

const dateLayout = "2006-01-02"

// parseFilter reads the search form. From and To are dates, both included.
func parseFilter(q url.Values) (store.ReviewFilter, reviewForm, error) {
	v := reviewForm{Q: strings.TrimSpace(q.Get("q")), List: strings.TrimSpace(q.Get("list")),
		Reason: q.Get("reason"), Rule: strings.TrimSpace(q.Get("rule")), Category: q.Get("category"),
		From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to")), State: q.Get("state")}
	f := store.ReviewFilter{Query: v.Q, ListID: v.List, Rule: v.Rule, State: store.State(v.State)}
	if v.State == "" {
		v.State = string(store.StateActive)
	}
	if f.ListID == "(global)" {
		f.ListID, f.Global = "", true
	}
	if v.Reason != "" {
		r, err := store.ParseReason(v.Reason)
		if err != nil {
			return f, v, fmt.Errorf("no such reason %q", v.Reason)
		}
		f.Reason = r
	}
	if v.Category != "" {
		f.Category = classify.Category(v.Category)
		if !slices.Contains(classify.Categories, f.Category) {
			return f, v, fmt.Errorf("no such category %q", v.Category)
		}
	}
	for _, d := range []struct {
		s    string
		dst  *time.Time
		next bool
	}{{v.From, &f.From, false}, {v.To, &f.To, true}} {
		if d.s == "" {
			continue
		}
		t, err := time.Parse(dateLayout, d.s)
		if err != nil {
			return f, v, fmt.Errorf("%q is not a date like 2025-05-01", d.s)
		}
		if d.next {
			t = t.Add(24 * time.Hour) // the day itself is included
		}
		*d.dst = t
	}
	if s := q.Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return f, v, fmt.Errorf("bad page cursor %q", s)
		}
		f.Before = n
	}
	return f, v, nil
}

// suppressions serves GET /suppressions.
func (h *Handler) suppressions(w http.ResponseWriter, r *http.Request) {
	if h.needDB(w, r) {
		return
	}
	p := h.newSupPage(r)
	q := r.URL.Query()
	f, form, err := parseFilter(q)
	p.Form = form
	if err != nil {
		p.Error = "Cannot search: " + err.Error() + "."
		h.renderSup(w, http.StatusBadRequest, p)
		return
	}
	if n := q.Get("undone"); n != "" {
		p.Notice = "Lifted " + strconv.Itoa(atoi(n)) + " suppressions; they are listed here as lifted."
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	rows, next, err := h.db.SearchSuppressions(ctx, f)
	if err == nil {
		p.Total, err = h.db.CountSuppressions(ctx, f)
	}
	if errors.Is(err, store.ErrInvalid) {
		p.Error = "Cannot search: " + strings.TrimPrefix(err.Error(), "store: invalid argument: ") + "."
		h.renderSup(w, http.StatusBadRequest, p)
		return
	}
	if err != nil {
		h.log.Warn("explain: search suppressions", "err", err)
		p.Error = "The database did not answer; try again later."
		h.renderSup(w, http.StatusServiceUnavailable, p)
		return
	}
	p.Rows = rows
	if next != 0 {
		q.Set("before", strconv.FormatInt(next, 10))
		q.Del("undone")
		p.NextURL = "/suppressions?" + q.Encode()
	}
	h.renderSup(w, http.StatusOK, p)
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// detail loads suppression {id} into p. It answers the errors itself and
// reports whether p is ready.
func (h *Handler) detail(w http.ResponseWriter, r *http.Request, p *supPage) bool {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		p.Error = fmt.Sprintf("%q is not a suppression id (a number, as in /suppressions/42).", r.PathValue("id"))
		h.renderSup(w, http.StatusBadRequest, p)
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	d, err := h.db.SuppressionByID(ctx, id)
	if err != nil {
		h.log.Warn("explain: suppression", "id", id, "err", err)
		p.Error = "The database did not answer; try again later."
		h.renderSup(w, http.StatusServiceUnavailable, p)
		return false
	}
	if d == nil {
		p.Error = fmt.Sprintf("There is no suppression %d.", id)
		h.renderSup(w, http.StatusNotFound, p)
		return false
	}
	p.Detail, p.InForce = d, d.Active(h.db.Now())
	return true
}

// suppression serves GET /suppressions/{id}.
func (h *Handler) suppression(w http.ResponseWriter, r *http.Request) {
	if h.needDB(w, r) {
		return
	}
	p := h.newSupPage(r)
	if !h.detail(w, r, p) {
		return
	}
	if r.URL.Query().Get("undone") != "" && !p.InForce {
		p.Notice = "Undone: the suppression is lifted, the list memberships it had changed are back, and a suppression.removed event is on its way."
	}
	h.renderSup(w, http.StatusOK, p)
}

// undoForm reads an undo form's why and by; it says what is missing.
func (h *Handler) undoForm(w http.ResponseWriter, r *http.Request, p *supPage) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		p.Error = "Could not read the form: " + err.Error()
		return false
	}
	p.Why, p.By = strings.TrimSpace(r.PostForm.Get("why")), strings.TrimSpace(r.PostForm.Get("by"))
	if p.Why == "" {
		p.Error = "Say why you undo it: the reason is kept with the record and sent in the event."
		return false
	}
	return true
}

func (p *supPage) by() string { return cmp.Or(p.By, defaultBy) }

// undo serves POST /suppressions/{id}/undo.
func (h *Handler) undo(w http.ResponseWriter, r *http.Request) {
	if h.needDB(w, r) {
		return
	}
	p := h.newSupPage(r)
	formOK := h.undoForm(w, r, p)
	if !h.detail(w, r, p) {
		return
	}
	if !formOK {
		h.renderSup(w, http.StatusBadRequest, p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	_, err := h.db.UnsuppressID(ctx, p.Detail.ID, p.by(), p.Why)
	switch {
	case errors.Is(err, store.ErrNotSuppressed):
		p.Error = "This suppression is not in force any more: nothing to undo."
		h.renderSup(w, http.StatusConflict, p)
		return
	case err != nil:
		h.log.Warn("explain: undo suppression", "id", p.Detail.ID, "err", err)
		p.Error = "The database did not answer; nothing was undone. Try again later."
		h.renderSup(w, http.StatusServiceUnavailable, p)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/suppressions/%d?undone=1", p.Detail.ID), http.StatusSeeOther)
}

// bulkSelect reads a bulk undo's rule and day from form values.
func bulkSelect(v url.Values, p *supPage) (store.BulkSelect, bool) {
	bp := &bulkPreview{Rule: strings.TrimSpace(v.Get("rule")), Day: strings.TrimSpace(v.Get("day"))}
	p.Preview = bp
	sel := store.BulkSelect{Rule: bp.Rule}
	if bp.Day != "" {
		d, err := time.Parse(dateLayout, bp.Day)
		if err != nil {
			p.Error = fmt.Sprintf("%q is not a date like 2025-05-01.", bp.Day)
			return sel, false
		}
		sel.Day = d
	}
	if sel.Rule == "" && sel.Day.IsZero() {
		p.Error = "Name a rule or a day (or both) to undo their suppressions."
		return sel, false
	}
	return sel, true
}

// bulkPreviewPage serves GET /suppressions/undo: step 1, the preview.
func (h *Handler) bulkPreviewPage(w http.ResponseWriter, r *http.Request) {
	if h.needDB(w, r) {
		return
	}
	p := h.newSupPage(r)
	sel, ok := bulkSelect(r.URL.Query(), p)
	if !ok {
		h.renderSup(w, http.StatusBadRequest, p)
		return
	}
	h.preview(w, r, p, sel, http.StatusOK)
}

// preview counts what sel would lift into p.Preview and renders p.
func (h *Handler) preview(w http.ResponseWriter, r *http.Request, p *supPage, sel store.BulkSelect, code int) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	pv, err := h.db.PreviewBulkUndo(ctx, sel)
	if err != nil {
		h.log.Warn("explain: preview bulk undo", "err", err)
		p.Error = "The database did not answer; try again later."
		h.renderSup(w, http.StatusServiceUnavailable, p)
		return
	}
	p.Preview.UndoPreview = pv
	if pv.Count > store.MaxBulkUndo {
		p.Error = fmt.Sprintf("That is %d suppressions; one bulk undo lifts at most %d. Narrow it to a rule and a day.", pv.Count, store.MaxBulkUndo)
	}
	h.renderSup(w, code, p)
}

// bulkUndo serves POST /suppressions/undo: step 2, the confirmed undo.
func (h *Handler) bulkUndo(w http.ResponseWriter, r *http.Request) {
	if h.needDB(w, r) {
		return
	}
	p := h.newSupPage(r)
	formOK := h.undoForm(w, r, p)
	sel, ok := bulkSelect(r.PostForm, p)
	if !ok {
		h.renderSup(w, http.StatusBadRequest, p)
		return
	}
	want := store.UndoPreview{Count: atoi(r.PostForm.Get("count"))}
	want.MaxID, _ = strconv.ParseInt(r.PostForm.Get("max"), 10, 64)
	if !formOK {
		h.preview(w, r, p, sel, http.StatusBadRequest)
		return
	}
	if want.Count <= 0 || want.MaxID <= 0 {
		p.Error = "The confirmation lacks the preview's count: preview first, then confirm."
		h.preview(w, r, p, sel, http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	n, err := h.db.BulkUndo(ctx, sel, want, p.by(), p.Why)
	switch {
	case errors.Is(err, store.ErrPreviewStale):
		p.Error = "The suppressions changed since the preview, so nothing was undone. Here is the new count: confirm again."
		h.preview(w, r, p, sel, http.StatusConflict)
		return
	case errors.Is(err, store.ErrInvalid):
		p.Error = "Nothing was undone: " + strings.TrimPrefix(err.Error(), "store: invalid argument: ") + "."
		h.preview(w, r, p, sel, http.StatusBadRequest)
		return
	case err != nil:
		h.log.Warn("explain: bulk undo", "err", err)
		p.Error = "The database did not answer; nothing was undone. Try again later."
		h.renderSup(w, http.StatusServiceUnavailable, p)
		return
	}
	q := url.Values{"state": {string(store.StateLifted)}, "undone": {strconv.Itoa(n)}}
	if sel.Rule != "" {
		q.Set("rule", sel.Rule)
	}
	if p.Preview.Day != "" {
		q.Set("from", p.Preview.Day)
		q.Set("to", p.Preview.Day)
	}
	http.Redirect(w, r, "/suppressions?"+q.Encode(), http.StatusSeeOther)
}

// seams escapes s for HTML and marks where a long address, domain or rule
// may wrap: after @, dots, colons, slashes and plus signs (<wbr>). Nowhere else can a
// word break: the style sheet never breaks words.
func seams(s string) template.HTML {
	var b strings.Builder
	for _, r := range s {
		b.WriteString(template.HTMLEscapeString(string(r)))
		switch r {
		case '@', '.', ':', '/', '+':
			b.WriteString("<wbr>")
		}
	}
	return template.HTML(b.String())
}
