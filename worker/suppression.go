package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/bouncer-mail/bouncer/store"
)

// SuppressionSubject is the NATS subject of the suppression check service.
const SuppressionSubject = "bouncer.suppression.check"

// CheckRequest asks whether an address is suppressed, globally or for one
// list (ListID set).
type CheckRequest struct {
	Address string `json:"address"`
	ListID  string `json:"list_id,omitempty"`
}

// CheckResponse answers a CheckRequest. When Suppressed, the other fields
// describe the suppression in force (a global one wins over a list's).
type CheckResponse struct {
	Address    string     `json:"address"`
	ListID     string     `json:"list_id,omitempty"`
	Suppressed bool       `json:"suppressed"`
	Scope      string     `json:"scope,omitempty"`  // global or list
	Reason     string     `json:"reason,omitempty"` // hard, soft, complaint, manual
	Category   string     `json:"category,omitempty"`
	Since      *time.Time `json:"since,omitempty"`
	Expires    *time.Time `json:"expires,omitempty"`
}

// serveSuppressionCheck runs the micro service bouncer.suppression.check
// until ctx ends. Requests are JSON CheckRequests; a bare address is also
// accepted. NATS being away does not stop it: the subscription is
// restored when the connection comes back.
func (w *Worker) serveSuppressionCheck(ctx context.Context) error {
	svc, err := micro.AddService(w.nc, micro.Config{
		Name:        "bouncer",
		Version:     "1.0.0",
		Description: "bouncer suppression checks",
		Endpoint: &micro.EndpointConfig{
			Subject: SuppressionSubject,
			Handler: micro.ContextHandler(ctx, w.handleCheck),
		},
	})
	if err != nil {
		return fmt.Errorf("worker: suppression service: %w", err)
	}
	<-ctx.Done()
	return svc.Stop()
}

func (w *Worker) handleCheck(ctx context.Context, req micro.Request) {
	var cr CheckRequest
	data := strings.TrimSpace(string(req.Data()))
	if strings.HasPrefix(data, "{") {
		if err := json.Unmarshal([]byte(data), &cr); err != nil {
			req.Error("400", "bad request: "+err.Error(), nil)
			return
		}
	} else {
		cr.Address = data
	}
	cr.Address = strings.TrimSpace(cr.Address)
	if cr.Address == "" || !strings.Contains(cr.Address, "@") {
		req.Error("400", "bad request: no address", nil)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sup, err := w.db.CheckSuppression(ctx, cr.Address, cr.ListID)
	if errors.Is(err, store.ErrInvalid) {
		req.Error("400", "bad request: "+err.Error(), nil)
		return
	}
	if err != nil {
		w.log.Warn("suppression check", "err", err, "rcpt_domain", domainOf(cr.Address))
		req.Error("503", "store unavailable", nil)
		return
	}
	resp := CheckResponse{Address: cr.Address, ListID: cr.ListID, Suppressed: sup != nil}
	if sup != nil {
		resp.Scope = string(sup.Scope())
		resp.Reason = string(sup.Reason)
		resp.Category = string(sup.Category)
		resp.Since = &sup.CreatedAt
		if !sup.ExpiresAt.IsZero() {
			resp.Expires = &sup.ExpiresAt
		}
	}
	req.RespondJSON(resp)
}

// domainOf reduces an address to its domain for logs.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}
