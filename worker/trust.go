package worker

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/worker/verp"
)

// TrustMode says which bounces may suppress (BOUNCER_TRUST). Only a bounce
// of mail we sent may remove anyone (DESIGN.md, Guarantees): anybody can
// send a bounce mailbox a forged "550 5.1.1 user unknown" for any address.
type TrustMode string

// The trust modes.
const (
	// TrustAuto is TrustVERP when VERP keys are set, else TrustSent when
	// sent_messages has a row, else TrustAny; decided once, at start.
	TrustAuto TrustMode = "auto"
	// TrustVERP: a bounce suppresses only when one of its return paths
	// (classify.Report.ReturnPaths) holds a token of one of our keys
	// issued for the failed recipient.
	TrustVERP TrustMode = "verp"
	// TrustSent: only when the returned original's Message-ID is in
	// sent_messages, sent to the failed recipient.
	TrustSent TrustMode = "sent"
	// TrustAny: every bounce may suppress, as before trust existed. A
	// forged bounce can then remove anyone.
	TrustAny TrustMode = "any"
)

// EnvTrust is the variable TrustFromEnv reads.
const EnvTrust = "BOUNCER_TRUST"

// TrustConfig is the trust policy as configured: the mode and, when
// BOUNCER_VERP_KEYS or BOUNCER_VERP_KEYS_FILE is set, the codec that
// reads return paths.
type TrustConfig struct {
	Mode TrustMode
	VERP *verp.Codec // nil: no keys
}

// TrustFromEnv reads BOUNCER_TRUST (default auto) and the VERP keys. A
// mode that needs keys it does not have is an error, as is a bad key.
func TrustFromEnv(getenv func(string) string) (TrustConfig, error) {
	tc := TrustConfig{Mode: TrustMode(strings.ToLower(strings.TrimSpace(getenv(EnvTrust))))}
	switch tc.Mode {
	case "":
		tc.Mode = TrustAuto
	case TrustAuto, TrustVERP, TrustSent, TrustAny:
	default:
		return tc, fmt.Errorf("%s=%q: want verp, sent, any or auto", EnvTrust, tc.Mode)
	}
	c, err := verp.LoadCodec(getenv)
	switch {
	case err == nil:
		tc.VERP = &c
	case !errors.Is(err, verp.ErrNoKeys):
		return tc, err
	case tc.Mode == TrustVERP:
		return tc, fmt.Errorf("%s=verp needs %s or %s", EnvTrust, verp.EnvKeys, verp.EnvKeysFile)
	}
	return tc, nil
}

// trustPolicy is the policy in force: the mode, decided once (auto looks
// at the keys and at sent_messages).
type trustPolicy struct {
	cfg  TrustConfig
	mu   sync.Mutex
	mode TrustMode // "" until decided
	// unverified counts the failed recipients of saved batches that were
	// not proven ours, by verified_by: a rise is someone forging bounces,
	// or a sending setup that lost its tokens or stopped importing sent
	// messages.
	unverified *prometheus.CounterVec
}

// newTrustPolicy returns the policy of cfg, its metric registered in reg.
func newTrustPolicy(cfg TrustConfig, reg prometheus.Registerer) *trustPolicy {
	t := &trustPolicy{cfg: cfg, unverified: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bouncer_unverified_total",
		Help: "Failed recipients saved as not proven to answer mail we sent (recorded, never acted on), by verified_by.",
	}, []string{"verified_by"})}
	reg.MustRegister(t.unverified)
	return t
}

// observe counts the unverified failed recipients of a saved batch.
func (t *trustPolicy) observe(msgs []store.Message) {
	for i := range msgs {
		m := &msgs[i]
		for j := range m.Trust {
			if !m.Trust[j].Verified && m.Report.Recipients[j].Failed() {
				t.unverified.WithLabelValues(m.Trust[j].By).Inc()
			}
		}
	}
}

// trustMode decides the mode once and logs it; until it succeeds (it asks
// the database for auto without keys) every call tries again.
func (w *Worker) trustMode(ctx context.Context) (TrustMode, error) {
	t := w.trust
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mode != "" {
		return t.mode, nil
	}
	mode, why := t.cfg.Mode, "set by "+EnvTrust
	switch {
	case mode != TrustAuto && mode != "":
	case t.cfg.VERP != nil:
		mode, why = TrustVERP, "auto: VERP keys are set"
	default:
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		has, err := w.db.HasSentMessages(cctx)
		cancel()
		if err != nil {
			return "", fmt.Errorf("decide %s=auto: %w", EnvTrust, err)
		}
		mode, why = TrustAny, "auto: no VERP keys and sent_messages is empty: a forged bounce can remove anyone"
		if has {
			mode, why = TrustSent, "auto: no VERP keys, sent_messages has rows"
		}
	}
	t.mode = mode
	lvl := w.log.Info
	if mode == TrustAny {
		lvl = w.log.Warn
	}
	lvl("trust policy", "mode", string(mode), "why", why)
	return mode, nil
}

