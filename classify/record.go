package classify

// Record is the flat, JSON-ready form of one (message, recipient) outcome:
// the objects `bouncer parse --json` prints and `POST /api/v1/parse` answers.
// A message that is not a bounce gives one Record with Bounce false.
type Record struct {
	File              string   `json:"file,omitempty"`
	Bounce            bool     `json:"bounce"`
	Kind              Kind     `json:"kind"`
	Recipient         string   `json:"recipient"`
	OriginalRecipient string   `json:"original_recipient,omitempty"`
	Action            string   `json:"action,omitempty"`
	Status            string   `json:"status"`
	SMTPCode          int      `json:"smtp_code"`
	Category          Category `json:"category"`
	Severity          Severity `json:"severity"`
	Hard              bool     `json:"hard"`
	Suppress          bool     `json:"suppress"`
	Diagnostic        string   `json:"diagnostic"`
	RemoteMTA         string   `json:"remote_mta,omitempty"`
	ReportingMTA      string   `json:"reporting_mta,omitempty"`
	FeedbackType      string   `json:"feedback_type,omitempty"`
	Rule              string   `json:"rule"`
	Why               string   `json:"why,omitempty"` // the decision table row's reason

	OriginalMessageID string `json:"original_message_id,omitempty"`
	ListID            string `json:"list_id,omitempty"`
	CampaignID        string `json:"campaign_id,omitempty"`
	SubscriberID      string `json:"subscriber_id,omitempty"`
	OriginalAutoReply bool   `json:"original_auto_reply,omitempty"`

	// ReturnPaths are Report.ReturnPaths: where a signed return path's
	// token is looked for.
	ReturnPaths []string `json:"return_paths,omitempty"`
	// Verified and VerifiedBy are the trust policy's verdict, when one
	// was applied (the worker's, or bouncer parse's with VERP keys):
	// whether the bounce is proven to answer mail we sent, and by what or
	// why not. classify itself never sets them.
	Verified   *bool  `json:"verified,omitempty"`
	VerifiedBy string `json:"verified_by,omitempty"`

	// Error is set when the message could not be classified at all.
	Error string `json:"error,omitempty"`
}

// Records flattens a report: one Record per failed (or delayed, or
// complained-about) recipient, or a single Record with Bounce false when
// there is none. Auto-replies come out as one Record with Bounce false and
// Kind auto_reply, naming who replied.
func (rep *Report) Records() []Record {
	base := Record{
		Kind:              rep.Kind,
		ReportingMTA:      rep.ReportingMTA,
		FeedbackType:      rep.FeedbackType,
		OriginalMessageID: rep.Original.MessageID,
		ListID:            rep.Original.ListID,
		CampaignID:        rep.Original.CampaignID,
		SubscriberID:      rep.Original.SubscriberID,
		OriginalAutoReply: rep.Original.AutoReply,
		ReturnPaths:       rep.ReturnPaths,
	}
	var out []Record
	for i := range rep.Recipients {
		r := &rep.Recipients[i]
		if !r.Failed() {
			continue
		}
		rec := base
		rec.Bounce = true
		rec.Recipient = r.Address
		rec.OriginalRecipient = r.OriginalAddress
		rec.Action = r.Action
		rec.Status = r.Status
		rec.SMTPCode = r.SMTPCode
		rec.Category = r.Category
		rec.Severity = r.Severity
		rec.Hard = r.Severity == Hard
		rec.Suppress = r.Suppress
		rec.Diagnostic = r.Diagnostic
		rec.RemoteMTA = r.RemoteMTA
		rec.Rule, rec.Why = r.Rule, r.Why
		out = append(out, rec)
	}
	if len(out) > 0 {
		return out
	}
	rec := base
	rec.Severity = None
	rec.Category = ""
	if rep.Kind == KindAutoReply {
		rec.Category = AutoReply
		for i := range rep.Recipients {
			rec.Recipient = rep.Recipients[i].Address
			rec.Rule = rep.Recipients[i].Rule
			break
		}
	}
	return []Record{rec}
}

// Records classifies raw and flattens the result: the message's records, or
// one error record when it cannot be classified. It is what `bouncer parse`
// and the explain page report for a message.
func (c *Classifier) Records(raw []byte) []Record {
	rep, err := c.Classify(raw)
	if err != nil {
		return []Record{ErrorRecord(err)}
	}
	return rep.Records()
}

// ErrorRecord is the Record of a message that could not be classified.
func ErrorRecord(err error) Record {
	return Record{Kind: KindNotBounce, Severity: None, Error: err.Error()}
}
