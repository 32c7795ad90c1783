package explain

import "net/http"

// Protect returns next behind the explain page's own checks: the same
// security headers, the token (as "Authorization: Bearer TOKEN" on /api/
// paths, where a token in the URL is refused because URLs end up in logs;
// the session cookie too), the loopback-host rule when no token is
// configured, and the refusal of unsafe cross-origin browser requests.
// Errors on /api/ paths are JSON ({"error": ...}). It mounts other
// handlers (the suppressions API) under the same access rules:
//
//	api.New(db, api.Options{...}).Register(mux, ex.Protect)
//
// next must not serve /login or /logout: those bypass the token check.
func (h *Handler) Protect(next http.Handler) http.Handler {
	inner := h.cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.guard(w, r, inner)
	})
}
