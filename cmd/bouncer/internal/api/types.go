package api

import (
	"time"

	"github.com/bouncer-mail/bouncer/store"
)

// Suppression is a suppression record as the API shows it.
type Suppression struct {
	ID         int64      `json:"id"`
	Address    string     `json:"address"`
	Domain     string     `json:"domain"`
	Scope      string     `json:"scope"`
	ListID     string     `json:"list_id"`
	Reason     string     `json:"reason"`
	Category   string     `json:"category"`
	BounceID   int64      `json:"bounce_id,omitempty"`
	Note       string     `json:"note,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RemovedAt  *time.Time `json:"removed_at,omitempty"`
	RemovedBy  string     `json:"removed_by,omitempty"`
	RemovedWhy string     `json:"removed_why,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func suppressionOf(s *store.Suppression) Suppression {
	return Suppression{
		ID: s.ID, Address: s.Address, Domain: s.Domain, Scope: string(s.Scope()), ListID: s.ListID,
		Reason: string(s.Reason), Category: string(s.Category), BounceID: s.BounceID, Note: s.Note,
		CreatedAt: s.CreatedAt.UTC(), CreatedBy: s.CreatedBy, ExpiresAt: optTime(s.ExpiresAt),
		RemovedAt: optTime(s.RemovedAt), RemovedBy: s.RemovedBy, RemovedWhy: s.RemovedWhy,
	}
}

// Check is the answer for one address: the fields of the NATS service
// bouncer.suppression.check, and the normalised address.
type Check struct {
	Address    string     `json:"address"`
	Normalized string     `json:"normalized,omitempty"`
	ListID     string     `json:"list_id,omitempty"`
	Suppressed bool       `json:"suppressed"`
	Scope      string     `json:"scope,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Category   string     `json:"category,omitempty"`
	Since      *time.Time `json:"since,omitempty"`
	Expires    *time.Time `json:"expires,omitempty"`
	// Error says why the address could not be checked (batch only).
	Error string `json:"error,omitempty"`
}

func checkOf(r store.CheckResult, listID string) Check {
	c := Check{Address: r.Address, Normalized: r.Normalized, ListID: listID, Error: r.Invalid}
	if r.Invalid != "" {
		c.Normalized = ""
	}
	if s := r.Suppression; s != nil {
		c.Suppressed = true
		c.Scope, c.Reason, c.Category = string(s.Scope()), string(s.Reason), string(s.Category)
		c.Since, c.Expires = optTime(s.CreatedAt), optTime(s.ExpiresAt)
	}
	return c
}

// Bounce is one stored failed recipient in an address's history.
type Bounce struct {
	ID                int64     `json:"id"`
	Kind              string    `json:"kind"`
	Action            string    `json:"action,omitempty"`
	Status            string    `json:"status,omitempty"`
	SMTPCode          int       `json:"smtp_code"`
	Diagnostic        string    `json:"diagnostic,omitempty"`
	RemoteMTA         string    `json:"remote_mta,omitempty"`
	Category          string    `json:"category"`
	Severity          string    `json:"severity"`
	Suppress          bool      `json:"suppress"`
	Rule              string    `json:"rule,omitempty"`
	ListID            string    `json:"list_id,omitempty"`
	CampaignID        string    `json:"campaign_id,omitempty"`
	OriginalMessageID string    `json:"original_message_id,omitempty"`
	OccurredAt        time.Time `json:"occurred_at"`
	Mailbox           string    `json:"mailbox"`
}

func bounceOf(b *store.BounceRow) Bounce {
	return Bounce{
		ID: b.ID, Kind: string(b.Kind), Action: b.Action, Status: b.Status, SMTPCode: b.SMTPCode,
		Diagnostic: b.Diagnostic, RemoteMTA: b.RemoteMTA, Category: string(b.Category),
		Severity: string(b.Severity), Suppress: b.Suppress, Rule: b.Rule, ListID: b.ListID,
		CampaignID: b.CampaignID, OriginalMessageID: b.OriginalMessageID, OccurredAt: b.OccurredAt.UTC(),
		Mailbox: b.Mailbox,
	}
}