// verifyBatch applies the trust policy to the classified messages of a
// batch before they are saved: each failed recipient gets a verdict
// (store.Message.Trust), and an unverified one loses its suppress flag,
// its rule saying why (+unverified:...). The store then records it and
// suppresses nothing for it. Messages that have their verdicts (a batch
// saved again) are left alone.
func (w *Worker) verifyBatch(ctx context.Context, msgs []store.Message) error {
	mode, err := w.trustMode(ctx)
	if err != nil {
		return err
	}
	var sent map[string]store.SentMessage
	if mode == TrustSent {
		var ids []string
		for i := range msgs {
			if r := msgs[i].Report; r != nil && msgs[i].Trust == nil && r.Original.MessageID != "" {
				ids = append(ids, r.Original.MessageID)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		sent, err = w.db.SentMessages(cctx, ids)
		cancel()
		if err != nil {
			return err
		}
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Report == nil || m.Trust != nil {
			continue
		}
		m.Trust = w.trust.verdicts(mode, m.Report, sent)
	}
	return nil
}

// verdicts judges every recipient of rep.
func (t *trustPolicy) verdicts(mode TrustMode, rep *classify.Report, sent map[string]store.SentMessage) []store.Trust {
	out := make([]store.Trust, len(rep.Recipients))
	var tokens []*verp.Token
	var noToken string
	if mode == TrustVERP {
		tokens, noToken = t.tokens(rep.ReturnPaths)
	}
	for i := range rep.Recipients {
		r := &rep.Recipients[i]
		var winner string
		switch mode {
		case TrustVERP:
			out[i], winner = verpVerdict(tokens, noToken, r, rep)
		case TrustSent:
			out[i], winner = sentVerdict(sent, r, rep)
		default:
			out[i] = store.Trust{Verified: true, By: "trust:any"}
		}
		if winner != "" {
			// The proof names another address the bounce quotes (a
			// forwarded or rewritten recipient): ours wins, and the
			// reported one is recorded beside the proof.
			out[i].By += ";reported=" + r.Address
			r.Address = winner
		}
		if !out[i].Verified && (r.Suppress || r.Category == classify.Complaint) {
			r.Suppress = false
			r.Rule += "+" + out[i].By
		}
	}
	return out
}

// tokens decodes the return paths: the tokens that verify, and, when none
// does, why not (the most telling failure: an unknown key, then a bad
// tag or malformed token, then no token at all).
func (t *trustPolicy) tokens(paths []string) ([]*verp.Token, string) {
	var toks []*verp.Token
	why := "unverified:no-token"
	for _, p := range paths {
		tok, err := t.cfg.VERP.Decode(p)
		switch {
		case err == nil:
			toks = append(toks, tok)
		case errors.Is(err, verp.ErrUnknownKey):
			why = "unverified:unknown-key"
		case (errors.Is(err, verp.ErrBadTag) || errors.Is(err, verp.ErrMalformed)) && why == "unverified:no-token":
			why = "unverified:bad-tag"
		}
	}
	return toks, why
}

// verpVerdict: verified when a token commits to the failed recipient
// itself. When none does but one commits to another address the bounce
// gives for that recipient (its Original-Recipient, or the returned
// original's To), the token's recipient wins: that address is returned,
// and the bounce is about it. A token of an address the bounce names
// nowhere proves nothing, or a subscriber could bounce anyone with his own
// token.
func verpVerdict(tokens []*verp.Token, noToken string, r *classify.Recipient, rep *classify.Report) (store.Trust, string) {
	if len(tokens) == 0 {
		return store.Trust{By: noToken}, ""
	}
	for _, tok := range tokens {
		if tok.MatchRecipient(r.Address) {
			return store.Trust{Verified: true, By: "verp:" + tok.KeyID}, ""
		}
	}
	for _, c := range otherNames(r, rep) {
		for _, tok := range tokens {
			if tok.MatchRecipient(c) {
				return store.Trust{Verified: true, By: "verp:" + tok.KeyID}, c
			}
		}
	}
	return store.Trust{By: "unverified:wrong-recipient"}, ""
}

// sentVerdict: verified when the returned original's Message-ID was sent
// to the failed recipient (compared normalised: case-insensitive, punycode
// domains). When it was sent to another address the bounce gives for that
// recipient (see otherNames), the sent recipient wins, as a token's does.
func sentVerdict(sent map[string]store.SentMessage, r *classify.Recipient, rep *classify.Report) (store.Trust, string) {
	id := store.CleanMessageID(rep.Original.MessageID)
	if id == "" {
		return store.Trust{By: "unverified:no-message-id"}, ""
	}
	m, ok := sent[id]
	if !ok {
		return store.Trust{By: "unverified:not-sent"}, ""
	}
	if a, _ := store.NormalizeAddress(r.Address); a == m.Recipient {
		return store.Trust{Verified: true, By: "sent"}, ""
	}
	for _, c := range otherNames(r, rep) {
		if a, _ := store.NormalizeAddress(c); a == m.Recipient {
			return store.Trust{Verified: true, By: "sent"}, c
		}
	}
	return store.Trust{By: "unverified:wrong-recipient"}, ""
}

// otherNames are the other addresses a bounce gives for failed recipient
// r: its Original-Recipient (RFC 3464 §2.3.1, the address as first given
// to the MTA, before forwarding or rewriting) and, when the returned
// original was addressed to one address only, that address.
func otherNames(r *classify.Recipient, rep *classify.Report) []string {
	var out []string
	if r.OriginalAddress != "" && !strings.EqualFold(r.OriginalAddress, r.Address) {
		out = append(out, r.OriginalAddress)
	}
	if to, err := mail.ParseAddressList(rep.Original.To); err == nil && len(to) == 1 &&
		!strings.EqualFold(to[0].Address, r.Address) {
		out = append(out, to[0].Address)
	}
	return out
}

// VerifyVERP judges the recipients of rep by their signed return paths
// alone, as BOUNCER_TRUST=verp does, without a database: for bouncer parse
// and the explain page when VERP keys are set. Like the worker, it clears
// the suppress flag of an unverified recipient and suffixes its rule. The
// verdicts have the index of rep.Recipients.
func VerifyVERP(c *verp.Codec, rep *classify.Report) []store.Trust {
	t := &trustPolicy{cfg: TrustConfig{Mode: TrustVERP, VERP: c}}
	return t.verdicts(TrustVERP, rep, nil)
}
