package classify

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// leafSummary describes a tree's leaves as "ctype:content" with the
// content's line ends shown, so a test sees exactly where a part ends.
func leafSummary(t *mimeTree) []string {
	var out []string
	for _, l := range t.leaves {
		out = append(out, fmt.Sprintf("%s@%d:%q", l.ctype, l.depth, l.raw))
	}
	return out
}

func TestSplitTree(t *testing.T) {
	const head = "From: MAILER-DAEMON@example.net\nSubject: failure\n"
	for _, tc := range []struct {
		name, msg string
		want      []string
	}{{
		name: "report with close delimiter, preamble and epilogue ignored",
		msg: head + "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n" +
			"This is a MIME preamble.\n--B\nContent-Type: text/plain\n\nnotice\n\n--B\n" +
			"Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.org\n--B--\nepilogue\n",
		want: []string{`text/plain@1:"notice\n"`, `message/delivery-status@1:"Final-Recipient: rfc822; a@example.org"`},
	}, {
		name: "CRLF; the line break before a delimiter belongs to it",
		msg:  strings.ReplaceAll(head+"Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\none\ntwo\n--B--\n", "\n", "\r\n"),
		want: []string{`text/plain@1:"one\r\ntwo"`},
	}, {
		name: "nested boundary that extends the outer one",
		msg: head + "Content-Type: multipart/mixed; boundary=\"==X\"\n\n--==X\nContent-Type: multipart/alternative; boundary=\"==X_2\"\n\n" +
			"--==X_2\nContent-Type: text/plain\n\ninner\n--==X_2--\n\n--==X\nContent-Type: message/rfc822\n\nSubject: hi\n\nbody\n--==X--\n",
		want: []string{`text/plain@2:"inner"`, `message/rfc822@1:"Subject: hi\n\nbody"`},
	}, {
		name: "no close delimiter: the last part runs to the end",
		msg:  head + "Content-Type: multipart/report; boundary=B\n\n--B\nContent-Type: text/plain\n\ncut off here\n",
		want: []string{`text/plain@1:"cut off here\n"`},
	}, {
		name: "delimiter with trailing white space",
		msg:  head + "Content-Type: multipart/mixed; boundary=B\n\n--B  \t\nContent-Type: text/plain\n\nx\n--B-- \n",
		want: []string{`text/plain@1:"x"`},
	}, {
		name: "part header with a folded line that lost its indent",
		msg: head + "Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: multipart/alternative;\nboundary=\"C\"\n\n" +
			"--C\nContent-Type: text/plain; charset=us-ascii\n\nfolded\n--C--\n--B--\n",
		want: []string{`text/plain@2:"folded"`},
	}, {
		name: "part without a header is text/plain",
		msg:  head + "Content-Type: multipart/mixed; boundary=B\n\n--B\n\nno header\n--B--\n",
		want: []string{`text/plain@1:"no header"`},
	}, {
		name: "declared boundary unused: the one the body uses",
		msg:  head + "Content-Type: multipart/mixed; boundary=WRONG\n\n--RIGHT\nContent-Type: text/plain\n\nfound\n--RIGHT--\n",
		want: []string{`text/plain@1:"found"`},
	}, {
		name: "no boundary at all: the body is text",
		msg:  head + "Content-Type: multipart/mixed\n\njust text\n",
		want: []string{`text/plain@0:"just text\n"`},
	}, {
		name: "a delimiter-like line inside content is not one",
		msg:  head + "Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nsee --B here\n--Bogus\n--B--\n",
		want: []string{`text/plain@1:"see --B here\n--Bogus"`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Options{})
			tree, ok, err := c.splitTree([]byte(tc.msg))
			if !ok || err != nil {
				t.Fatalf("splitTree: ok %v, err %v", ok, err)
			}
			got := leafSummary(tree)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("leaves:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestSplitTreeLimits(t *testing.T) {
	c := New(Options{MaxParts: 5, MaxDepth: 3})
	many := "Content-Type: multipart/mixed; boundary=B\n\n" + strings.Repeat("--B\nContent-Type: text/plain\n\nx\n", 10) + "--B--\n"
	if _, _, err := c.splitTree([]byte(many)); !errors.Is(err, ErrTooManyParts) {
		t.Errorf("10 parts, limit 5: err %v, want ErrTooManyParts", err)
	}
	deep := "Content-Type: multipart/mixed; boundary=B0\n\n"
	for i := 1; i <= 6; i++ {
		deep += fmt.Sprintf("--B%d\nContent-Type: multipart/mixed; boundary=B%d\n\n", i-1, i)
	}
	if _, _, err := c.splitTree([]byte(deep)); !errors.Is(err, ErrTooDeep) {
		t.Errorf("6 levels, limit 3: err %v, want ErrTooDeep", err)
	}
}

// The leaves own their bytes: a caller reusing its buffer cannot change
// a report.
func TestSplitTreeCopies(t *testing.T) {
	msg := []byte("Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nkeep me\n--B--\n")
	tree, _, err := New(Options{}).splitTree(msg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range msg {
		msg[i] = 'x'
	}
	if got := string(tree.leaves[0].raw); got != "keep me" {
		t.Errorf("leaf after the input changed: %q", got)
	}
}

// An mbox separator line at the top of a message (kept by some stores)
// does not hide its header: the message is read without enmime, with its
// fields.
func TestMboxFromLine(t *testing.T) {
	msg := "From MAILER-DAEMON Sun Jun 16 18:15:07 2024\nReceived: from x\n\tby y;\n\tSun, 16 Jun 2024 18:15:07 +0900\n" +
		"Subject: Mail delivery failed\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nbody\n--B--\n"
	tree, ok, err := New(Options{}).splitTree([]byte(msg))
	if !ok || err != nil {
		t.Fatalf("splitTree: ok %v, err %v", ok, err)
	}
	if got := tree.header.Get("Subject"); got != "Mail delivery failed" {
		t.Errorf("Subject %q", got)
	}
	if got := leafSummary(tree); len(got) != 1 || got[0] != `text/plain@1:"body"` {
		t.Errorf("leaves %q", got)
	}
	single := "From MAILER-DAEMON Sun Jun 16 18:15:07 2024\nSubject: Mail delivery failed\n\nbody\n"
	if tr := singlePart([]byte(single)); tr == nil || tr.header.Get("Subject") != "Mail delivery failed" {
		t.Errorf("single part with a From_ line: %+v", tr)
	}
}
