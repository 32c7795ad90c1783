package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/mail"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
)

// batch is a fetched and classified batch on its way to the commit.
type batch struct {
	heads []head
	msgs  []store.Message
	res   store.SaveResult // what save wrote
}

// save stores b in one transaction, or, when that fails for a reason that
// is not transient, in parts, quarantining the message at fault (saveAll):
// the first half of a batch's commit. It runs to its end even when ctx
// ends meanwhile (connGuard bounds that).
func (s *session) save(ctx context.Context, b *batch) error {
	heads, msgs := b.heads, b.msgs
	if len(msgs) > 0 { // none when all were expunged since the size fetch
		if err := s.w.verifyBatch(context.WithoutCancel(ctx), msgs); err != nil {
			return fmt.Errorf("trust policy for batch of %d (uid %d-%d): %w", len(msgs), heads[0].uid, heads[len(heads)-1].uid, err)
		}
		forced := s.strikes.n >= maxSaveAttempts && s.strikes.first == msgs[0].UID && s.strikes.uidValidity == s.uidValidity
		res, err := s.saveAll(ctx, msgs, forced)
		if err != nil {
			s.strikes.fail(s.uidValidity, msgs[0].UID)
			return fmt.Errorf("save batch of %d (uid %d-%d): %w", len(msgs), heads[0].uid, heads[len(heads)-1].uid, err)
		}
		b.res = res
	}
	s.w.observe(msgs, b.res, time.Now())
	s.w.trust.observe(msgs)
	s.w.status.addProcessed(s.m.Key, len(msgs))
	if b.res.Events > 0 {
		select {
		case s.w.relay.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// finish moves the messages of a saved batch out of the mailbox and saves
// the checkpoint after them: the second half of a batch's commit. Nothing
// is moved before its batch is committed; a failure here leaves the
// messages in place, and the next attempt finds them recorded (the store
// is idempotent). It runs to its end even when ctx ends meanwhile
// (connGuard bounds that); each step has its own timeout.
func (s *session) finish(ctx context.Context, b *batch) error {
	bctx := context.WithoutCancel(ctx)
	heads, msgs, res := b.heads, b.msgs, b.res

	// Sort the batch into its destinations.
	var processed, quarantine, notBounce imap.UIDSet
	for i := range msgs {
		m := &msgs[i]
		uid := imap.UID(m.UID)
		switch {
		case m.ParseError != "":
			quarantine.AddNum(uid)
		case m.Report.Kind == classify.KindNotBounce:
			if s.m.NotBounce != "" {
				notBounce.AddNum(uid)
			} // else: left, unread, for a person
		default:
			processed.AddNum(uid)
		}
	}
	for _, mv := range []struct {
		set  imap.UIDSet
		dest string
	}{{processed, s.m.Processed}, {quarantine, s.m.Quarantine}, {notBounce, s.m.NotBounce}} {
		if len(mv.set) == 0 {
			continue
		}
		err := s.do("move to "+mv.dest, func() error {
			_, err := s.c.Move(mv.set, mv.dest).Wait()
			return err
		})
		if err != nil {
			return err
		}
	}

	last := heads[len(heads)-1].uid
	cctx, cancel := context.WithTimeout(bctx, 10*time.Second)
	err := s.w.db.SaveCheckpoint(cctx, s.m.Key, store.Checkpoint{UIDValidity: s.uidValidity, LastUID: uint32(last)})
	cancel()
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	s.lastUID = last
	s.log.Debug("batch committed", "messages", res.Messages, "duplicates", res.Duplicates,
		"bounces", res.Bounces, "suppressions", res.Suppressions, "events", res.Events,
		"uid_first", heads[0].uid, "uid_last", last)
	return nil
}

// fetchAndClassify fetches the bodies of heads (BODY.PEEK: nothing is
// marked \Seen, RFC 3501 §6.4.5) and classifies them on every core.
// Over-size messages are read as a stream into their hash only, and
// recorded as parse errors so they are quarantined.
func (s *session) fetchAndClassify(heads []head) ([]store.Message, error) {
	max := s.w.cfg.MaxMessageSize
	var small, large []imap.UID
	for _, h := range heads {
		if h.size > max {
			large = append(large, h.uid)
		} else {
			small = append(small, h.uid)
		}
	}
	bodies := make(map[imap.UID][]byte, len(small))
	sums := make(map[imap.UID][32]byte, len(large))
	sec := &imap.FetchItemBodySection{Peek: true}
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}
	if len(small) > 0 {
		err := s.do("fetch bodies", func() error {
			cmd := s.c.Fetch(imap.UIDSetNum(small...), opts)
			for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
				uid, body, err := readBody(msg, 2*int64(max))
				if err != nil {
					cmd.Close()
					return err
				}
				if uid != 0 && body != nil {
					bodies[uid] = body
				}
			}
			return cmd.Close()
		})
		if err != nil {
			return nil, err
		}
	}
	for _, uid := range large {
		err := s.do(fmt.Sprintf("fetch over-size uid %d", uid), func() error {
			sum, err := s.streamHash(uid, sec, opts)
			if err == nil {
				sums[uid] = sum
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}

	msgs := make([]store.Message, 0, len(heads))
	for _, h := range heads {
		m := store.Message{Mailbox: s.m.Key, UIDValidity: s.uidValidity, UID: uint32(h.uid), Size: h.size, InternalDate: h.date}
		if sum, ok := sums[h.uid]; ok {
			m.SHA256 = sum
			m.ParseError = fmt.Sprintf("message too large: %d bytes, limit %d", h.size, max)
		} else if _, ok := bodies[h.uid]; !ok {
			continue // expunged since the size fetch
		}
		msgs = append(msgs, m)
	}
	s.classifyAll(msgs, bodies)
	return msgs, nil
}

// readBody reads a fetched message's UID and body. The body is read into
// one buffer of the literal's announced size (what msg.Collect would grow
// to by doubling), which may not pass limit (the message's RFC822.SIZE was
// checked against the size limit already: a literal much larger is the
// server's error). body is nil when the server sent none.
func readBody(msg *imapclient.FetchMessageData, limit int64) (uid imap.UID, body []byte, err error) {
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = it.UID
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				continue
			}
			n := it.Literal.Size()
			if n < 0 || n > limit {
				return 0, nil, fmt.Errorf("body literal of %d bytes, more than the %d its size allows", n, limit)
			}
			body = make([]byte, n)
			if _, err := io.ReadFull(it.Literal, body); err != nil {
				return 0, nil, fmt.Errorf("read body: %w", err)
			}
		}
	}
	return uid, body, nil
}

// streamHash fetches one message and hashes it without keeping it.
func (s *session) streamHash(uid imap.UID, sec *imap.FetchItemBodySection, opts *imap.FetchOptions) ([32]byte, error) {
	var sum [32]byte
	cmd := s.c.Fetch(imap.UIDSetNum(uid), opts)
	found := false
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			body, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok || body.Literal == nil {
				continue
			}
			h := sha256.New()
			if _, err := io.Copy(&crlfWriter{w: h}, body.Literal); err != nil {
				cmd.Close()
				return sum, err
			}
			copy(sum[:], h.Sum(nil))
			found = true
		}
	}
	if err := cmd.Close(); err != nil {
		return sum, err
	}
	if !found {
		return sum, fmt.Errorf("uid %d: no body returned", uid)
	}
	return sum, nil
}

