package classify

import "strings"

// returnPathFields are the bounce's own header fields that name the
// envelope recipient it was delivered to, most trusted first: the final
// delivery agent adds Delivered-To (Postfix local, Dovecot LDA, qmail) and
// X-Original-To (Postfix) on top of the header, Exim adds Envelope-To; To
// is what the bouncing MTA wrote, which for a DSN is the envelope sender
// of the failed message (RFC 3464 §2: the notification goes to the
// return path).
var returnPathFields = []string{"Delivered-To", "X-Original-To", "Envelope-To", "To"}

// maxReturnPaths bounds the addresses read: a hostile header may repeat a
// field thousands of times.
const maxReturnPaths = 16

// returnPaths returns Report.ReturnPaths: the addresses of
// returnPathFields in the bounce's header, then the returned original's
// Return-Path, without repeats.
func (m *message) returnPaths() []string {
	var out []string
	seen := map[string]bool{}
	add := func(values []string) {
		for _, v := range values {
			for _, a := range addressList(v) {
				if k := strings.ToLower(a); !seen[k] && len(out) < maxReturnPaths {
					seen[k] = true
					out = append(out, a)
				}
			}
		}
	}
	for _, f := range returnPathFields {
		add(m.h.Values(f))
	}
	if m.origHeader != nil {
		add(m.origHeader.Values("Return-Path"))
	}
	return out
}
