package classify

// Classify classifies one raw message (RFC 5322, LF or CRLF line ends).
func (c *Classifier) Classify(raw []byte) (*Report, error) {
	if len(raw) > c.opts.MaxSize {
		return nil, parseErr(ErrTooLarge, "%d bytes, limit %d", len(raw), c.opts.MaxSize)
	}
	return &Report{Kind: KindNotBounce}, nil
}