// classifyAll classifies the messages whose body is in bodies, on every
// core. A classifier panic is caught and recorded as a parse error: one
// hostile message must not stop the mailbox.
func (s *session) classifyAll(msgs []store.Message, bodies map[imap.UID][]byte) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(msgs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s.classifyOne(&msgs[i], bodies[imap.UID(msgs[i].UID)])
			}
		}()
	}
	for i := range msgs {
		if msgs[i].ParseError == "" {
			next <- i
		}
	}
	close(next)
	wg.Wait()
}

func (s *session) classifyOne(m *store.Message, raw []byte) {
	m.SHA256 = MessageSHA256(raw)
	rep, err := safeClassify(s.w.cls, raw)
	if err != nil {
		m.ParseError = err.Error()
		m.MessageID = headerMessageID(raw)
		s.log.Info("message quarantined", "uid", m.UID, "err", err)
		return
	}
	m.Report = rep
	m.MessageID = rep.MessageID
}

func safeClassify(c *classify.Classifier, raw []byte) (rep *classify.Report, err error) {
	defer func() {
		if v := recover(); v != nil {
			rep, err = nil, fmt.Errorf("classifier panic: %v", v)
		}
	}()
	return c.Classify(raw)
}

// headerMessageID returns the Message-ID field of raw, or "".
func headerMessageID(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(msg.Header.Get("Message-Id"))
}

// MessageSHA256 is the hash the store keys messages by: SHA-256 of raw
// with every line end normalised to CRLF, so the same message hashes the
// same whether read from a file (LF) or from IMAP (CRLF).
func MessageSHA256(raw []byte) [32]byte {
	h := sha256.New()
	w := &crlfWriter{w: h}
	w.Write(raw)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// crlfWriter writes to w with every bare LF turned into CRLF.
type crlfWriter struct {
	w      io.Writer
	lastCR bool
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.w.Write(p)
			c.lastCR = p[len(p)-1] == '\r'
			break
		}
		prevCR := c.lastCR
		if i > 0 {
			prevCR = p[i-1] == '\r'
		}
		c.w.Write(p[:i])
		if prevCR {
			c.w.Write([]byte{'\n'})
		} else {
			c.w.Write([]byte{'\r', '\n'})
		}
		c.lastCR = false
		p = p[i+1:]
	}
	return n, nil
}

// observe counts a committed batch in the metrics.
func (w *Worker) observe(msgs []store.Message, res store.SaveResult, committed time.Time) {
	m := w.metrics
	m.batches.Inc()
	m.suppressions.Add(float64(res.Suppressions))
	m.duplicates.Add(float64(res.Duplicates))
	for i := range msgs {
		msg := &msgs[i]
		if !msg.InternalDate.IsZero() {
			m.commitLatency.Observe(committed.Sub(msg.InternalDate).Seconds())
		}
		if msg.ParseError != "" {
			m.messages.WithLabelValues("quarantined").Inc()
			continue
		}
		m.messages.WithLabelValues(string(msg.Report.Kind)).Inc()
		for j := range msg.Report.Recipients {
			r := &msg.Report.Recipients[j]
			if r.Failed() {
				m.recipients.WithLabelValues(string(r.Category), string(r.Severity)).Inc()
			}
		}
	}
}

// ToCRLF returns b with every bare LF turned into CRLF, as IMAP literals of
// a message must have (RFC 3501 §4.3). b itself is returned when it has no
// LF at all.
func ToCRLF(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/40)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out.Write(b)
			break
		}
		if i > 0 && b[i-1] == '\r' {
			out.Write(b[:i+1])
		} else {
			out.Write(b[:i])
			out.WriteString("\r\n")
		}
		b = b[i+1:]
	}
	return out.Bytes()
}
