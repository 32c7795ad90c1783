package classify

import "strings"

// A phrase matcher over the rule tables: one pass over the text finds the
// highest-priority phrase it contains, where priority is the order of the
// tables (rule by rule, phrase by phrase), so the result is exactly that of
// trying each phrase in turn, without scanning the text once per phrase.
// Phrases are indexed by their first two bytes; a bitset of those pairs
// makes the common position, where no phrase starts, one lookup.

type phraseRef struct {
	category Category
	phrase   string
	weak     bool
	prefix   bool // written with a trailing '*': any word ending may follow
}

type matcher struct {
	refs []phraseRef
	bits [1 << 16 / 64]uint64 // first two bytes of some phrase
	tri  [1 << 16 / 64]uint64 // a hash of the first three bytes of some phrase
	idx  map[uint16][]int32   // first two bytes -> refs, in priority order
	// bounded: a phrase matches only on word boundaries ("rbl" is not in
	// "verbling", "spam" not in "antispam"), but for a trailing '*'.
	bounded bool
}

// tri3 hashes three bytes into the trigram filter.
func tri3(a, b, c byte) uint16 {
	return uint16(a)*31*31 ^ uint16(b)*31 ^ uint16(c)*7919
}

func newMatcher(tables ...[]phraseRule) *matcher {
	m := &matcher{idx: map[uint16][]int32{}}
	for ti, t := range tables {
		for _, r := range t {
			for _, p := range r.phrases {
				prefix := strings.HasSuffix(p, "*")
				p = strings.TrimSuffix(p, "*")
				if len(p) < 3 || p[0] == '#' || p[1] == '#' || p[2] == '#' {
					panic("classify: phrase too short to index: " + p) // a table error, found at init
				}
				k := uint16(p[0])<<8 | uint16(p[1])
				m.idx[k] = append(m.idx[k], int32(len(m.refs)))
				m.bits[k/64] |= 1 << (k % 64)
				h := tri3(p[0], p[1], p[2])
				m.tri[h/64] |= 1 << (h % 64)
				m.refs = append(m.refs, phraseRef{r.category, p, ti > 0, prefix})
			}
		}
	}
	return m
}

// mayStart reports whether a phrase may start with the bytes a, b, c (the
// bigram and trigram filters), and gives the bigram key of m.idx.
func (m *matcher) mayStart(a, b, c byte) (uint16, bool) {
	k := uint16(a)<<8 | uint16(b)
	if m.bits[k/64]&(1<<(k%64)) == 0 {
		return k, false
	}
	h := tri3(a, b, c)
	return k, m.tri[h/64]&(1<<(h%64)) != 0
}

// rules matches phraseRules and foreignRules (strong) before weakRules, on
// word boundaries.
var rules = newBoundedMatcher(withForeign(phraseRules), weakRules)

// newBoundedMatcher is newMatcher for phrases matched on word boundaries.
func newBoundedMatcher(tables ...[]phraseRule) *matcher {
	m := newMatcher(tables...)
	m.bounded = true
	return m
}

// textual is what the matcher reads: a string or a byte slice.
type textual interface{ ~string | ~[]byte }

// match returns the best strong and the best weak phrase in text, which
// must be normalized (see normalize). A nil result means none.
func match[T textual](m *matcher, text T) (strong, weak *phraseRef) {
	best := int32(len(m.refs))
	bestWeak := int32(len(m.refs))
	for i := 0; i+2 < len(text); i++ {
		k, ok := m.mayStart(text[i], text[i+1], text[i+2])
		if !ok {
			continue
		}
		for _, ri := range m.idx[k] {
			if ri >= best || ri >= bestWeak && m.refs[ri].weak {
				break
			}
			if at(m, text, i, ri) {
				if m.refs[ri].weak {
					bestWeak = ri
				} else {
					best = ri
				}
				break
			}
		}
		if best == 0 {
			break
		}
	}
	if best < int32(len(m.refs)) {
		strong = &m.refs[best]
	}
	if bestWeak < int32(len(m.refs)) {
		weak = &m.refs[bestWeak]
	}
	return strong, weak
}

// matchAny reports whether text contains any phrase, strong or weak.
func matchAny[T textual](m *matcher, text T) bool {
	for i := 0; i+2 < len(text); i++ {
		k, ok := m.mayStart(text[i], text[i+1], text[i+2])
		if !ok {
			continue
		}
		for _, ri := range m.idx[k] {
			if at(m, text, i, ri) {
				return true
			}
		}
	}
	return false
}

// at reports whether phrase ri of m stands at text[i:], on word boundaries
// when m is bounded.
func at[T textual](m *matcher, text T, i int, ri int32) bool {
	ref := &m.refs[ri]
	n, ok := phraseAt(text[i:], ref.phrase)
	if !ok || !m.bounded {
		return ok
	}
	if i > 0 && wordByte(text[i-1]) && wordByte(ref.phrase[0]) {
		return false
	}
	end := i + n
	return ref.prefix || end == len(text) || !wordByte(text[end]) || !wordByte(ref.phrase[len(ref.phrase)-1])
}

// wordByte reports whether c is part of an ASCII word. Bytes of UTF-8
// sequences are not: Japanese and Chinese write no spaces between words.
func wordByte(c byte) bool { return isAlnum(c) || c == '_' }

// phraseAt reports whether text starts with p, where '#' in p stands for a
// run of digits, and how many bytes of text it spans.
func phraseAt[T textual](text T, p string) (int, bool) {
	span := 0
	for {
		h := strings.IndexByte(p, '#')
		if h < 0 {
			return span + len(p), hasPrefix(text, p)
		}
		if !hasPrefix(text, p[:h]) {
			return 0, false
		}
		text = text[h:]
		n := 0
		for n < len(text) && isDigit(text[n]) {
			n++
		}
		if n == 0 {
			return 0, false
		}
		span += h + n
		text, p = text[n:], p[h+1:]
	}
}

func hasPrefix[T textual](text T, p string) bool {
	if len(text) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if text[i] != p[i] {
			return false
		}
	}
	return true
}

// normalizer lower-cases text and folds white space runs to one space into
// a buffer it reuses, so matching a line allocates nothing.
type normalizer struct{ buf []byte }

func (n *normalizer) norm(s string) []byte {
	n.buf = appendNorm(n.buf[:0], s)
	return n.buf
}

// appendNorm appends s to dst lower-cased, with white space runs folded to
// one space and trimmed.
func appendNorm(dst []byte, s string) []byte {
	space := false
	start := len(dst)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			space = len(dst) > start
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if space {
			dst = append(dst, ' ')
			space = false
		}
		dst = append(dst, c)
	}
	return dst
}
