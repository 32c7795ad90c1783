package worker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bouncer-mail/bouncer/classify"
)

// HeaderConfig names the header fields of a returned original that carry
// its list, campaign and subscriber ids (classify.Options): from
// BOUNCER_LIST_HEADERS, BOUNCER_CAMPAIGN_HEADERS and
// BOUNCER_SUBSCRIBER_HEADERS. Nil fields take classify's defaults.
type HeaderConfig struct {
	List, Campaign, Subscriber []string
}

// headerVars are the variables of HeaderConfig with classify's defaults.
var headerVars = []struct {
	name     string
	defaults []string
	field    func(*HeaderConfig) *[]string
}{
	{"BOUNCER_LIST_HEADERS", classify.DefaultListHeaders, func(h *HeaderConfig) *[]string { return &h.List }},
	{"BOUNCER_CAMPAIGN_HEADERS", classify.DefaultCampaignHeaders, func(h *HeaderConfig) *[]string { return &h.Campaign }},
	{"BOUNCER_SUBSCRIBER_HEADERS", classify.DefaultSubscriberHeaders, func(h *HeaderConfig) *[]string { return &h.Subscriber }},
}

// HeadersFromEnv reads the header lists. A value is a comma-separated list
// of field names, in order of preference, that replaces the defaults; a
// value starting with "+" puts its names before the defaults instead
// ("+X-My-Campaign"). `bouncer run`, `parse` and `serve` all read them, so
// that a bounce gets the same ids everywhere.
func HeadersFromEnv(getenv func(string) string) (HeaderConfig, error) {
	var h HeaderConfig
	for _, v := range headerVars {
		val := strings.TrimSpace(getenv(v.name))
		if val == "" {
			continue
		}
		extend := strings.HasPrefix(val, "+")
		names := SplitList(strings.TrimPrefix(val, "+"))
		if len(names) == 0 {
			return h, fmt.Errorf("%s=%q: no header field name", v.name, val)
		}
		for _, n := range names {
			if !validFieldName(n) {
				return h, fmt.Errorf("%s: %q is not a header field name (RFC 5322 §3.6.8: printable ASCII without spaces or colons)", v.name, n)
			}
		}
		if extend {
			names = append(names, v.defaults...)
		}
		*v.field(&h) = slices.Compact(names)
	}
	return h, nil
}

// Options returns classify's options with these header lists.
func (h HeaderConfig) Options(maxSize int) classify.Options {
	return classify.Options{MaxSize: maxSize, ListHeaders: h.List, CampaignHeaders: h.Campaign, SubscriberHeaders: h.Subscriber}
}

// validFieldName reports whether s is a header field name (RFC 5322
// §3.6.8: printable US-ASCII but colon).
func validFieldName(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}
