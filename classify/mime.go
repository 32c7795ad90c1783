package classify

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
)

// mimeParser reads the MIME structure. Content stays raw: transfer
// encodings are undone only for the parts classification reads, and charset
// conversion only for their text (see part.text), which keeps the cost of a
// message close to one pass over its bytes.
var mimeParser = enmime.NewParser(
	enmime.RawContent(true),
	enmime.DisableTextConversion(true),
	enmime.DisableCharacterDetection(true),
	enmime.SkipMalformedParts(true),
	enmime.MultipartWOBoundaryAsSinglePart(true),
	enmime.StripMediaTypeInvalidCharacters(true),
)

// part is one leaf of the MIME tree.
type part struct {
	ctype   string // lower-case media type, e.g. "message/delivery-status"
	charset string
	cte     string
	header  textproto.MIMEHeader
	raw     []byte // content, transfer encoding not undone
	depth   int
	attach  bool // Content-Disposition: attachment
}

// decoded undoes the transfer encoding (RFC 2045 §6). Broken encodings give
// what could be decoded.
func (p *part) decoded() []byte {
	switch p.cte {
	case "base64":
		return decodeBase64(p.raw)
	case "quoted-printable":
		b, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(p.raw)))
		return b
	}
	return p.raw
}

// text returns the decoded content as UTF-8 with LF line ends.
func (p *part) text() string {
	return toUTF8(p.decoded(), p.charset)
}

func decodeBase64(raw []byte) []byte {
	clean := make([]byte, 0, len(raw))
	for _, c := range raw {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1] // a lone trailing character carries no byte
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}

// toUTF8 converts b from charset to UTF-8 for the charsets bounces use in
// their notices; anything else keeps its ASCII and loses the rest to U+FFFD.
// Line ends become LF.
func toUTF8(b []byte, charset string) string {
	var s string
	switch cs := strings.ToLower(strings.Trim(charset, `"' `)); {
	case isLatin1(cs):
		var sb strings.Builder
		sb.Grow(len(b) + 8)
		for _, c := range b {
			if c < utf8.RuneSelf {
				sb.WriteByte(c)
			} else {
				sb.WriteRune(rune(c))
			}
		}
		s = sb.String()
	case cs == "iso-2022-jp" || cs == "csiso2022jp":
		s = decodeISO2022JP(b)
	default:
		s = strings.ToValidUTF8(string(b), "\uFFFD")
	}
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	return s
}

func isLatin1(cs string) bool {
	switch cs {
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "windows-1252", "cp1252",
		"iso-8859-15", "iso8859-15", "iso_8859-1", "ibm819", "cp819":
		return true
	}
	return false
}

// decodeISO2022JP keeps the ASCII runs of an ISO-2022-JP text (RFC 1468) and
// drops the two-byte runs: the notices we read are in English or carry their
// codes in ASCII.
func decodeISO2022JP(b []byte) string {
	var sb strings.Builder
	ascii := true
	for i := 0; i < len(b); i++ {
		if b[i] == 0x1b && i+2 < len(b) {
			switch {
			case b[i+1] == '(' && (b[i+2] == 'B' || b[i+2] == 'J'):
				ascii = true
			case b[i+1] == '$':
				ascii = false
				sb.WriteByte(' ')
			}
			i += 2
			continue
		}
		if ascii || b[i] == '\n' {
			if b[i] < utf8.RuneSelf {
				sb.WriteByte(b[i])
			}
		}
	}
	return sb.String()
}

// mimeTree is the flattened MIME structure of a message.
type mimeTree struct {
	header textproto.MIMEHeader
	ctype  string            // of the root
	params map[string]string // of the root's Content-Type
	leaves []*part
}

