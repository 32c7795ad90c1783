package api

import (
	"fmt"
	"net/http"
	"strings"
)

// checkOne answers GET /api/v1/suppressions/check?address=&list=.
func (a *API) checkOne(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	addr := strings.TrimSpace(q.Get("address"))
	if addr == "" {
		writeError(w, http.StatusBadRequest, "missing ?address= (an email address; &list=L checks one list's suppressions too)")
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	res, err := a.db.CheckSuppressions(ctx, []string{addr}, q.Get("list"))
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	if res[0].Invalid != "" {
		writeError(w, http.StatusUnprocessableEntity, res[0].Invalid)
		return
	}
	writeJSON(w, http.StatusOK, checkOf(res[0], q.Get("list")))
}

// batchRequest is the body of POST /api/v1/suppressions/check.
type batchRequest struct {
	Addresses []string `json:"addresses"`
	ListID    string   `json:"list_id"`
}

// checkBatch answers POST /api/v1/suppressions/check: up to MaxBatch
// addresses in one round trip to the database, answered in order; an
// address that is not one gets its own "error".
func (a *API) checkBatch(w http.ResponseWriter, r *http.Request) {
	var req batchRequest
	if !readJSON(w, r, a.opts.MaxBody, &req) {
		return
	}
	switch n := len(req.Addresses); {
	case n == 0:
		writeError(w, http.StatusUnprocessableEntity, `"addresses" is empty: want 1 to 1000 email addresses`)
		return
	case n > MaxBatch:
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf(`"addresses" has %d entries: at most %d per request`, n, MaxBatch))
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	res, err := a.db.CheckSuppressions(ctx, req.Addresses, req.ListID)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	out := struct {
		Results []Check `json:"results"`
	}{make([]Check, len(res))}
	for i, c := range res {
		out.Results[i] = checkOf(c, req.ListID)
	}
	writeJSON(w, http.StatusOK, out)
}
