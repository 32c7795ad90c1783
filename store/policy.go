package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/classify"
)

// Scope says where a suppression applies.
type Scope string

// The scopes. A global suppression covers the address on every list; a list
// suppression only on one list (Suppression.ListID).
const (
	ScopeGlobal Scope = "global"
	ScopeList   Scope = "list"
)

// Reason says why an address is suppressed.
type Reason string

// The reasons, from the weakest to the strongest: a stronger reason
// replaces a weaker one on the open suppression of the same address and
// scope (soft, then hard: one suppression, reason hard).
const (
	ReasonSoft        Reason = "soft"        // N soft bounces on distinct days within a window; expires
	ReasonHard        Reason = "hard"        // a dead address: the classifier said Suppress
	ReasonManual      Reason = "manual"      // added by a person (bouncer suppressions add)
	ReasonUnsubscribe Reason = "unsubscribe" // an automatic unsubscribe request (List-Unsubscribe mailto)
	ReasonComplaint   Reason = "complaint"   // the recipient reported the mail as spam (ARF, JMRP)
)

func (r Reason) rank() int {
	switch r {
	case ReasonSoft:
		return 1
	case ReasonHard, ReasonManual:
		return 2
	case ReasonComplaint, ReasonUnsubscribe:
		return 3
	case ReasonErased:
		return 4
	}
	return 0
}

// memberStatus is the list_members status a suppression of reason r sets.
func (r Reason) memberStatus() string {
	switch r {
	case ReasonComplaint:
		return "complained"
	case ReasonManual, ReasonUnsubscribe:
		return "unsubscribed"
	}
	return "bounced"
}

// ParseReason returns the Reason named s (hard, soft, complaint, manual).
func ParseReason(s string) (Reason, error) {
	switch r := Reason(strings.ToLower(strings.TrimSpace(s))); r {
	case ReasonSoft, ReasonHard, ReasonManual, ReasonComplaint, ReasonUnsubscribe:
		return r, nil
	}
	return "", fmt.Errorf("%w: unknown suppression reason %q (want hard, soft, complaint, unsubscribe or manual)", ErrInvalid, s)
}

// Policy decides which failed recipients become suppressions. Zero fields
// take the defaults in brackets.
//
//   - A recipient the classifier marks Suppress (the dead-address
//     categories mailbox_unknown, domain_unknown, address_invalid,
//     mailbox_disabled) is suppressed at once, reason hard. The classifier's
//     flag is the authority: a hard bounce with Suppress false (a bounce of
//     one of our auto-replies, say) never suppresses.
//   - A complaint (category complaint: an ARF report, RFC 5965, or a
//     Microsoft JMRP one) is suppressed at once, reason complaint, in
//     ComplaintScope, and its list memberships become "complained"; the
//     classifier leaves Suppress false for complaints, the category
//     decides. An ARF report of feedback type not-spam is no complaint. An
//     automatic unsubscribe request (feedback type opt-out) is suppressed
//     with reason unsubscribe, memberships "unsubscribed".
//   - A soft category (SoftCategories) suppresses, reason soft, only when the
//     address has soft bounces on SoftThreshold distinct UTC days within
//     SoftWindow (counted in whole days: 15 days means any 15 consecutive
//     calendar days) that include this bounce's day, whatever the order
//     the bounces are saved in; the suppression expires SoftExpiry after it
//     is made. Days are those of arrival in the mailbox (INTERNALDATE). With
//     list scope only the soft bounces of that list count.
//   - Sender-side and passing categories (relay_denied, auth_required,
//     sender_rejected, blocked, content_rejected, policy, message_too_large,
//     rate_limited, network, system, unknown, delayed, auto_reply) never
//     suppress, whatever the flag says, and neither does a bounce of an
//     automatic message (Original.AutoReply).
type Policy struct {
	// Scope of suppressions from bounces [ScopeGlobal]. With ScopeList a
	// bounce that carries a List-Id suppresses the address on that list
	// only; one without falls back to global.
	Scope Scope
	// ComplaintScope is Scope for complaints [ScopeGlobal].
	ComplaintScope Scope
	// SoftThreshold is the number of distinct days with a soft bounce that
	// suppresses [3]; negative turns soft suppression off.
	SoftThreshold int
	// SoftWindow is the window those days must fall in [15 days].
	SoftWindow time.Duration
	// SoftExpiry is how long a soft suppression lasts [30 days].
	SoftExpiry time.Duration
	// SoftCategories are the categories counted [mailbox_full, expired].
	SoftCategories []classify.Category
	// MaxRecipients is the most failed recipients a message may list and
	// still suppress [1000]. A message past it keeps every bounce row and
	// event, but suppresses nothing and changes no list membership: no
	// real bounce of one mail lists thousands of recipients, a forged or
	// broken one may, and it must not remove a whole list at once.
	MaxRecipients int
}

// Policy defaults, documented on Policy and in the README.
const (
	DefaultSoftThreshold = 3
	DefaultSoftWindow    = 15 * 24 * time.Hour
	DefaultSoftExpiry    = 30 * 24 * time.Hour
	DefaultMaxRecipients = 1000
)

// DefaultPolicy returns the policy the zero Policy means.
func DefaultPolicy() Policy {
	p, _ := Policy{}.withDefaults()
	return p
}

