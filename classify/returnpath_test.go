package classify

import (
	"slices"
	"strings"
	"testing"
)

// TestReturnPaths checks the envelope addresses a bounce names, in order
// of trust, and that the returned original's Return-Path comes last.
func TestReturnPaths(t *testing.T) {
	raw := strings.Join([]string{
		"Delivered-To: bounces+tok1@lists.example.com",
		"Delivered-To: relay@lists.example.com",
		"X-Original-To: BOUNCES+tok1@lists.example.com",
		"Envelope-To: bounces+tok2@lists.example.com",
		"To: Bounces <bounces+tok3@lists.example.com>",
		"From: MAILER-DAEMON@mx.example.net",
		"Subject: Undelivered Mail Returned to Sender",
		"MIME-Version: 1.0",
		`Content-Type: multipart/report; report-type=delivery-status; boundary="b"`,
		"",
		"--b",
		"Content-Type: text/plain",
		"",
		"I could not deliver your message.",
		"--b",
		"Content-Type: message/delivery-status",
		"",
		"Reporting-MTA: dns; mx.example.net",
		"",
		"Final-Recipient: rfc822; ana@example.net",
		"Action: failed",
		"Status: 5.1.1",
		"--b",
		"Content-Type: text/rfc822-headers",
		"",
		"Return-Path: <bounces+tok4@lists.example.com>",
		"From: news@lists.example.com",
		"To: ana@example.net",
		"Message-ID: <m1@lists.example.com>",
		"--b--",
		"",
	}, "\n")
	rep, err := Classify([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bounces+tok1@lists.example.com", "relay@lists.example.com", "bounces+tok2@lists.example.com",
		"bounces+tok3@lists.example.com", "bounces+tok4@lists.example.com"}
	if !slices.Equal(rep.ReturnPaths, want) {
		t.Errorf("ReturnPaths = %q, want %q", rep.ReturnPaths, want)
	}
	if recs := rep.Records(); !slices.Equal(recs[0].ReturnPaths, want) {
		t.Errorf("Records()[0].ReturnPaths = %q, want %q", recs[0].ReturnPaths, want)
	}
}
