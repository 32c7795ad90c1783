package explain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

//go:embed page.html suppressions.html style.css
var files embed.FS

var (
	style     = mustRead("style.css")
	styleHash = func() string {
		sum := sha256.Sum256([]byte(style))
		return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
	}()
	pageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
		// The style sheet is ours, and its hash is in the CSP.
		"style": func() template.CSS { return template.CSS(style) },
		"class": func(f classify.Fault) string { return strings.ReplaceAll(string(f), " ", "-") },
		"time": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"seams":      seams,
		"now":        time.Now,
		"maxBulk":    func() int { return store.MaxBulkUndo },
		"categories": func() []classify.Category { return classify.Categories },
		"reasons": func() []store.Reason {
			return []store.Reason{store.ReasonHard, store.ReasonSoft, store.ReasonComplaint, store.ReasonManual, store.ReasonUnsubscribe}
		},
	}).ParseFS(files, "page.html", "suppressions.html"))
)

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	return string(b)
}

// page is what page.html renders.
type page struct {
	NeedLogin bool // show the token form instead of the page
	LoggedIn  bool // a token is configured and the request carried it
	Error     string
	Notice    string
	DB        bool // a database is configured: address lookup works
	MaxBody   string
	APIURL    string // this server's /api/v1/parse, for the curl example

	Input   string // the pasted text, back in the textarea
	Source  string // what was classified: "pasted text" or the file's name
	Kind    classify.Kind
	Results []result

	Address string // the lookup form's value
	Lookup  *lookupView
}

// result is one record of a classified message, with its explanation.
type result struct {
	Rec      classify.Record
	Exp      classify.Explanation
	Suppress string // classify's words for what bouncer does with the address
	Note     string
	Text     string // classify.WriteExplanation's output: what `bouncer parse` prints
	JSON     string // the record as `bouncer parse --json` prints it
	// Current is the suppression in force in the database (Checked: the
	// database was asked; CheckError: it did not answer).
	Checked    bool
	Current    *store.Suppression
	CheckError bool
}

// maxEcho is the largest pasted text put back into the textarea.
const maxEcho = 256 << 10

func (h *Handler) newPage(r *http.Request) *page {
	ok, _ := h.auth.check(r)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &page{DB: h.db != nil, MaxBody: sizeText(h.max), LoggedIn: h.auth.enabled() && ok,
		APIURL: scheme + "://" + r.Host + "/api/v1/parse"}
}

func (h *Handler) render(w http.ResponseWriter, code int, p *page) {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, p); err != nil {
		h.log.Error("explain: render page", "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// page serves GET /.
func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	h.render(w, http.StatusOK, h.newPage(r))
}

// submit serves the form: classify the pasted text or the uploaded file.
func (h *Handler) submit(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(r)
	raw, source, tooLarge, err := h.readForm(w, r)
	switch {
	case tooLarge:
		p.Error = h.tooLargeText()
		h.render(w, http.StatusRequestEntityTooLarge, p)
		return
	case err != nil:
		p.Error = "Could not read the form: " + err.Error()
		h.render(w, http.StatusBadRequest, p)
		return
	case len(bytes.TrimSpace(raw)) == 0:
		p.Notice = "Nothing to explain yet: paste a bounce (all of it, headers included) into the box, or choose an .eml file, then press Explain."
		h.render(w, http.StatusBadRequest, p)
		return
	}
	if source == "" && len(raw) <= maxEcho {
		p.Input = string(raw)
	}
	if source == "" {
		source = "pasted text"
	}
	p.Source = source
	recs := h.recs(raw)
	p.Kind = recs[0].Kind
	for i := range recs {
		p.Results = append(p.Results, newResult(&recs[i]))
	}
	h.checkSuppressions(r.Context(), p.Results)
	h.render(w, http.StatusOK, p)
}

// readForm reads the message of a form post: the "file" part when a file
// was chosen, else the "message" field. source is the file's name, or ""
// for pasted text.
func (h *Handler) readForm(w http.ResponseWriter, r *http.Request) (raw []byte, source string, tooLarge bool, err error) {
	if r.ContentLength > h.max {
		return nil, "", true, nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.max)
	defer func() {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			raw, source, tooLarge, err = nil, "", true, nil
		}
	}()
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "multipart/form-data" {
		// An urlencoded form (curl -d, or a page without enctype).
		if err := r.ParseForm(); err != nil {
			return nil, "", false, err
		}
		return []byte(r.PostForm.Get("message")), "", false, nil
	}
	// Read the parts as they stream in: ParseMultipartForm would spool a
	// large upload to a temporary file.
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", false, err
	}
	var text, file []byte
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", false, err
		}
		switch part.FormName() {
		case "message":
			text, err = io.ReadAll(part)
		case "file":
			file, err = io.ReadAll(part)
			if len(file) > 0 {
				source = part.FileName()
				if source == "" {
					source = "uploaded file"
				}
			}
		default:
			_, err = io.Copy(io.Discard, part)
		}
		part.Close()
		if err != nil {
			return nil, "", false, err
		}
	}
	if len(file) > 0 {
		return file, source, false, nil
	}
	return text, "", false, nil
}

