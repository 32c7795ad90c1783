package chaos

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/demo"
)

// message is one generated bounce: its bytes (CRLF, as IMAP carries them)
// and their SHA-256, the store's key of a message.
type message struct {
	raw []byte
	sum [32]byte
}

// generate makes n distinct messages from the demo's samples (every
// category, several MTA formats, several recipients, a person's reply, a
// message that must be quarantined), the same for the same seed. Message
// i takes a template chosen by the seed, gets an X-Chaos-Seq header, and
// its failed recipients' local parts get a ".cNNNNN" suffix, so that no
// two messages share a recipient: suppressions then do not depend on the
// order the messages are worked in, and a clean run is a fair reference.
func generate(n int, seed uint64) ([]message, error) {
	samples, err := demo.Samples()
	if err != nil {
		return nil, fmt.Errorf("demo samples: %w", err)
	}
	type template struct {
		raw   []byte
		addrs []string
	}
	templates := make([]template, len(samples))
	for i, s := range samples {
		templates[i].raw = s.Raw
		if rep, err := classify.Classify(s.Raw); err == nil {
			for _, r := range rep.Recipients {
				if strings.Contains(r.Address, "@") {
					templates[i].addrs = append(templates[i].addrs, r.Address)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x6368616f73)) // "chaos"
	out := make([]message, n)
	for i := range out {
		t := templates[rng.IntN(len(templates))]
		raw := t.raw
		for _, a := range t.addrs {
			local, domain, _ := strings.Cut(a, "@")
			tagged := fmt.Sprintf("%s.c%05d@%s", local, i, domain)
			raw = bytes.ReplaceAll(raw, []byte(a), []byte(tagged))
			raw = bytes.ReplaceAll(raw, []byte(strings.ToUpper(a[:1])+a[1:]), []byte(tagged))
		}
		raw = append([]byte(fmt.Sprintf("X-Chaos-Seq: %d-%d\r\n", seed, i)), raw...)
		out[i] = message{raw: raw, sum: sha256.Sum256(raw)}
	}
	return out, nil
}
