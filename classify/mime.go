package classify

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/textproto"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/unicode"
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

	txt  string // text(), once computed
	done bool
}

// decoded undoes the transfer encoding (RFC 2045 §6). Broken encodings give
// what could be decoded.
func (p *part) decoded() []byte {
	switch p.cte {
	case "base64":
		// Decoded in place, once: raw holds the result from then on.
		p.raw = decodeBase64(p.raw)
		p.cte = ""
	case "quoted-printable":
		p.raw = decodeQP(p.raw)
		p.cte = ""
	}
	return p.raw
}

// decodeQP undoes quoted-printable (RFC 2045 §6.7) into one allocation,
// leniently: a malformed escape stays as it is, and "=" followed by white
// space and the line end is a soft line break (§6.7 (3): the white space
// is transport padding), as mime/quotedprintable reads them.
//
// It is kept, rather than mime/quotedprintable.Reader, for correctness
// first: the reader reads a line at a time through a 4 KB bufio buffer,
// and a longer line (HTML bodies of bounces and returned messages break
// the 76-character limit) ends the part with bufio.ErrBufferFull, losing
// all that follows (TestDecodeMalformed). On the 51 quoted-printable parts
// of the dev corpus the two give the same text (TestMeasureReaders), and
// decodeQP is 6.8 times faster per part (33 µs against 222 µs,
// BenchmarkDecodeQP) and allocates 1.5 KB less per message; over the whole
// of BenchmarkClassify that is some 15%, within the noise of this shared
// machine (an earlier reading of 2.5x was an artifact of run order).
func decodeQP(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		if j := softBreak(raw, i+1); j > i { // soft line break
			i = j
			continue
		}
		if i+2 < len(raw) {
			if h, ok := unhex(raw[i+1], raw[i+2]); ok {
				out = append(out, h)
				i += 2
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

// softBreak returns the index of the last byte of the line end that ends
// the white space starting at raw[i], or -1 when something else follows.
func softBreak(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t') {
		i++
	}
	switch {
	case i < len(raw) && raw[i] == '\n':
		return i
	case i+1 < len(raw) && raw[i] == '\r' && raw[i+1] == '\n':
		return i + 1
	case i < len(raw) && raw[i] == '\r':
		return i
	}
	return -1
}

func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexval(a)
	y, ok2 := hexval(b)
	return x<<4 | y, ok1 && ok2
}

func hexval(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// text returns the decoded content as UTF-8 with LF line ends.
func (p *part) text() string {
	if !p.done {
		p.txt = toUTF8(p.decoded(), p.charset)
		p.done = true
	}
	return p.txt
}

// headerText returns the start of a part that holds a message or a header
// block (message/rfc822, text/rfc822-headers): enough for its header, not
// its whole body.
func (p *part) headerText() string {
	if p.done || p.cte == "base64" || p.cte == "quoted-printable" {
		return p.text()
	}
	raw := p.raw
	for len(raw) > 0 && (raw[0] == '\n' || raw[0] == '\r') {
		raw = raw[1:]
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		raw = raw[:i+1]
	} else if i := bytes.Index(raw, []byte("\n\r\n")); i >= 0 {
		raw = raw[:i+1]
	}
	if len(raw) > maxNotice {
		raw = raw[:maxNotice]
	}
	return toUTF8(raw, p.charset)
}

// decodeBase64 decodes leniently (RFC 2045 §6.8): characters outside the
// alphabet are skipped and a truncated tail gives what it holds. It
// compacts raw in place: the part's content is not read raw again.
//
// The decoding is encoding/base64's; only the cleaning is written here,
// for correctness: base64.NewDecoder stops at the first character outside
// the alphabet and drops a cut-short last quantum, and bounces carry both
// (a returned message cut at the MTA's size limit, Exim's
// return_size_limit or qmail's bouncemaxbytes, mid-line; a stray boundary
// line inside a part): TestDecodeMalformed and the
// hostile-truncated-base64 fixture. On the 29 base64 parts of the dev
// corpus both give the same bytes (TestMeasureReaders).
func decodeBase64(raw []byte) []byte {
	clean := raw[:0]
	for _, c := range raw {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1] // a lone trailing character carries no byte
	}
	n, _ := base64.RawStdEncoding.Decode(clean, clean) // output never outruns input
	return clean[:n]
}

// toUTF8 converts b from charset to UTF-8, through golang.org/x/text (see
// charsetEncoding), with LF line ends. Text whose charset is UTF-8, ASCII,
// missing or unknown is kept as it is when it is valid UTF-8 (8-bit UTF-8
// labelled us-ascii is common in bounces); otherwise its ASCII is kept and
// every invalid byte run becomes U+FFFD, so no label, known or not, loses
// the ASCII a notice carries its codes and addresses in.
func toUTF8(b []byte, charset string) string {
	if enc := charsetEncoding(charset); enc != nil && (!isASCII(b) || !asciiCompatible(enc)) {
		if s, err := enc.NewDecoder().String(bytesToString(b)); err == nil {
			if strings.IndexByte(s, '\r') >= 0 {
				s = strings.ReplaceAll(s, "\r\n", "\n")
				s = strings.ReplaceAll(s, "\r", "\n")
			}
			return s
		}
	}
	if bytes.IndexByte(b, '\r') >= 0 {
		b = toLF(b)
	}
	if utf8.Valid(b) {
		return bytesToString(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// isASCII reports whether b holds only 7-bit bytes.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// charsetAliases are labels real MTAs write that neither the WHATWG nor the
// IANA index knows, mapped to one they do.
var charsetAliases = map[string]string{
	"cp932": "shift_jis", "ms_kanji": "shift_jis", "cp949": "euc-kr", "uhc": "euc-kr",
	"euc-cn": "gbk", "x-euc-cn": "gbk", "latin-1": "iso-8859-1", "8859-1": "iso-8859-1",
	"iso-2022-jp-2": "iso-2022-jp", "iso-2022-jp-3": "iso-2022-jp", "big5-hkscs": "big5",
}

// charsetEncoding returns the decoder of a MIME charset label, or nil for
// UTF-8, ASCII (the caller keeps such text as it is) and labels no index
// knows. The WHATWG index (htmlindex) comes first: it maps labels the way
// mail clients do (ISO-8859-1 read as its superset windows-1252, GB2312 as
// GBK, Shift_JIS as Windows-31J). Its "replacement" decoder, which turns a
// whole text into one U+FFFD, is never used: the IANA index is asked
// instead (HZ-GB-2312), or the label counts as unknown. A bare "UTF-16" is
// big-endian unless a byte order mark says otherwise (RFC 2781 §4.3), where
// the WHATWG index would read it little-endian.
func charsetEncoding(label string) encoding.Encoding {
	cs := strings.ToLower(strings.Trim(label, "\"' \t"))
	switch cs {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968", "iso-646-us":
		return nil
	case "utf-16", "ucs-2", "iso-10646-ucs-2", "csunicode":
		return unicode.UTF16(unicode.BigEndian, unicode.UseBOM)
	}
	if a, ok := charsetAliases[cs]; ok {
		cs = a
	}
	if enc, err := htmlindex.Get(cs); err == nil && enc != encoding.Replacement {
		if enc == unicode.UTF8 {
			return nil
		}
		return enc
	}
	if enc, err := ianaindex.MIME.Encoding(cs); err == nil && enc != nil && enc != encoding.Replacement {
		return enc
	}
	return nil
}

// asciiCompatible reports whether enc reads 7-bit bytes as ASCII, so that
// text of such bytes needs no decoding. ISO-2022 and HZ use 7-bit escape
// sequences for other scripts, UTF-16 pairs of 7-bit bytes.
func asciiCompatible(enc encoding.Encoding) bool {
	switch enc {
	case japanese.ISO2022JP, simplifiedchinese.HZGB2312:
		return false
	}
	name, _ := ianaindex.MIME.Name(enc)
	return !strings.HasPrefix(name, "UTF-16") && !strings.HasPrefix(name, "UTF-32")
}

// toLF returns b with CRLF and lone CR line ends made LF, in a new slice.
func toLF(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\r' {
			if i+1 < len(b) && b[i+1] == '\n' {
				continue
			}
			out = append(out, '\n')
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// bytesToString returns b as a string without copying it. It is used only
// for part contents, which the classifier owns (enmime reads each part into
// a fresh slice, the decoders write fresh or in-place slices) and never
// changes after reading them as text.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// mimeTree is the flattened MIME structure of a message.
type mimeTree struct {
	header textproto.MIMEHeader
	ctype  string            // of the root
	params map[string]string // of the root's Content-Type
	leaves []*part
}

// readTree parses raw with enmime and checks the limits. A message that is
// not multipart has no structure to walk: its header and body are read
// directly, which spares copying the whole message through enmime's
// readers (the most common shape of free-text bounce).
func (c *Classifier) readTree(raw []byte) (*mimeTree, error) {
	if t := singlePart(raw); t != nil {
		return t, nil
	}
	raw = trimReturned(raw)
	if t, ok, err := c.splitTree(raw); ok {
		return t, err
	}
	return c.readTreeEnmime(raw)
}

func (c *Classifier) readTreeEnmime(raw []byte) (*mimeTree, error) {
	root, hdr, err := readMultipart(raw)
	if err != nil {
		return nil, parseErr(ErrMalformed, "%v", err)
	}
	if hdr == nil {
		hdr = root.Header
	}
	t := &mimeTree{
		header: hdr,
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
			// A copy: body is the caller's buffer, which the report's
			// strings must not share.
			t.leaves = []*part{{ctype: "text/plain", raw: bytes.Clone(body)}}
			return t, nil
		}
	}
	if err := walk(root, 0); err != nil {
		return nil, err
	}
	return t, nil
}

// singlePart reads a message whose Content-Type is not multipart, or nil
// when it is multipart or its header cannot be read this simply.
func singlePart(raw []byte) *mimeTree {
	end := bytes.Index(raw, []byte("\n\n"))
	if j := bytes.Index(raw, []byte("\r\n\r\n")); j >= 0 && (end < 0 || j < end) {
		end = j
	}
	if end <= 0 || end > 256<<10 {
		return nil
	}
	if multipartHeader(raw[:end]) {
		return nil
	}
	h, n := headerBlock(string(raw[:end+1]))
	if len(h) == 0 || n < end-1 {
		return nil // lines that are not fields: let enmime judge
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mt, params, _, err := mediatype.Parse(ct)
	if err != nil || strings.HasPrefix(strings.ToLower(mt), "multipart/") {
		return nil
	}
	mt = strings.ToLower(mt)
	return &mimeTree{
		header: h,
		ctype:  mt,
		params: params,
		leaves: []*part{{
			ctype:   mt,
			charset: params["charset"],
			cte:     strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))),
			header:  h,
			raw:     bytes.Clone(bodyOf(raw)), // the caller's buffer must not be shared
			attach:  isAttachment(h),
		}},
	}
}

// readMultipart reads a multipart message with enmime. Bounces carry long
// headers (Received chains) that enmime's header reader is slow at, so the
// header is read here and enmime is given only what it needs: the
// Content-Type, then the body. It returns hdr nil when it let enmime read
// the header itself (a header it could not read this simply).
func readMultipart(raw []byte) (*enmime.Part, textproto.MIMEHeader, error) {
	end := headerEnd(raw)
	if end > 0 {
		h, n := headerBlock(bytesToString(raw[:end]))
		if ct := h.Get("Content-Type"); ct != "" && n >= end-2 {
			head := "Content-Type: " + ct + "\r\n\r\n"
			root, err := mimeParser.ReadParts(io.MultiReader(strings.NewReader(head), bytes.NewReader(raw[end:])))
			if err == nil {
				return root, h, nil
			}
		}
	}
	root, err := mimeParser.ReadParts(bytes.NewReader(raw))
	return root, nil, err
}

// trimReturned cuts a multipart bounce after the header of the message it
// returns: classification reads only that header, and the returned body
// (often the largest part, with its own attachments) would otherwise be
// copied through the MIME reader for nothing. It cuts only when the
// returned message is the last part a report has: nothing after it may
// name a delivery-status, feedback or header part. The cut message lacks
// its closing boundary, which the MIME reader accepts.
func trimReturned(raw []byte) []byte {
	if len(raw) < 32<<10 {
		return raw // small: the search would cost what it saves
	}
	i := indexFoldBytes(raw, "\ncontent-type: message/rfc822")
	if i < 0 {
		i = indexFoldBytes(raw, "\ncontent-type: message/global")
	}
	if i < 0 {
		return raw
	}
	rest := raw[i+1:]
	// The part's own header, then the returned message's header.
	h := headerEnd(rest)
	if h < 0 {
		return raw
	}
	m := headerEnd(rest[h:])
	if m < 0 {
		return raw
	}
	cut := i + 1 + h + m
	if len(raw)-cut < 1024 {
		return raw // not worth it
	}
	tail := raw[cut:]
	for _, t := range []string{"delivery-status", "feedback-report", "rfc822-headers", "global-headers", "disposition-notification"} {
		if indexFoldBytes(tail, t) >= 0 {
			return raw
		}
	}
	return raw[:cut]
}

// headerEnd returns the offset just past the blank line that ends the header
// block at the start of b, or -1.
func headerEnd(b []byte) int {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		line := b[i : i+j]
		i += j + 1
		if len(bytes.TrimRight(line, "\r")) == 0 {
			return i
		}
	}
	return -1
}

func indexFoldBytes(b []byte, sub string) int {
	return indexFold(bytesToString(b), sub)
}

// multipartHeader reports whether a header block declares a multipart
// Content-Type, looking at the bytes only.
func multipartHeader(h []byte) bool {
	for len(h) > 0 {
		line := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			line, h = h[:i], h[i+1:]
		} else {
			h = nil
		}
		if len(line) > 13 && hasPrefixFold(bytesToString(line), "content-type:") {
			v := line[13:]
			// The value may continue on folded lines.
			for len(h) > 0 && (h[0] == ' ' || h[0] == '\t') {
				i := bytes.IndexByte(h, '\n')
				if i < 0 {
					i = len(h) - 1
				}
				v, h = append(v[:len(v):len(v)], h[:i+1]...), h[i+1:]
			}
			return containsFold(bytesToString(v), "multipart")
		}
	}
	return false
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
	return headerBlockOnly(b, nil)
}

