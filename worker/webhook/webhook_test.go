package webhook_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// delivery is one provider's signed event and what it must become.
type delivery struct {
	provider string
	body     []byte
	hdr      http.Header
	eventID  string
	address  string
	category string
	suppress bool
}

// Each provider's real signed payload is accepted; delivered three times
// it is stored once (rows, raw payload, suppression) and published once.
func TestDeliveredThreeTimesStoredOnce(t *testing.T) {
	e := newEnv(t)
	e.relay()
	now := time.Now()
	sgBody := sendgridBody(map[string]any{"email": "sg-dead@example.org", "event": "bounce", "type": "bounce",
		"sg_event_id": "sg-ev-1", "smtp-id": "<orig-sg@news.example>", "status": "5.1.1",
		"reason": "550 5.1.1 The email account that you tried to reach does not exist", "timestamp": now.Unix()},
		map[string]any{"email": "sg-open@example.org", "event": "open", "sg_event_id": "sg-ev-2", "timestamp": now.Unix()})
	pmBody := []byte(`{"RecordType":"Bounce","ID":4323372036854775807,"Type":"HardBounce","TypeCode":1,
	  "MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Email":"pm-dead@example.org","From":"news@example.com",
	  "Details":"smtp;550 5.1.1 The email account that you tried to reach does not exist","BouncedAt":"2019-11-05T16:33:54.9070259Z",
	  "Metadata":{"X-Campaign-Id":"c-7"}}`)
	deliveries := []delivery{
		{"mailgun", mailgunBody("mg-ev-1", "failed", "permanent", "mg-dead@example.org", "550", "5.1.1 user unknown", now, "tok-1"), nil,
			"mg-ev-1", "mg-dead@example.org", "mailbox_unknown", true},
		{"sendgrid", sgBody, e.sendgridHeaders(sgBody, now), "sg-ev-1", "sg-dead@example.org", "mailbox_unknown", true},
		{"postmark", pmBody, postmarkAuth(pmUser, pmPassword), "Bounce:4323372036854775807", "pm-dead@example.org", "mailbox_unknown", true},
		{"ses", e.snsBody("Notification", "sns-msg-1", testTopic,
			sesBounce("Permanent", "General", "ses-dead@example.org", "5.1.1", "smtp; 550 5.1.1 user unknown"), now, 2), nil,
			"sns-msg-1", "ses-dead@example.org", "mailbox_unknown", true},
		{"ses", e.snsBody("Notification", "sns-msg-2", testTopic,
			sesBounce("Undetermined", "Undetermined", "ses-away@example.org", "", "I am out of the office until Monday"), now, 1), nil,
			"sns-msg-2", "ses-away@example.org", "", false},
	}
	for _, d := range deliveries {
		for i := range 3 {
			if got := e.post(d.provider, d.body, d.hdr); got != http.StatusOK {
				t.Fatalf("POST /webhooks/%s (%s), delivery %d = %d, want 200", d.provider, d.eventID, i+1, got)
			}
		}
	}
	for _, d := range deliveries {
		if got := e.n(`SELECT count(*) FROM webhook_events WHERE provider = $1 AND event_id = $2 AND length(payload) > 0`, d.provider, d.eventID); got != 1 {
			t.Errorf("webhook_events of %s %s = %d, want 1", d.provider, d.eventID, got)
		}
		if got := e.n(`SELECT count(*) FROM bounces WHERE address = $1 AND verified`, d.address); got != 1 {
			t.Errorf("verified bounce rows of %s = %d, want 1", d.address, got)
		}
		if d.category != "" {
			if got := e.n(`SELECT count(*) FROM bounces WHERE address = $1 AND category = $2`, d.address, d.category); got != 1 {
				t.Errorf("bounce rows of %s with category %s = %d, want 1", d.address, d.category, got)
			}
		}
		want := 0
		if d.suppress {
			want = 1
		}
		if got := e.n(`SELECT count(*) FROM suppressions WHERE address = $1`, d.address); got != want {
			t.Errorf("suppressions of %s = %d, want %d", d.address, got, want)
		}
	}
	if got := e.n(`SELECT count(*) FROM bounces WHERE address = 'sg-open@example.org'`); got != 0 {
		t.Errorf("rows of a SendGrid open event = %d, want 0", got)
	}
	if got := e.n(`SELECT count(*) FROM bounces WHERE original_message_id = 'orig-sg@news.example'`); got != 1 {
		t.Errorf("SendGrid bounce rows with the original's Message-ID = %d, want 1", got)
	}
	if got := e.n(`SELECT count(*) FROM bounces WHERE campaign_id = 'c-7'`); got != 1 {
		t.Errorf("Postmark bounce rows with the Metadata campaign = %d, want 1", got)
	}
	pub := e.published()
	// Per provider: one bounce event per stored recipient, and a
	// suppression.added for each suppressing one.
	wantPub := map[string]int{"webhook:mailgun": 1, "webhook:sendgrid": 1, "webhook:postmark": 1, "webhook:ses": 2}
	for mb, want := range wantPub {
		bounces := 0
		for _, p := range pub[mb] {
			if p.Type == "bounce" {
				bounces++
			}
		}
		if bounces != want {
			t.Errorf("bounce events published from %s = %d, want %d", mb, bounces, want)
		}
	}
	for _, p := range []string{"mailgun", "sendgrid", "postmark"} {
		if s, d := e.metric(p, "stored"), e.metric(p, "duplicate"); s != 1 || d != 2 {
			t.Errorf("%s events stored, duplicate = %v, %v, want 1, 2", p, s, d)
		}
	}
	if got := e.certGets.Load(); got != 1 {
		t.Errorf("signing certificate fetched %d times for 6 SNS messages, want 1 (cached)", got)
	}
	if s, d := e.metric("ses", "stored"), e.metric("ses", "duplicate"); s != 2 || d != 4 {
		t.Errorf("ses events stored, duplicate = %v, %v, want 2, 4", s, d)
	}
}

