package classify

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// limitDSN is a DSN of n failed recipients after a header block padded by
// pad bytes of X-Pad fields.
func limitDSN(n, pad int) []byte {
	var b bytes.Buffer
	b.WriteString("From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.org\r\nSubject: Undelivered\r\n")
	for pad > 0 {
		line := "X-Pad: " + strings.Repeat("p", 70) + "\r\n"
		b.WriteString(line)
		pad -= len(line)
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n" +
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n")
	for i := range n {
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; r%d@many.example\r\nAction: failed\r\nStatus: 5.1.1\r\n", i)
	}
	b.WriteString("\r\n--b1--\r\n")
	return b.Bytes()
}

// The header block and recipient limits: at the limit the message is
// classified, past it Classify fails with the limit's error.
func TestLimits(t *testing.T) {
	c := New(Options{MaxHeaderSize: 64 << 10, MaxRecipients: 50})
	for _, tc := range []struct {
		name string
		raw  []byte
		want error
		rcpt int
	}{
		{"header at the limit", limitDSN(1, 60<<10), nil, 1},
		{"header past the limit", limitDSN(1, 70<<10), ErrHeaderTooLarge, 0},
		{"no blank line at all", bytes.Repeat([]byte("X-Pad: p\r\n"), 10<<10), ErrHeaderTooLarge, 0},
		{"recipients at the limit", limitDSN(50, 0), nil, 50},
		{"recipients past the limit", limitDSN(51, 0), ErrTooManyRecipients, 0},
	} {
		rep, err := c.Classify(tc.raw)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Classify = %v, want %v", tc.name, err, tc.want)
			continue
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "classify: ") {
				t.Errorf("%s: error %q is not a classify ParseError", tc.name, err)
			}
			continue
		}
		if len(rep.Recipients) != tc.rcpt {
			t.Errorf("%s: %d recipients, want %d", tc.name, len(rep.Recipients), tc.rcpt)
		}
	}
	// The defaults hold 100,000 recipients: 10,000 are classified.
	rep, err := Classify(limitDSN(10000, 0))
	if err != nil || len(rep.Recipients) != 10000 {
		t.Fatalf("Classify(10,000 recipients) = %v, want 10000 recipients", err)
	}
}

// parseDSN stops at its limit and says so.
func TestParseDSNLimit(t *testing.T) {
	body := string(limitDSN(20, 0))
	body = body[strings.Index(body, "Reporting-MTA"):]
	if d := parseDSN(body, 0); len(d.recipients) != 20 || d.tooMany {
		t.Errorf("parseDSN(20 blocks, no limit) = %d recipients, tooMany %v; want 20, false", len(d.recipients), d.tooMany)
	}
	if d := parseDSN(body, 20); len(d.recipients) != 20 || d.tooMany {
		t.Errorf("parseDSN(20 blocks, 20) = %d recipients, tooMany %v; want 20, false", len(d.recipients), d.tooMany)
	}
	if d := parseDSN(body, 19); !d.tooMany || len(d.recipients) > 19 {
		t.Errorf("parseDSN(20 blocks, 19) = %d recipients, tooMany %v; want at most 19, true", len(d.recipients), d.tooMany)
	}
}

// An address that a NUL, a byte that is not UTF-8 or U+FFFD touches is never
// read as the valid address beside it: a DSN's recipient keeps the broken
// bytes (the store then never suppresses it), and free text yields nothing.
func TestBrokenBytesNeverShortenAnAddress(t *testing.T) {
	for _, bad := range []string{"\x00", "\xff", "\xc3", "\uFFFD"} {
		for _, local := range []string{"jo" + bad + "hn", bad + "john", "john" + bad} {
			addr := local + "@example.org"
			dsn := "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n" +
				"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n" +
				"--b\r\nContent-Type: text/plain\r\n\r\nDelivery to " + addr + " failed: user unknown\r\n\r\n" +
				"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n" +
				"Final-Recipient: rfc822; " + addr + "\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
			rep, err := Classify([]byte(dsn))
			if err != nil {
				t.Fatalf("Classify(%q): %v", addr, err)
			}
			for _, r := range rep.Recipients {
				if shortened(r.Address, addr) {
					t.Errorf("Classify: recipient %q read from %q", r.Address, addr)
				}
			}
			for _, text := range []string{addr, "<" + addr + ">", "user " + addr + " unknown"} {
				if got := firstAddress(text); got != "" {
					t.Errorf("firstAddress(%q) = %q, want none", text, got)
				}
			}
			if got := fieldAddress("rfc822; " + addr); shortened(got, addr) {
				t.Errorf("fieldAddress(%q) = %q", addr, got)
			}
		}
	}
}

// shortened reports whether got is a valid-looking address made of part of
// addr's characters: every broken byte gone, and something else too.
func shortened(got, addr string) bool {
	clean := strings.ToValidUTF8(strings.ReplaceAll(addr, "\x00", ""), "")
	clean = strings.ReplaceAll(clean, "\uFFFD", "")
	plain := !strings.ContainsAny(got, "\x00\uFFFD\"") && strings.ToValidUTF8(got, "") == got
	return plain && got != "" && len(got) <= len(clean)
}
