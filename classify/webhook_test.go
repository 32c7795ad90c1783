package classify

import (
	"net/textproto"
	"testing"
)

// A provider's label is evidence; the decision is the rules': the same
// words decide as in a mailbox bounce.
func TestEvent(t *testing.T) {
	tests := []struct {
		name     string
		ev       Event
		kind     Kind
		category Category
		suppress bool
	}{
		{"hard bounce, user unknown", Event{Provider: "sendgrid", Label: "bounce", Action: EventFailed,
			Recipient: "jo@example.org", Status: "5.1.1", Diagnostic: "550 5.1.1 <jo@example.org>: Recipient address rejected: User unknown"},
			KindDSN, MailboxUnknown, true},
		{"hard bounce label, relay text: never suppresses", Event{Provider: "mailgun", Label: "failed/permanent", Action: EventFailed,
			Recipient: "jo@example.org", SMTPCode: 553, Diagnostic: "553 5.7.1 Not an open relay"},
			KindDSN, RelayDenied, false},
		{"label alone", Event{Provider: "postmark", Label: "HardBounce", Action: EventFailed, Recipient: "jo@example.org"},
			KindDSN, Unknown, false},
		{"dropped by the provider's list", Event{Provider: "sendgrid", Label: "dropped", Action: EventSuppressed,
			Recipient: "jo@example.org", Diagnostic: "Bounced Address"},
			KindDSN, Unknown, false},
		{"deferred", Event{Provider: "sendgrid", Label: "deferred", Action: EventDelayed,
			Recipient: "jo@example.org", Diagnostic: "451 4.7.1 greylisted, try again later"},
			KindDelayed, Delayed, false},
		{"soft bounce without a code: 4.0.0, soft", Event{Provider: "postmark", Label: "SoftBounce", Action: EventFailed,
			Temporary: true, Recipient: "jo@example.org"},
			KindDSN, Unknown, false},
		{"soft bounce, mailbox full", Event{Provider: "postmark", Label: "SoftBounce", Action: EventFailed,
			Temporary: true, Recipient: "jo@example.org", Diagnostic: "452 4.2.2 Mailbox full"},
			KindDSN, MailboxFull, false},
		{"complaint", Event{Provider: "mailgun", Label: "complained", Action: EventComplaint, Recipient: "jo@example.org"},
			KindComplaint, Complaint, false},
		{"unsubscribe", Event{Provider: "sendgrid", Label: "unsubscribe", Action: EventUnsubscribe, Recipient: "jo@example.org"},
			KindComplaint, Complaint, false},
		{"auto reply", Event{Provider: "postmark", Label: "AutoResponder", Action: EventAutoReply, Recipient: "jo@example.org"},
			KindAutoReply, "", false},
	}
	c := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := c.Event(&tt.ev)
			if rep.Kind != tt.kind {
				t.Errorf("Event(%s).Kind = %s, want %s", tt.name, rep.Kind, tt.kind)
			}
			if tt.category == "" {
				if len(rep.Recipients) != 0 {
					t.Errorf("Event(%s) = %d recipients, want 0", tt.name, len(rep.Recipients))
				}
				return
			}
			if len(rep.Recipients) != 1 {
				t.Fatalf("Event(%s) = %d recipients, want 1", tt.name, len(rep.Recipients))
			}
			r := rep.Recipients[0]
			if r.Category != tt.category || r.Suppress != tt.suppress {
				t.Errorf("Event(%s) = %s suppress %v (rule %s), want %s suppress %v", tt.name, r.Category, r.Suppress, r.Rule, tt.category, tt.suppress)
			}
			if r.Address != "jo@example.org" {
				t.Errorf("Event(%s).Address = %q", tt.name, r.Address)
			}
		})
	}
}

// The original's header fields a provider lists give the list and
// campaign as a returned original's would.
func TestEventOriginal(t *testing.T) {
	h := textproto.MIMEHeader{"List-Id": {"News <news.example.org>"}, "X-Campaign-Id": {"c42"}}
	rep := New(Options{}).Event(&Event{Provider: "mailgun", Label: "failed/permanent", Action: EventFailed,
		Recipient: "jo@example.org", MessageID: "<abc@example.org>", Header: h})
	o := rep.Original
	if o.ListID != "news.example.org" || o.CampaignID != "c42" || o.MessageID != "abc@example.org" {
		t.Errorf("Event().Original = %+v, want list news.example.org, campaign c42, message abc@example.org", o)
	}
}

// An SES "Undetermined" bounce (often an out-of-office reply SES could
// not read) never suppresses; a permanent 5.1.1 does.
func TestSESNotification(t *testing.T) {
	c := New(Options{})
	und := `{"notificationType":"Bounce","bounce":{"bounceType":"Undetermined","bounceSubType":"Undetermined",
	  "bouncedRecipients":[{"emailAddress":"jo@example.org"}]},"mail":{"messageId":"x"}}`
	rep, ok := c.SES([]byte(und))
	if !ok || len(rep.Recipients) != 1 || rep.Recipients[0].Suppress {
		t.Fatalf("SES(Undetermined) = %+v, %v, want one recipient, not suppressed", rep, ok)
	}
	ooo := `{"notificationType":"Bounce","bounce":{"bounceType":"Undetermined","bounceSubType":"Undetermined",
	  "bouncedRecipients":[{"emailAddress":"jo@example.org","diagnosticCode":"I am out of the office until Monday"}]}}`
	if rep, ok := c.SES([]byte(ooo)); !ok || rep.Recipients[0].Suppress {
		t.Errorf("SES(out of office) = %+v, %v, want not suppressed", rep, ok)
	}
	hard := `{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
	  "bouncedRecipients":[{"emailAddress":"jo@example.org","action":"failed","status":"5.1.1",
	  "diagnosticCode":"smtp; 550 5.1.1 user unknown"}]}}`
	rep, ok = c.SES([]byte(hard))
	if !ok || rep.Recipients[0].Category != MailboxUnknown || !rep.Recipients[0].Suppress {
		t.Errorf("SES(permanent 5.1.1) = %+v, %v, want mailbox_unknown, suppressed", rep, ok)
	}
	if _, ok := c.SES([]byte(`{"notificationType":"Open"}`)); ok {
		t.Errorf("SES(Open) = ok, want false")
	}
	if _, ok := c.SES([]byte(`not json`)); ok {
		t.Errorf("SES(not json) = ok, want false")
	}
}

// A provider's temporary failure without a code of its own is the class's
// 4.0.0: soft, never hard.
func TestEventTemporary(t *testing.T) {
	rep := New(Options{}).Event(&Event{Provider: "postmark", Label: "SoftBounce", Action: EventFailed, Temporary: true, Recipient: "jo@example.org"})
	if r := rep.Recipients[0]; r.Status != "4.0.0" || r.Severity != Soft || r.Suppress {
		t.Errorf("Event(SoftBounce) = status %q severity %s suppress %v, want 4.0.0 soft false", r.Status, r.Severity, r.Suppress)
	}
}
