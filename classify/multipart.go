package classify

import (
	"bytes"
	"net/textproto"
	"strings"

	"github.com/jhillyerd/enmime/v2/mediatype"
)

// Multipart messages are split here rather than by enmime: its boundary
// reader copies every byte of a body through a peek per line break, which
// made it most of the cost of classifying a bounce. Splitting on the
// boundary with bytes.Index reads the same structure (RFC 2046 §5.1.1),
// leniently in the ways real bounces need: a missing close delimiter ends
// the last part at the end of the input, preamble and epilogue are
// ignored, a part without a header is text/plain.
//
// Measured with every message sent through readTreeEnmime instead: the
// `bouncer parse --json` output over the dev corpus is byte-identical, but
// allocation grows from 19 KB to 62 KB per message (BenchmarkClassify,
// next to the 64 KB bar), and Classify on one core falls from 2.3-2.6x
// the speed of a bare enmime ReadParts over the same files
// (BenchmarkEnmimeBare, in the same run) to 0.5-1.3x (three alternating
// pairs of runs of 3000 messages on a loaded 2-core machine, so the
// in-run ratio is the figure to trust, not the times).

// mediaOpts are the lenient media type rules the parts are read with.
var mediaOpts = mediatype.ParseOptions{StripMediaTypeInvalidCharacters: true}

// splitTree reads a multipart message whose header reads simply. ok is
// false when the header does not (lines that are not fields, no
// Content-Type): the caller then lets enmime judge the whole message.
func (c *Classifier) splitTree(raw []byte) (t *mimeTree, ok bool, err error) {
	end := headerEnd(raw)
	if end <= 0 {
		return nil, false, nil
	}
	h, n := headerBlock(bytesToString(raw[:end]))
	ct := h.Get("Content-Type")
	if ct == "" || n < end-2 {
		return nil, false, nil
	}
	mt, params, _, perr := mediatype.ParseWithOptions(ct, mediaOpts)
	if perr != nil {
		return nil, false, nil
	}
	t = &mimeTree{header: h, ctype: strings.ToLower(mt), params: params}
	body := raw[end:]
	w := splitter{c: c, t: t, n: 1}
	found := false
	if b := params["boundary"]; b != "" && strings.HasPrefix(t.ctype, "multipart/") {
		if found, err = w.multipart(body, b, 1); err != nil {
			return nil, true, err
		}
	}
	if !found {
		// A multipart whose body does not use its declared boundary (or
		// declares none): use the boundary the body does use, or read the
		// body as text.
		if b := guessBoundary(body); b != "" {
			if found, err = w.multipart(body, b, 1); err != nil {
				return nil, true, err
			}
		}
	}
	if !found {
		t.leaves = []*part{{ctype: "text/plain", raw: bytes.Clone(body)}}
	}
	return t, true, nil
}

// splitter walks a multipart body into the tree's leaves, counting parts
// against the limits.
type splitter struct {
	c *Classifier
	t *mimeTree
	n int // parts seen, the root included
}

// multipart splits body on boundary and reads each part at depth. found is
// false when no delimiter line was found (nothing was added then).
func (w *splitter) multipart(body []byte, boundary string, depth int) (found bool, err error) {
	delim := []byte("--" + boundary)
	_, after, closing, ok := nextDelimiter(body, delim, 0)
	if !ok {
		return false, nil
	}
	for !closing {
		next, nextAfter, nextClosing, more := nextDelimiter(body, delim, after)
		if !more && after >= len(body) {
			break // a delimiter as the last line: no part follows
		}
		end := len(body)
		if more {
			end = max(after, lineBreakBefore(body, next))
		}
		if err := w.part(body[after:end], depth); err != nil {
			return true, err
		}
		if !more {
			break // no close delimiter: the part ran to the end
		}
		after, closing = nextAfter, nextClosing
	}
	return true, nil
}