func (p Policy) withDefaults() (Policy, error) {
	if p.Scope == "" {
		p.Scope = ScopeGlobal
	}
	if p.ComplaintScope == "" {
		p.ComplaintScope = ScopeGlobal
	}
	for _, s := range []Scope{p.Scope, p.ComplaintScope} {
		if s != ScopeGlobal && s != ScopeList {
			return p, fmt.Errorf("%w: policy scope %q (want global or list)", ErrInvalid, s)
		}
	}
	if p.SoftThreshold == 0 {
		p.SoftThreshold = DefaultSoftThreshold
	}
	if p.SoftWindow <= 0 {
		p.SoftWindow = DefaultSoftWindow
	}
	if p.SoftExpiry <= 0 {
		p.SoftExpiry = DefaultSoftExpiry
	}
	if p.MaxRecipients <= 0 {
		p.MaxRecipients = DefaultMaxRecipients
	}
	if len(p.SoftCategories) == 0 {
		p.SoftCategories = []classify.Category{classify.MailboxFull, classify.Expired}
	}
	for _, c := range p.SoftCategories {
		if neverSuppress(c) {
			return p, fmt.Errorf("%w: policy: %s may never suppress", ErrInvalid, c)
		}
	}
	return p, nil
}

// PolicyFromEnv reads a Policy from the environment; unset variables keep
// the defaults:
//
//	BOUNCER_SUPPRESS_SCOPE    global | list
//	BOUNCER_COMPLAINT_SCOPE   global | list
//	BOUNCER_SOFT_THRESHOLD    distinct days, 0 or "off" to turn soft suppression off
//	BOUNCER_SOFT_WINDOW       e.g. 15d, 360h
//	BOUNCER_SOFT_EXPIRY       e.g. 30d
//	BOUNCER_SOFT_CATEGORIES   comma-separated, e.g. mailbox_full,expired
//	BOUNCER_MAX_RECIPIENTS    failed recipients past which a message suppresses nothing
func PolicyFromEnv(getenv func(string) string) (Policy, error) {
	var p Policy
	p.Scope = Scope(strings.TrimSpace(getenv("BOUNCER_SUPPRESS_SCOPE")))
	p.ComplaintScope = Scope(strings.TrimSpace(getenv("BOUNCER_COMPLAINT_SCOPE")))
	if v := strings.TrimSpace(getenv("BOUNCER_SOFT_THRESHOLD")); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case v == "off" || (err == nil && n <= 0):
			p.SoftThreshold = -1
		case err != nil:
			return p, fmt.Errorf("%w: BOUNCER_SOFT_THRESHOLD %q: not a number", ErrInvalid, v)
		default:
			p.SoftThreshold = n
		}
	}
	for name, dst := range map[string]*time.Duration{"BOUNCER_SOFT_WINDOW": &p.SoftWindow, "BOUNCER_SOFT_EXPIRY": &p.SoftExpiry} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			d, err := ParseDuration(v)
			if err != nil {
				return p, fmt.Errorf("%s: %w", name, err)
			}
			*dst = d
		}
	}
	if v := strings.TrimSpace(getenv("BOUNCER_MAX_RECIPIENTS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return p, fmt.Errorf("%w: BOUNCER_MAX_RECIPIENTS %q: want a positive number", ErrInvalid, v)
		}
		p.MaxRecipients = n
	}
	if v := strings.TrimSpace(getenv("BOUNCER_SOFT_CATEGORIES")); v != "" {
		for _, c := range strings.Split(v, ",") {
			p.SoftCategories = append(p.SoftCategories, classify.Category(strings.TrimSpace(c)))
		}
	}
	return p.withDefaults()
}

// ParseDuration parses a Go duration ("36h") or a number of days ("15d").
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.ParseFloat(n, 64)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%w: duration %q", ErrInvalid, s)
		}
		return time.Duration(d * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: duration %q", ErrInvalid, s)
	}
	return d, nil
}

// neverSuppress is classify's list of the categories that must never
// suppress, checked again here on purpose: a false suppression is the most
// dangerous error.
func neverSuppress(c classify.Category) bool { return classify.NeverSuppress(c) }

// candidateKind is what the policy makes of one stored failed recipient.
type candidateKind int

const (
	candNone      candidateKind = iota
	candImmediate               // suppress now (hard or complaint)
	candSoft                    // count soft bounces first
)

// judge applies the policy to one failed recipient of a report: what to
// do, with what reason, in which list ("" = global).
func (p *Policy) judge(r *classify.Recipient, rep *classify.Report) (candidateKind, Reason, string) {
	listID := cleanText(rep.Original.ListID, maxShort)
	if r.Category == classify.Complaint {
		if p.ComplaintScope != ScopeList {
			listID = ""
		}
		switch strings.ToLower(rep.FeedbackType) {
		case "not-spam":
			return candNone, "", ""
		case "opt-out":
			return candImmediate, ReasonUnsubscribe, listID
		}
		return candImmediate, ReasonComplaint, listID
	}
	if rep.Original.AutoReply || neverSuppress(r.Category) {
		return candNone, "", ""
	}
	if p.Scope != ScopeList {
		listID = ""
	}
	if r.Suppress {
		return candImmediate, ReasonHard, listID
	}
	if p.SoftThreshold > 0 && p.isSoft(r.Category) {
		return candSoft, ReasonSoft, listID
	}
	return candNone, "", ""
}

func (p *Policy) isSoft(c classify.Category) bool {
	for _, s := range p.SoftCategories {
		if s == c {
			return true
		}
	}
	return false
}