func newResult(rec *classify.Record) result {
	res := result{Rec: *rec, Exp: classify.Explain(rec)}
	if rec.Error != "" {
		// classify's words for an unreadable message are for a mailbox
		// (it stays in quarantine); here a person pasted it, so the advice
		// is how to paste a whole message.
		res.Exp.What = "This is not a mail message bouncer can read (" + rec.Error + ")."
		res.Exp.Todo = "Paste the whole message, headers included (your mail program's \"Show original\" or \"View source\"), or choose the .eml file."
	}
	var text bytes.Buffer
	classify.WriteExplanation(&text, rec)
	res.Text = text.String()
	if rec.Bounce {
		res.Suppress = classify.SuppressWords(rec)
		if rec.OriginalAutoReply {
			res.Note = classify.AutoReplyNote
		}
	}
	var j bytes.Buffer
	enc := json.NewEncoder(&j)
	enc.SetEscapeHTML(false) // as bouncer parse --json
	enc.SetIndent("", "  ")
	_ = enc.Encode(rec) // a Record always encodes
	res.JSON = j.String()
	return res
}

// maxChecks bounds the database lookups of one form post.
const maxChecks = 50

// checkSuppressions asks the database, when there is one, whether each
// failed recipient is suppressed now.
func (h *Handler) checkSuppressions(ctx context.Context, rs []result) {
	if h.db == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for i := range rs {
		if i == maxChecks {
			break
		}
		r := &rs[i]
		if !r.Rec.Bounce || r.Rec.Recipient == "" {
			continue
		}
		s, err := h.db.CheckSuppression(ctx, r.Rec.Recipient, r.Rec.ListID)
		if err != nil {
			_, domain := store.NormalizeAddress(r.Rec.Recipient)
			h.log.Warn("explain: check suppression", "rcpt_domain", domain, "err", err)
			r.CheckError = true
			return // the next ones would fail the same way
		}
		r.Checked, r.Current = true, s
	}
}

// api serves POST /api/v1/parse: the raw message in, NDJSON records out.
func (h *Handler) api(w http.ResponseWriter, r *http.Request) {
	raw, tooLarge, err := h.readBody(w, r)
	switch {
	case tooLarge:
		writeJSONError(w, http.StatusRequestEntityTooLarge, "message larger than "+sizeText(h.max))
		return
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	case len(bytes.TrimSpace(raw)) == 0:
		writeJSONError(w, http.StatusBadRequest, "empty body: send the raw message (headers and body) as the request body, e.g. curl --data-binary @bounce.eml")
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as bouncer parse --json
	for _, rec := range h.recs(raw) {
		_ = enc.Encode(&rec) // a Record always encodes
	}
	w.Header().Set("Content-Type", "application/x-ndjson; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// lookupView is an address's state in the database.
type lookupView struct {
	Address      string // normalised
	Error        string
	Suppressions []suppressionView
	Bounces      []store.BounceRow
}

type suppressionView struct {
	store.Suppression
	InForce bool // in force now
}

// maxHistory is how many bounces the lookup shows.
const maxHistory = 50

// lookup serves GET /lookup?address=.
func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(r)
	p.Address = strings.TrimSpace(r.URL.Query().Get("address"))
	if h.db == nil {
		p.Notice = "Address lookup needs a database: start bouncer with DATABASE_URL set (the page explains bounces without one)."
		h.render(w, http.StatusOK, p)
		return
	}
	addr, domain := store.NormalizeAddress(p.Address)
	if p.Address == "" || domain == "" || len(p.Address) > 320 {
		p.Notice = "Type a whole email address (name@example.com) to look it up."
		h.render(w, http.StatusBadRequest, p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	bounces, sups, err := h.db.AddressHistory(ctx, addr, maxHistory)
	lv := &lookupView{Address: addr}
	p.Lookup = lv
	if err != nil {
		h.log.Warn("explain: address history", "rcpt_domain", domain, "err", err)
		lv.Error = "The database did not answer; try again later."
		h.render(w, http.StatusServiceUnavailable, p)
		return
	}
	now := time.Now()
	lv.Bounces = bounces
	for _, s := range sups {
		lv.Suppressions = append(lv.Suppressions, suppressionView{s, s.Active(now)})
	}
	h.render(w, http.StatusOK, p)
}
