package worker

import (
	"slices"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
)

func TestHeadersFromEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	h, err := HeadersFromEnv(env(nil))
	if err != nil || h.List != nil || h.Campaign != nil || h.Subscriber != nil {
		t.Fatalf("no variables: %+v, %v; want nil lists (classify's defaults)", h, err)
	}
	h, err = HeadersFromEnv(env(map[string]string{
		"BOUNCER_LIST_HEADERS":       "X-Our-List, List-Id",
		"BOUNCER_CAMPAIGN_HEADERS":   "+X-Our-Send",
		"BOUNCER_SUBSCRIBER_HEADERS": "X-Our-Member",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.List, []string{"X-Our-List", "List-Id"}) {
		t.Errorf("list = %q", h.List)
	}
	if want := append([]string{"X-Our-Send"}, classify.DefaultCampaignHeaders...); !slices.Equal(h.Campaign, want) {
		t.Errorf("campaign = %q, want %q", h.Campaign, want)
	}
	if !slices.Equal(h.Subscriber, []string{"X-Our-Member"}) {
		t.Errorf("subscriber = %q", h.Subscriber)
	}
	o := h.Options(4096)
	if o.MaxSize != 4096 || !slices.Equal(o.ListHeaders, h.List) || !slices.Equal(o.SubscriberHeaders, h.Subscriber) {
		t.Errorf("Options = %+v", o)
	}

	for _, bad := range []string{"X-Bad Name", "X-Colon:", ",", "+", "X-Ünicode"} {
		_, err := HeadersFromEnv(env(map[string]string{"BOUNCER_SUBSCRIBER_HEADERS": bad}))
		if err == nil || !strings.Contains(err.Error(), "BOUNCER_SUBSCRIBER_HEADERS") {
			t.Errorf("BOUNCER_SUBSCRIBER_HEADERS=%q: err %v, want one naming the variable", bad, err)
		}
	}
	var c Config
	if err := c.FromEnv(env(map[string]string{"BOUNCER_LIST_HEADERS": "a b"})); err == nil {
		t.Error("FromEnv accepted a bad header name")
	}
}
