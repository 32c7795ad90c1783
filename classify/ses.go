package classify

import (
	"encoding/json"
	"net/textproto"
	"strings"
)

// Amazon SES reports what became of a message it sent as a JSON
// notification, published through SNS and often subscribed to by email: the
// mail's body is the JSON object, with SNS's footer after it, or SNS's own
// envelope whose "Message" holds the object as a string. Its fields are a
// DSN's (action, status, diagnosticCode, reportingMTA), so a notification
// is read as one: a Bounce lists its failed recipients, a DeliveryDelay its
// delayed ones, a Complaint the complaining ones, a Delivery the delivered
// ones. The original's header comes listed in "mail".

// sesNotification is the part of an SES notification that is read. Event
// publishing names the type "eventType" where notifications say
// "notificationType".
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           *struct {
		BounceType        string         `json:"bounceType"`
		BounceSubType     string         `json:"bounceSubType"`
		BouncedRecipients []sesRecipient `json:"bouncedRecipients"`
		ReportingMTA      string         `json:"reportingMTA"`
		RemoteMTAIP       string         `json:"remoteMtaIp"`
	} `json:"bounce"`
	DeliveryDelay *struct {
		DelayedRecipients []sesRecipient `json:"delayedRecipients"`
		ReportingMTA      string         `json:"reportingMTA"`
	} `json:"deliveryDelay"`
	Complaint *struct {
		ComplainedRecipients  []sesRecipient `json:"complainedRecipients"`
		ComplaintFeedbackType string         `json:"complaintFeedbackType"`
	} `json:"complaint"`
	Delivery *struct {
		Recipients   []string `json:"recipients"`
		SMTPResponse string   `json:"smtpResponse"`
		ReportingMTA string   `json:"reportingMTA"`
		RemoteMTAIP  string   `json:"remoteMtaIp"`
	} `json:"delivery"`
	Mail struct {
		Headers []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
		CommonHeaders struct {
			MessageID string `json:"messageId"`
		} `json:"commonHeaders"`
	} `json:"mail"`
}

type sesRecipient struct {
	EmailAddress   string `json:"emailAddress"`
	Action         string `json:"action"`
	Status         string `json:"status"`
	DiagnosticCode string `json:"diagnosticCode"`
}

// sesSuppressionList are the bounce subtypes SES gives when it did not
// send at all, because the address is on its own suppression list (global,
// or the account's): no receiving server was asked, so the notice is no
// evidence that the address is dead.
var sesSuppressionList = map[string]bool{"Suppressed": true, "OnAccountSuppressionList": true}

// sesSubTypeWords say what a bounce subtype means, for a recipient that SES
// lists without the remote's reply. They are read by the rules like any
// diagnostic, so "NoEmail" alone is a dead mailbox of unknown stage:
// recorded, not suppressed, unless the status says 5.1.1.
var sesSubTypeWords = map[string]string{
	"NoEmail":            "the target email address does not exist",
	"MailboxFull":        "mailbox full",
	"MessageTooLarge":    "message too large",
	"ContentRejected":    "content rejected",
	"AttachmentRejected": "prohibited attachment",
}

// fromSES fills rep from an Amazon SES notification in the message's first
// text part. It reports false when there is none.
func (m *message) fromSES(rep *Report) bool {
	if len(m.texts) == 0 {
		return false
	}
	n, ok := readSES(m.texts[0].text())
	if !ok {
		return false
	}
	return m.fillSES(rep, &n)
}