// readTree parses raw with enmime and checks the limits.
func (c *Classifier) readTree(raw []byte) (*mimeTree, error) {
	root, err := mimeParser.ReadParts(bytes.NewReader(raw))
	if err != nil {
		return nil, parseErr(ErrMalformed, "%v", err)
	}
	t := &mimeTree{
		header: root.Header,
		ctype:  strings.ToLower(root.ContentType),
		params: root.ContentTypeParams,
	}
	n := 0
	var walk func(p *enmime.Part, depth int) error
	walk = func(p *enmime.Part, depth int) error {
		n++
		if n > c.opts.MaxParts {
			return parseErr(ErrTooManyParts, "more than %d parts", c.opts.MaxParts)
		}
		if depth > c.opts.MaxDepth {
			return parseErr(ErrTooDeep, "deeper than %d levels", c.opts.MaxDepth)
		}
		if p.FirstChild == nil {
			ct := strings.ToLower(p.ContentType)
			if ct == "" {
				ct = "text/plain"
			}
			t.leaves = append(t.leaves, &part{
				ctype:   ct,
				charset: p.Charset,
				cte:     strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding"))),
				header:  p.Header,
				raw:     p.Content,
				depth:   depth,
				attach:  strings.EqualFold(p.Disposition, "attachment"),
			})
			return nil
		}
		for ch := p.FirstChild; ch != nil; ch = ch.NextSibling {
			if err := walk(ch, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if strings.HasPrefix(t.ctype, "multipart/") && root.FirstChild == nil {
		// A multipart whose body does not use its declared boundary: use
		// the boundary the body does use, or read the body as text.
		body := bodyOf(raw)
		if b := guessBoundary(body); b != "" {
			synthetic := append([]byte("Content-Type: multipart/mixed; boundary=\""+b+"\"\n\n"), body...)
			if r2, err := mimeParser.ReadParts(bytes.NewReader(synthetic)); err == nil && r2.FirstChild != nil {
				root = r2
			}
		}
		if root.FirstChild == nil {
			t.leaves = []*part{{ctype: "text/plain", raw: body}}
			return t, nil
		}
	}
	if err := walk(root, 0); err != nil {
		return nil, err
	}
	return t, nil
}

// bodyOf returns what follows the header block of raw.
func bodyOf(raw []byte) []byte {
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		if j := bytes.Index(raw, []byte("\r\n\r\n")); j >= 0 && j < i {
			return raw[j+4:]
		}
		return raw[i+2:]
	}
	if j := bytes.Index(raw, []byte("\r\n\r\n")); j >= 0 {
		return raw[j+4:]
	}
	return nil
}

// guessBoundary returns the boundary a multipart body uses: the first line
// "--X" whose closing "--X--" also appears.
func guessBoundary(body []byte) string {
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		line = bytes.TrimRight(line, "\r \t")
		if len(line) > 3 && line[0] == '-' && line[1] == '-' {
			b := line[2:]
			if bytes.Contains(body, append(append([]byte("--"), b...), '-', '-')) {
				return string(b)
			}
		}
	}
	return ""
}

// headerBlock parses an RFC 5322 header block (the start of b up to the
// first empty line), unfolding continuation lines. Names are canonical.
// Lines that are not fields end the block, so quoted text is safe to feed.
func headerBlock(b string) (textproto.MIMEHeader, int) {
	h := textproto.MIMEHeader{}
	var name string
	var val strings.Builder
	flush := func() {
		if name != "" {
			k := textproto.CanonicalMIMEHeaderKey(name)
			h[k] = append(h[k], strings.TrimSpace(val.String()))
		}
		name = ""
		val.Reset()
	}
	pos := 0
	for pos < len(b) {
		end := strings.IndexByte(b[pos:], '\n')
		var line string
		next := len(b)
		if end >= 0 {
			line = b[pos : pos+end]
			next = pos + end + 1
		} else {
			line = b[pos:]
		}
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			if name == "" && len(h) == 0 {
				pos = next // leading blank lines
				continue
			}
			pos = next
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name == "" {
				break
			}
			val.WriteByte(' ')
			val.WriteString(strings.TrimSpace(line))
			pos = next
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !isFieldName(line[:colon]) {
			break
		}
		flush()
		name = line[:colon]
		val.WriteString(strings.TrimSpace(line[colon+1:]))
		pos = next
	}
	flush()
	return h, pos
}

func isFieldName(s string) bool {
	if len(s) > 76 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 127 {
			return false
		}
	}
	return true
}