// headerBlockOnly is headerBlock keeping only the fields keep accepts (all
// when keep is nil).
func headerBlockOnly(b string, keep func(name string) bool) (textproto.MIMEHeader, int) {
	return readHeaderBlock(b, keep, false)
}

// readHeaderBlock is headerBlockOnly where, with bare, a line that is not a
// field does not end the block: it continues the field before it (a folded
// line that lost its indent), or is skipped before the first field.
//
// It is kept, rather than net/textproto's ReadMIMEHeader, for correctness
// (the two are as fast: BenchmarkHeaderBlock): on the dev corpus
// textproto rejects 11 of the 396 top-level header blocks and reads an
// mbox "From sender date" line as a field in 24 more (TestMeasureReaders);
// 6 of its 604 part headers carry a Content-Type whose "boundary=" line
// lost its indent (Office 365, Verizon), which textproto rejects, losing
// the boundary; and classification reads quoted header blocks that end at
// the first line of text, which textproto reports as an error.
func readHeaderBlock(b string, keep func(name string) bool, bare bool) (textproto.MIMEHeader, int) {
	h := textproto.MIMEHeader{}
	var name string
	var val strings.Builder
	keeping := false
	flush := func() {
		if name != "" && keeping {
			k := textproto.CanonicalMIMEHeaderKey(name)
			h[k] = append(h[k], strings.TrimSpace(val.String()))
		}
		name = ""
		val.Reset()
	}
	pos := 0
	fields := 0
	stop := false
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
			if fields == 0 {
				pos = next // leading blank lines
				continue
			}
			pos = next
			break
		}
		colon := strings.IndexByte(line, ':')
		folded := line[0] == ' ' || line[0] == '\t'
		if folded || colon <= 0 || !isFieldName(line[:colon]) {
			switch {
			case !folded && strings.HasPrefix(line, "From "):
				// An mbox separator ("From MAILER-DAEMON Sun Jun 16 ...")
				// kept by the store the message came from: not a field,
				// and not the end of the header either.
				flush()
			case folded && (name != "" || fields > 0), bare:
				if keeping && name != "" {
					val.WriteByte(' ')
					val.WriteString(strings.TrimSpace(line))
				}
			default:
				stop = true // not a header line: the block ends before it
			}
			if stop {
				break
			}
			pos = next
			continue
		}
		flush()
		fields++
		name = line[:colon]
		keeping = keep == nil || keep(name)
		if keeping {
			val.WriteString(strings.TrimSpace(line[colon+1:]))
		}
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