// fillSES fills rep from the SES notification n. It reports false when n
// is of no type read here, or lists no recipient.
func (m *message) fillSES(rep *Report, n *sesNotification) bool {
	typ := n.NotificationType
	if typ == "" {
		typ = n.EventType
	}
	switch {
	case typ == "Bounce" && n.Bounce != nil && len(n.Bounce.BouncedRecipients) > 0:
		b := n.Bounce
		rep.Kind = KindDSN
		rep.ReportingMTA = stripType(b.ReportingMTA)
		for _, br := range b.BouncedRecipients {
			r := br.recipient()
			r.RemoteMTA = b.RemoteMTAIP
			if r.Status == "" && b.BounceType == "Transient" && findReplyCode(r.Diagnostic) == 0 && quotedStatus(r.Diagnostic) == "" {
				// SES says the failure is temporary and gives no code:
				// the class's X.0.0 (RFC 3464 §2.3.4 wants a status).
				r.Status = "4.0.0"
			}
			if r.Diagnostic == "" && sesSubTypeWords[b.BounceSubType] != "" {
				// No remote reply listed: SES's subtype is all there is.
				r.Diagnostic = "Amazon SES: " + sesSubTypeWords[b.BounceSubType] + " (" + b.BounceSubType + ")"
			}
			if sesSuppressionList[b.BounceSubType] {
				// SES's own verdict, said in the words the decision table's
				// suppression_list row reads, ahead of any reply it quotes.
				r.Diagnostic = strings.TrimSuffix("Amazon SES did not send: the address is on its suppression list ("+
					b.BounceSubType+"); "+r.Diagnostic, "; ")
			}
			rep.Recipients = append(rep.Recipients, r)
		}
	case typ == "DeliveryDelay" && n.DeliveryDelay != nil && len(n.DeliveryDelay.DelayedRecipients) > 0:
		rep.Kind = KindDSN
		rep.ReportingMTA = stripType(n.DeliveryDelay.ReportingMTA)
		for _, dr := range n.DeliveryDelay.DelayedRecipients {
			r := dr.recipient()
			r.Action = "delayed"
			rep.Recipients = append(rep.Recipients, r)
		}
	case typ == "Complaint" && n.Complaint != nil && len(n.Complaint.ComplainedRecipients) > 0:
		rep.Kind = KindComplaint
		rep.FeedbackType = strings.ToLower(n.Complaint.ComplaintFeedbackType)
		if rep.FeedbackType == "" {
			rep.FeedbackType = "abuse"
		}
		for _, cr := range n.Complaint.ComplainedRecipients {
			rep.Recipients = append(rep.Recipients, complaintRecipient(sesAddress(cr.EmailAddress),
				"feedback report: "+rep.FeedbackType, "ses:complaint:"+rep.FeedbackType))
		}
	case typ == "Delivery" && n.Delivery != nil && len(n.Delivery.Recipients) > 0:
		d := n.Delivery
		rep.Kind = KindDSN
		rep.ReportingMTA = stripType(d.ReportingMTA)
		for _, a := range d.Recipients {
			rep.Recipients = append(rep.Recipients, Recipient{
				Address: sesAddress(a), Action: "delivered", Diagnostic: d.SMTPResponse,
				Status: quotedStatus(d.SMTPResponse), SMTPCode: findReplyCode(d.SMTPResponse), RemoteMTA: d.RemoteMTAIP,
			})
		}
	default:
		return false
	}
	rep.Original = m.sesOriginal(n)
	return true
}

// recipient turns a listed recipient into a Recipient, its action
// "failed" unless the notification says.
func (sr *sesRecipient) recipient() Recipient {
	action := strings.ToLower(strings.TrimSpace(sr.Action))
	if action == "" {
		action = "failed"
	}
	return Recipient{
		Address: sesAddress(sr.EmailAddress), Action: action,
		Status: findStatus(sr.Status), Diagnostic: stripType(sr.DiagnosticCode),
	}
}

// sesAddress is the address of an SES recipient field, which may carry a
// display name ("Jo <jo@example.org>").
func sesAddress(v string) string {
	return fieldAddress(v)
}

// readSES decodes the SES notification that text starts with (after
// white space), directly or inside SNS's envelope. Whatever follows the
// JSON object (SNS's footer) is ignored.
func readSES(text string) (sesNotification, bool) {
	var n sesNotification
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, "{") || !strings.Contains(text, "notificationType") && !strings.Contains(text, "eventType") {
		return n, false
	}
	var env struct {
		Type    string `json:"Type"`
		Message string `json:"Message"`
	}
	body := text
	if json.NewDecoder(strings.NewReader(text)).Decode(&env) == nil && env.Type == "Notification" && env.Message != "" {
		body = env.Message // SNS's envelope, the notification a JSON string in it
	}
	if err := json.NewDecoder(strings.NewReader(body)).Decode(&n); err != nil {
		return n, false
	}
	return n, n.NotificationType != "" || n.EventType != ""
}

// sesOriginal describes the original from the header fields a notification
// lists ("mail.headers"; SES leaves some out when "headersTruncated").
func (m *message) sesOriginal(n *sesNotification) Original {
	h := textproto.MIMEHeader{}
	for _, f := range n.Mail.Headers {
		if f.Name != "" {
			h.Add(f.Name, f.Value)
		}
	}
	o := m.originalFrom(h, "ses")
	if o.MessageID == "" && n.Mail.CommonHeaders.MessageID != "" {
		o.Source = "ses"
		o.MessageID = strings.Trim(n.Mail.CommonHeaders.MessageID, "<> \t")
	}
	return o
}