// part reads one part: its header, then a leaf or a nested multipart.
func (w *splitter) part(p []byte, depth int) error {
	w.n++
	if w.n > w.c.opts.MaxParts {
		return parseErr(ErrTooManyParts, "more than %d parts", w.c.opts.MaxParts)
	}
	if depth > w.c.opts.MaxDepth {
		return parseErr(ErrTooDeep, "deeper than %d levels", w.c.opts.MaxDepth)
	}
	var h textproto.MIMEHeader
	content := p
	switch {
	case len(p) > 0 && p[0] == '\n':
		content = p[1:] // no header
	case len(p) > 1 && p[0] == '\r' && p[1] == '\n':
		content = p[2:]
	default:
		var n int
		h, n = partHeader(p)
		content = p[n:]
	}
	mt, params := "", map[string]string(nil)
	if ct := h.Get("Content-Type"); ct != "" {
		var err error
		mt, params, _, err = mediatype.ParseWithOptions(ct, mediaOpts)
		if err != nil {
			return nil // a part whose type cannot be read is skipped
		}
		mt = strings.ToLower(mt)
	}
	if b := params["boundary"]; b != "" && mt != "text/plain" && mt != "text/html" {
		found, err := w.multipart(content, b, depth+1)
		if found || err != nil {
			return err
		}
	}
	if mt == "" {
		mt = "text/plain"
	}
	w.t.leaves = append(w.t.leaves, &part{
		ctype:   mt,
		charset: params["charset"],
		cte:     strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))),
		header:  h,
		raw:     bytes.Clone(content), // the caller's buffer must not be shared
		depth:   depth,
		attach:  isAttachment(h),
	})
	return nil
}

// partHeader reads the header of a part: up to its blank line, where a
// line that is not a field continues the field before it (a folded line
// that lost its indent: "Content-Type: multipart/alternative;" then
// "boundary=..." at the start of the next line is common in bounces). A
// part without a blank line gets the fields at its start. It returns the
// header and where the content starts.
func partHeader(p []byte) (textproto.MIMEHeader, int) {
	end := headerEnd(p)
	if end < 0 {
		return headerBlock(bytesToString(p))
	}
	h, _ := readHeaderBlock(bytesToString(p[:end]), nil, true)
	return h, end
}

// isAttachment reports whether a part's Content-Disposition is
// "attachment" (RFC 2183), whatever its parameters.
func isAttachment(h textproto.MIMEHeader) bool {
	disp, _, _ := strings.Cut(h.Get("Content-Disposition"), ";")
	return strings.EqualFold(strings.TrimSpace(disp), "attachment")
}

// nextDelimiter finds the first delimiter line of delim ("--" boundary) in
// b at or after off: delim at the start of a line, followed by white space,
// the end of the input, or "--" (the close delimiter). It returns where the
// line starts, where the line after it starts, and whether it closes.
func nextDelimiter(b []byte, delim []byte, off int) (start, after int, closing, ok bool) {
	for off < len(b) {
		i := bytes.Index(b[off:], delim)
		if i < 0 {
			return 0, 0, false, false
		}
		i += off
		off = i + 1
		if i > 0 && b[i-1] != '\n' {
			continue
		}
		j := i + len(delim)
		switch {
		case j+1 < len(b) && b[j] == '-' && b[j+1] == '-':
			closing = true
		case j == len(b) || isSpaceByte(b[j]):
		default:
			continue // a longer boundary that starts with this one
		}
		after = len(b)
		if k := bytes.IndexByte(b[j:], '\n'); k >= 0 {
			after = j + k + 1
		}
		return i, after, closing, true
	}
	return 0, 0, false, false
}

// lineBreakBefore returns i less the line break that ends the line before
// offset i: it belongs to the delimiter that follows (RFC 2046 §5.1.1).
func lineBreakBefore(b []byte, i int) int {
	if i > 0 && b[i-1] == '\n' {
		i--
		if i > 0 && b[i-1] == '\r' {
			i--
		}
	}
	return i
}

func isSpaceByte(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '\v', '\f':
		return true
	}
	return false
}
