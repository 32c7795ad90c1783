package classify_test

import (
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/classify"
)

// headersDSN is an RFC 3464 DSN whose returned original carries the given
// header lines.
func headersDSN(origHeaders string) []byte {
	return []byte(strings.ReplaceAll(`From: MAILER-DAEMON@mx.example.net
To: bounces@news.example.org
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-1@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.com>: user unknown

--B
Content-Type: text/rfc822-headers

From: News <news@news.example.org>
To: gone@example.com
Subject: Our news
Message-ID: <orig-1@news.example.org>
`+origHeaders+`
--B--
`, "\n", "\r\n"))
}

// The headers that carry the original's list, campaign and subscriber ids
// are options, with defaults that cover RFC 2919, listmonk and Mautic.
func TestOriginalIDHeaders(t *testing.T) {
	listmonk := "List-Id: Newsletter <news.example.org>\nX-Listmonk-Campaign: 6f1c-camp\nX-Listmonk-Subscriber: 9a2b-sub\nFeedback-ID: 12:acct:news:esp\n"
	cases := []struct {
		name                         string
		opts                         classify.Options
		headers                      string
		wantList, wantCamp, wantSubs string
	}{
		{"defaults/listmonk", classify.Options{}, listmonk, "news.example.org", "6f1c-camp", "9a2b-sub"},
		{"defaults/mautic", classify.Options{}, "X-EMAIL-ID: 5f3e0a1b2c\n", "", "", "5f3e0a1b2c"},
		{"defaults/feedback-id last", classify.Options{}, "Feedback-ID: 12:acct:news:esp\n", "", "12:acct:news:esp", ""},
		{"configured names win", classify.Options{
			ListHeaders: []string{"X-Our-List"}, CampaignHeaders: []string{"X-Our-Send"}, SubscriberHeaders: []string{"X-Our-Member"},
		}, listmonk + "X-Our-List: weekly\nX-Our-Send: s-77\nX-Our-Member: m-5\n", "weekly", "s-77", "m-5"},
		{"order is preference", classify.Options{
			SubscriberHeaders: []string{"X-Second", "X-Listmonk-Subscriber"},
		}, listmonk, "news.example.org", "6f1c-camp", "9a2b-sub"},
		{"absent", classify.Options{ListHeaders: []string{"X-Our-List"}}, listmonk, "", "6f1c-camp", "9a2b-sub"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := classify.New(tc.opts).Classify(headersDSN(tc.headers))
			if err != nil {
				t.Fatal(err)
			}
			o := rep.Original
			if o.ListID != tc.wantList || o.CampaignID != tc.wantCamp || o.SubscriberID != tc.wantSubs {
				t.Errorf("list %q campaign %q subscriber %q; want %q %q %q", o.ListID, o.CampaignID, o.SubscriberID,
					tc.wantList, tc.wantCamp, tc.wantSubs)
			}
			recs := rep.Records()
			if len(recs) != 1 || recs[0].SubscriberID != tc.wantSubs || recs[0].CampaignID != tc.wantCamp {
				t.Errorf("records = %+v", recs)
			}
		})
	}
}