// A payload with one byte changed, an old timestamp, an unknown topic, a
// reused token, bad credentials, bad JSON or an oversize body is refused
// with a 4xx, counted, and stores nothing.
func TestRefusedStoresNothing(t *testing.T) {
	e := newEnv(t)
	now, old := time.Now(), time.Now().Add(-time.Hour)
	ts := strconv.FormatInt(now.Unix(), 10)
	mg := mailgunBody("mg-1", "failed", "permanent", "a@example.org", "550", "5.1.1 user unknown", now, "tok-a")
	sg := sendgridBody(map[string]any{"email": "b@example.org", "event": "bounce", "sg_event_id": "sg-1", "reason": "550 5.1.1 user unknown"})
	ses := sesBounce("Permanent", "General", "c@example.org", "5.1.1", "smtp; 550 5.1.1 user unknown")
	pm := []byte(`{"RecordType":"Bounce","ID":1,"Type":"HardBounce","Email":"d@example.org","Details":"550 5.1.1 user unknown"}`)
	big := []byte(`[` + strings.Repeat(`{"event":"open"},`, testMaxBody/17) + `{}]`)
	cases := []struct {
		name, provider string
		body           []byte
		hdr            http.Header
		status         int
		outcome        string
	}{
		// Mailgun signs the timestamp and token only, not the event.
		{"mailgun one byte of the token changed", "mailgun", flipIn(mg, "tok-a"), nil, 401, "bad_signature"},
		{"mailgun timestamp changed", "mailgun", bytes.Replace(mg, []byte(`"timestamp":"`+ts), []byte(`"timestamp":"`+strconv.FormatInt(now.Unix()+1, 10)), 1), nil, 401, "bad_signature"},
		{"mailgun old timestamp", "mailgun", mailgunBody("mg-2", "failed", "permanent", "a@example.org", "550", "x", old, "tok-b"), nil, 403, "stale"},
		{"mailgun bad JSON", "mailgun", []byte(`{"signature":`), nil, 400, "bad_request"},
		{"sendgrid one byte changed", "sendgrid", flip(sg), e.sendgridHeaders(sg, now), 401, "bad_signature"},
		{"sendgrid old timestamp", "sendgrid", sg, e.sendgridHeaders(sg, old), 403, "stale"},
		{"sendgrid signed bad JSON", "sendgrid", []byte(`[{"event":`), e.sendgridHeaders([]byte(`[{"event":`), now), 400, "bad_request"},
		{"sendgrid unsigned", "sendgrid", sg, nil, 401, "bad_signature"},
		{"sendgrid oversize", "sendgrid", big, e.sendgridHeaders(big, now), 413, "too_large"},
		{"postmark password one byte changed", "postmark", pm, postmarkAuth(pmUser, string(flip([]byte(pmPassword)))), 401, "bad_signature"},
		{"postmark no credentials", "postmark", pm, nil, 401, "bad_signature"},
		{"ses one byte changed", "ses", flip(e.snsBody("Notification", "sns-1", testTopic, ses, now, 2)), nil, 401, "bad_signature"},
		{"ses old timestamp", "ses", e.snsBody("Notification", "sns-2", testTopic, ses, old, 2), nil, 403, "stale"},
		{"ses unknown topic", "ses", e.snsBody("Notification", "sns-3", "arn:aws:sns:eu-west-1:999:other", ses, now, 2), nil, 403, "unknown_topic"},
		{"ses unknown topic subscription", "ses", e.snsBody("SubscriptionConfirmation", "sns-4", "arn:aws:sns:eu-west-1:999:other", "confirm", now, 1), nil, 403, "unknown_topic"},
	}
	for _, c := range cases {
		before := e.metric(c.provider, c.outcome)
		if got := e.post(c.provider, c.body, c.hdr); got != c.status {
			t.Errorf("%s: POST = %d, want %d", c.name, got, c.status)
		}
		if got := e.metric(c.provider, c.outcome); got != before+1 {
			t.Errorf("%s: bouncer_webhook_events_total{%s,%s} = %v, want %v", c.name, c.provider, c.outcome, got, before+1)
		}
	}
	// A Mailgun token seen with one event is refused for another.
	if got := e.post("mailgun", mg, nil); got != 200 {
		t.Fatalf("mailgun first use of tok-a = %d, want 200", got)
	}
	reuse := mailgunBody("mg-other", "failed", "permanent", "x@example.org", "550", "5.1.1 user unknown", now, "tok-a")
	if got := e.post("mailgun", reuse, nil); got != 403 || e.metric("mailgun", "replayed") != 1 {
		t.Errorf("mailgun token reused for another event = %d (replayed %v), want 403 (1)", got, e.metric("mailgun", "replayed"))
	}
	if got := e.n(`SELECT count(*) FROM webhook_events`); got != 1 {
		t.Errorf("webhook_events after refusals = %d, want 1 (the accepted mailgun event)", got)
	}
	if got := e.n(`SELECT count(*) FROM source_messages WHERE mailbox <> 'webhook:mailgun'`); got != 0 {
		t.Errorf("source messages of refused requests = %d, want 0", got)
	}
	if got := e.confirms.Load(); got != 0 {
		t.Errorf("SubscribeURL GETs for an unknown topic = %d, want 0", got)
	}
	// An unconfigured provider is not mounted.
	if got := e.post("mandrill", []byte(`{}`), nil); got != http.StatusNotFound {
		t.Errorf("POST /webhooks/mandrill = %d, want 404", got)
	}
}

