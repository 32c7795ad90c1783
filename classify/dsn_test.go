package classify

import (
	"testing"
	"time"
)

// The per-message and per-recipient blocks of RFC 3464 §2, written the way
// real MTAs write them: odd case, folded values, comments, a missing blank
// line between two recipients, and RFC 6533's UTF-8 address type.
func TestParseDSN(t *testing.T) {
	body := "Reporting-MTA: dns; cs.example.org (Postfix)\n" +
		"Arrival-Date: Mon, 2 Nov 2026 09:00:01 +0000\n" +
		"\n" +
		"Original-Recipient: rfc822;Louisa@Example.NET\n" +
		"FINAL-RECIPIENT: RFC822; <louisa@example.net> (the first)\n" +
		"action: FAILED\n" +
		"Status: 5.1.1 (bad destination mailbox)\n" +
		"Remote-MTA: dns; [192.0.2.9]\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 <louisa@example.net>:\n" +
		"    Recipient address rejected: User unknown\n" +
		"Last-Attempt-Date: Mon, 2 Nov 2026 09:00:05 +0000\n" +
		"Final-Recipient: utf-8; j\\x{00F6}rg@example.net\n" +
		"Action: delayed\n" +
		"Status: 4.4.1\n" +
		"Diagnostic-Code: X-Postfix; connect to mx.example.net: Connection timed out\n" +
		"\n" +
		"Final-Recipient: rfc822; ok@example.net\n" +
		"Action: delivered\n" +
		"Status: 2.0.0\n"
	d := parseDSN(body, 0)
	if d.reportingMTA != "cs.example.org" {
		t.Errorf("Reporting-MTA = %q, want cs.example.org", d.reportingMTA)
	}
	if want := time.Date(2026, 11, 2, 9, 0, 1, 0, time.UTC); !d.arrival.Equal(want) {
		t.Errorf("Arrival-Date = %v, want %v", d.arrival, want)
	}
	if len(d.recipients) != 3 {
		t.Fatalf("got %d recipients, want 3: %+v", len(d.recipients), d.recipients)
	}
	r := d.recipients[0]
	if r.Address != "louisa@example.net" || r.OriginalAddress != "Louisa@Example.NET" || r.Action != "failed" ||
		r.Status != "5.1.1" || r.RemoteMTA != "192.0.2.9" ||
		r.Diagnostic != "550 5.1.1 <louisa@example.net>: Recipient address rejected: User unknown" || r.LastAttempt.IsZero() {
		t.Errorf("first recipient = %+v", r)
	}
	if r := d.recipients[1]; r.Address != "jörg@example.net" || r.Action != "delayed" || r.Status != "4.4.1" ||
		r.Diagnostic != "connect to mx.example.net: Connection timed out" {
		t.Errorf("second recipient = %+v", r)
	}
	if r := d.recipients[2]; r.Action != "delivered" || r.Status != "2.0.0" {
		t.Errorf("third recipient = %+v", r)
	}
}

// Which recipients are failures: only failed and delayed ones, whatever
// else a DSN reports.
func TestRecipientFailed(t *testing.T) {
	for _, tc := range []struct {
		action, status string
		want           bool
	}{
		{"failed", "5.1.1", true},
		{"delayed", "4.4.1", true},
		{"delivered", "2.0.0", false},
		{"relayed", "2.0.0", false},
		{"expanded", "2.0.0", false},
		{"deliverable", "2.1.5", false}, // Postfix: a delivery report asked for, or an address verified
		{"undeliverable", "5.1.1", true},
		{"", "2.0.0", false},
		{"", "5.0.0", true},
	} {
		r := Recipient{Action: tc.action, Status: tc.status}
		if got := r.Failed(); got != tc.want {
			t.Errorf("Recipient{Action: %q, Status: %q}.Failed() = %v, want %v", tc.action, tc.status, got, tc.want)
		}
	}
}
