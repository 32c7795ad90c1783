package classify

// ASCII case-insensitive helpers that do not allocate. The needle is
// always given in lower case.

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether s starts with prefix, ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lowerASCII(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// hasSuffixFold reports whether s ends with suffix, ignoring ASCII case.
func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && hasPrefixFold(s[len(s)-len(suffix):], suffix)
}

// indexFold returns the index of sub in s, ignoring ASCII case, or -1.
func indexFold(s, sub string) int {
	if sub == "" {
		return 0
	}
	c0 := sub[0]
	for i := 0; i+len(sub) <= len(s); i++ {
		if lowerASCII(s[i]) == c0 && hasPrefixFold(s[i:], sub) {
			return i
		}
	}
	return -1
}

// containsFold reports whether s contains sub, ignoring ASCII case.
func containsFold(s, sub string) bool { return indexFold(s, sub) >= 0 }