// A subscription to an allowed topic is confirmed by a GET of its
// SubscribeURL, on an SNS host only.
func TestSNSSubscriptionConfirmed(t *testing.T) {
	e := newEnv(t)
	if got := e.post("ses", e.snsBody("SubscriptionConfirmation", "sub-1", testTopic, "You have chosen to subscribe", time.Now(), 1), nil); got != 200 {
		t.Fatalf("SubscriptionConfirmation = %d, want 200", got)
	}
	if got := e.confirms.Load(); got != 1 {
		t.Errorf("SubscribeURL GETs = %d, want 1", got)
	}
	if got := e.metric("ses", "confirmed"); got != 1 {
		t.Errorf("confirmed = %v, want 1", got)
	}
	if got := e.n(`SELECT count(*) FROM source_messages`); got != 0 {
		t.Errorf("source messages after a confirmation = %d, want 0", got)
	}
}

// SES's other notification types through SNS: a Complaint suppresses as a
// complaint, a DeliveryDelay is a delayed row, a Delivery no row at all.
func TestSESNotificationTypes(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	msgs := map[string]string{
		"c1": `{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"angry@example.org"}],"complaintFeedbackType":"abuse"},"mail":{"messageId":"m1"}}`,
		"d1": `{"notificationType":"DeliveryDelay","deliveryDelay":{"delayedRecipients":[{"emailAddress":"slow@example.org","status":"4.4.7","diagnosticCode":"smtp; 421 4.4.7 try later"}]},"mail":{"messageId":"m2"}}`,
		"v1": `{"notificationType":"Delivery","delivery":{"recipients":["fine@example.org"],"smtpResponse":"250 2.0.0 OK"},"mail":{"messageId":"m3"}}`,
	}
	for id, m := range msgs {
		if got := e.post("ses", e.snsBody("Notification", id, testTopic, m, now, 2), nil); got != 200 {
			t.Fatalf("POST SES %s = %d, want 200", id, got)
		}
	}
	checks := []struct {
		query string
		want  int
	}{
		{`SELECT count(*) FROM bounces WHERE address = 'angry@example.org' AND category = 'complaint'`, 1},
		{`SELECT count(*) FROM suppressions WHERE address = 'angry@example.org'`, 1},
		{`SELECT count(*) FROM bounces WHERE address = 'slow@example.org' AND category = 'delayed'`, 1},
		{`SELECT count(*) FROM suppressions WHERE address = 'slow@example.org'`, 0},
		{`SELECT count(*) FROM bounces WHERE address = 'fine@example.org'`, 0},
		{`SELECT count(*) FROM webhook_events WHERE provider = 'ses'`, 3},
	}
	for _, c := range checks {
		if got := e.n(c.query); got != c.want {
			t.Errorf("%s = %d, want %d", c.query, got, c.want)
		}
	}
}

// An event the store refuses (an event id longer than a header line) is a
// 400, not a 503 the provider would retry for ever.
func TestInvalidEventIs400(t *testing.T) {
	e := newEnv(t)
	id := strings.Repeat("x", 1000)
	body := mailgunBody(id, "failed", "permanent", "a@example.org", "550", "5.1.1 user unknown", time.Now(), "tok-long")
	if got := e.post("mailgun", body, nil); got != 400 {
		t.Errorf("POST with a 1000-byte event id = %d, want 400", got)
	}
	if got := e.n(`SELECT count(*) FROM source_messages`); got != 0 {
		t.Errorf("source messages = %d, want 0", got)
	}
}
