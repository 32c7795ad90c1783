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
}

type matcher struct {
	refs []phraseRef
	bits [1 << 16 / 64]uint64 // first two bytes of some phrase
	tri  [1 << 16 / 64]uint64 // a hash of the first three bytes of some phrase
	idx  map[uint16][]int32   // first two bytes -> refs, in priority order
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
				if len(p) < 3 || p[0] == '#' || p[1] == '#' || p[2] == '#' {
					panic("classify: phrase too short to index: " + p) // a table error, found at init
				}
				k := uint16(p[0])<<8 | uint16(p[1])
				m.idx[k] = append(m.idx[k], int32(len(m.refs)))
				m.bits[k/64] |= 1 << (k % 64)
				h := tri3(p[0], p[1], p[2])
				m.tri[h/64] |= 1 << (h % 64)
				m.refs = append(m.refs, phraseRef{r.category, p, ti > 0})
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

// rules matches phraseRules and foreignRules (strong) before weakRules.
var rules = newMatcher(withForeign(phraseRules), weakRules)

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
			if phraseAt(text[i:], m.refs[ri].phrase) {
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
			if phraseAt(text[i:], m.refs[ri].phrase) {
				return true
			}
		}
	}
	return false
}

// phraseAt reports whether text starts with p, where '#' in p stands for a
// run of digits.
func phraseAt[T textual](text T, p string) bool {
	for {
		h := strings.IndexByte(p, '#')
		if h < 0 {
			return hasPrefix(text, p)
		}
		if !hasPrefix(text, p[:h]) {
			return false
		}
		text = text[h:]
		n := 0
		for n < len(text) && isDigit(text[n]) {
			n++
		}
		if n == 0 {
			return false
		}
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
