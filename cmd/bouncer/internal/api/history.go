package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// historyBody is the answer of GET /api/v1/addresses/{address}/history.
type historyBody struct {
	Address      string        `json:"address"`
	Check        Check         `json:"check"`
	Suppressions []Suppression `json:"suppressions"`
	Bounces      []Bounce      `json:"bounces"`
}

// history answers GET /api/v1/addresses/{address}/history?limit=: the
// check, every suppression record and the latest bounces (default 50).
func (a *API) history(w http.ResponseWriter, r *http.Request) {
	addr := r.PathValue("address")
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("?limit=%q: want 1 to 1000", v))
			return
		}
		limit = n
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	chk, err := a.db.CheckSuppressions(ctx, []string{addr}, "")
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	if chk[0].Invalid != "" {
		writeError(w, http.StatusUnprocessableEntity, chk[0].Invalid)
		return
	}
	bounces, sups, err := a.db.AddressHistory(ctx, addr, limit)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	out := historyBody{Address: chk[0].Normalized, Check: checkOf(chk[0], ""),
		Suppressions: make([]Suppression, len(sups)), Bounces: make([]Bounce, len(bounces))}
	for i := range sups {
		out.Suppressions[i] = suppressionOf(&sups[i])
	}
	for i := range bounces {
		out.Bounces[i] = bounceOf(&bounces[i])
	}
	writeJSON(w, http.StatusOK, out)
}

// erasure is the answer of DELETE /api/v1/subjects/{address}.
type erasure struct {
	Address       string           `json:"address"`
	Pseudonym     string           `json:"pseudonym"`
	AlreadyErased bool             `json:"already_erased"`
	Rows          map[string]int64 `json:"rows"`
}

// erase answers DELETE /api/v1/subjects/{address}?by=&why=: the person
// is forgotten (store.Erase) and stays suppressed by a keyed hash.
func (a *API) erase(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	by, why := strings.TrimSpace(q.Get("by")), strings.TrimSpace(q.Get("why"))
	if by == "" || why == "" {
		writeError(w, http.StatusBadRequest, "say who asks for the erasure and why: ?by=WHO&why=WHY (e.g. a request number)")
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	res, err := a.db.Erase(ctx, r.PathValue("address"), by, why)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, erasure{Address: res.Address, Pseudonym: res.Pseudonym, AlreadyErased: res.Already, Rows: res.Rows})
}
