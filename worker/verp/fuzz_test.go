package verp_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bouncer-mail/bouncer/worker/verp"
)

// FuzzDecode: Decode never panics, fails only with its sentinel errors, and
// accepts only tokens that Encode made with the key (the fuzzer can reach
// them only by copying a seed, up to case), for the fields they were made
// for.
func FuzzDecode(f *testing.F) {
	c := codec(f, "k2:"+secret2+",k1:"+secret1)
	minted := map[string]verp.Fields{}
	for _, fl := range []verp.Fields{
		{Recipient: "a@example.org", List: "news", Campaign: "c1"},
		{Recipient: "jürgen@münchen.example"},
		{Recipient: strings.Repeat("long", 16) + "@" + strings.Repeat("sub.", 40) + "example.org", List: "l", Campaign: "x"},
	} {
		addr, err := c.Encode(fl, day)
		if err != nil {
			f.Fatal(err)
		}
		tok, _ := c.Decode(addr)
		minted[tok.String()] = fl
		f.Add(addr)
		f.Add(strings.ToUpper(addr))
		f.Add("<" + addr + ">")
		f.Add(strings.Replace(addr, "+", "-", 1))
	}
	old := codec(f, "k1:"+secret1)
	addr, _ := old.Encode(verp.Fields{Recipient: "old@example.org"}, day)
	tok, _ := old.Decode(addr)
	minted[tok.String()] = verp.Fields{Recipient: "old@example.org"}
	f.Add(addr)
	retired := codec(f, "k0:"+strings.Repeat("QUJD", 8))
	addr, _ = retired.Encode(verp.Fields{Recipient: "a@example.org"}, day)
	f.Add(addr)
	f.Add("bounces+" + strings.Repeat("a", 48) + "@bounces.example.com")
	f.Add("")
	f.Add("@")
	f.Add("bounces+\xff\xfe@x")
	sentinels := []error{verp.ErrNotVERP, verp.ErrMalformed, verp.ErrUnknownKey, verp.ErrBadTag}
	f.Fuzz(func(t *testing.T, addr string) {
		tok, err := c.Decode(addr)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("Decode(%q) = %v, not one of the sentinel errors", addr, err)
		}
		fl, ok := minted[tok.String()]
		if !ok {
			t.Fatalf("Decode(%q) accepted token %s, which Encode never made", addr, tok)
		}
		if err := tok.Check(fl); err != nil {
			t.Fatalf("Decode(%q) = a token that does not match its own fields: %v", addr, err)
		}
	})
}

// FuzzParseKeys: ParseKeys never panics, and what it accepts never prints
// a secret.
func FuzzParseKeys(f *testing.F) {
	f.Add("k1:" + secret1 + ",k2:" + secret2)
	f.Add("k1:c2hvcnQ=")
	f.Add(":,:,")
	f.Fuzz(func(t *testing.T, s string) {
		ks, err := verp.ParseKeys(s)
		if err != nil {
			return
		}
		for _, e := range strings.Split(s, ",") {
			_, secret, _ := strings.Cut(e, ":")
			if secret = strings.TrimSpace(secret); len(secret) >= 22 && strings.Contains(ks.String(), secret) {
				t.Fatalf("Keys(%q).String() = %q shows a secret", s, ks.String())
			}
		}
	})
}
