package classify

import "testing"

// readSES takes only a whole SES notification, bare or in SNS's envelope.
func TestReadSES(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{`{"notificationType":"Bounce","bounce":{},"mail":{}}` + "\n--\nIf you wish to stop receiving notifications", true},
		{`{"Type":"Notification","Message":"{\"eventType\":\"Complaint\",\"mail\":{}}"}`, true},
		{`{"notificationType":"Bounce","bounce":{"bouncedRecipients":[`, false}, // cut short
		{`{"Type":"Notification","Message":"not json, notificationType"}`, false},
		{`{"status":"ok","eventType":""}`, false},
		{"Hello,\n{\"notificationType\":\"Bounce\"}", false}, // JSON quoted in a person's words
		{"", false},
	} {
		if _, got := readSES(tc.text); got != tc.want {
			t.Errorf("readSES(%q) ok = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// An SES bounce that lists no remote reply is read by its subtype.
func TestSESSubTypeWithoutReply(t *testing.T) {
	for _, tc := range []struct {
		subType, status string
		cat             Category
		suppress        bool
	}{
		{"NoEmail", "", MailboxUnknown, false}, // the stage is unknown
		{"NoEmail", "5.1.1", MailboxUnknown, true},
		{"MailboxFull", "", MailboxFull, false},
		{"MessageTooLarge", "5.3.4", MessageTooLarge, false},
		{"General", "", Unknown, false},
	} {
		raw := "From: AWS Notifications <no-reply@sns.amazonaws.com>\nSubject: AWS Notification Message\n\n" +
			`{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"` + tc.subType +
			`","bouncedRecipients":[{"emailAddress":"x@example.net","status":"` + tc.status + `"}]},"mail":{}}` + "\n"
		rep, err := Classify([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Recipients) != 1 {
			t.Fatalf("%s: %d recipients", tc.subType, len(rep.Recipients))
		}
		r := rep.Recipients[0]
		if r.Address != "x@example.net" || r.Category != tc.cat || r.Suppress != tc.suppress {
			t.Errorf("%s %s: %s suppress=%v (rule %s, diagnostic %q), want %s suppress=%v",
				tc.subType, tc.status, r.Category, r.Suppress, r.Rule, r.Diagnostic, tc.cat, tc.suppress)
		}
	}
}

// A Transient bounce without a code is a temporary failure: soft, never
// suppressed; an Undetermined one without a code is kept for review.
func TestSESBounceTypeWithoutCode(t *testing.T) {
	for _, tc := range []struct {
		bounceType string
		status     string
		sev        Severity
	}{
		{"Transient", "4.0.0", Soft},
		{"Undetermined", "", Hard},
	} {
		raw := "From: AWS Notifications <no-reply@sns.amazonaws.com>\nSubject: AWS Notification Message\n\n" +
			`{"notificationType":"Bounce","bounce":{"bounceType":"` + tc.bounceType +
			`","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"x@example.net"}]},"mail":{}}` + "\n"
		rep, err := Classify([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		r := rep.Recipients[0]
		if r.Status != tc.status || r.Severity != tc.sev || r.Suppress {
			t.Errorf("%s: status %q severity %s suppress %v (rule %s), want %q %s false", tc.bounceType, r.Status, r.Severity, r.Suppress, r.Rule, tc.status, tc.sev)
		}
	}
}
