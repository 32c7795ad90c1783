package verp_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/bouncer-mail/bouncer/worker/verp"
)

const (
	secret1 = "c2VjcmV0LW51bWJlci1vbmUtMzItYnl0ZXMtbG9uZyE=" // "secret-number-one-32-bytes-long!"
	secret2 = "dGhlLXNlY29uZC1zZWNyZXQtaXMtYWxzby0zMmJ5dGU=" // "the-second-secret-is-also-32byte"
)

var day = time.Date(2026, 12, 4, 16, 30, 0, 0, time.UTC)

func mustKeys(t testing.TB, s string) *verp.Keys {
	t.Helper()
	ks, err := verp.ParseKeys(s)
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	return ks
}

func codec(t testing.TB, keys string) verp.Codec {
	return verp.Codec{Keys: mustKeys(t, keys), Domain: "bounces.example.com"}
}

// randText is a random string of n runes from pool.
func randText(r *rand.Rand, pool []rune, n int) string {
	var b strings.Builder
	for range n {
		b.WriteRune(pool[r.IntN(len(pool))])
	}
	return b.String()
}

var (
	asciiLocal = []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.!#$%&'*+-/=?^_`{|}~")
	utf8Local  = []rune("abcxyzéüßçñøåœ日本語中文пример한국어ελληνικά😀🎉")
	domainPool = []rune("abcdefghijklmnopqrstuvwxyz0123456789-")
	idPool     = []rune("abcdefghijklmnopqrstuvwxyz0123456789-_./:é日 ")
)

// randFields makes a recipient (ASCII or UTF-8, short or up to the 254
// octets of a path), a list and a campaign id (either may be empty).
func randFields(r *rand.Rand) verp.Fields {
	pool := asciiLocal
	if r.IntN(3) == 0 {
		pool = utf8Local
	}
	var local string
	for local == "" || len(local) > 180 {
		local = randText(r, pool, 1+r.IntN(64))
	}
	domain := randText(r, domainPool[:36], 1+r.IntN(20)) + "." + randText(r, domainPool[:26], 2+r.IntN(6))
	if r.IntN(4) == 0 {
		domain = "münchen-" + domain
	}
	f := verp.Fields{Recipient: local + "@" + domain}
	if r.IntN(5) > 0 {
		f.List = strings.TrimSpace(randText(r, idPool, 1+r.IntN(40)))
		f.List = strings.ReplaceAll(f.List, " ", "")
	}
	if r.IntN(5) > 0 {
		f.Campaign = strings.ReplaceAll(randText(r, idPool, 1+r.IntN(60)), " ", "")
	}
	return f
}

// A property test: every token Encode makes fits its 64 octets, decodes (in
// any case) to the key, day and fields it was made for, and refuses any
// other recipient, list or campaign.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 2026))
	forms := []verp.Codec{
		{Local: "bounces", Sep: "+"},
		{Local: "b", Sep: "-"},
		{Local: "Return.Path", Sep: "="},
		{Local: "bounce-handler1", Sep: "+"},
	}
	ks := mustKeys(t, "new:"+secret2+",old:"+secret1)
	for i := range 3000 {
		c := forms[i%len(forms)]
		c.Keys, c.Domain = ks, "bounces.example.com"
		f := randFields(r)
		if len(f.Recipient) > 254 {
			continue
		}
		issued := day.AddDate(0, 0, -r.IntN(2000))
		addr, err := c.Encode(f, issued)
		if err != nil {
			t.Fatalf("Encode(%+v) = %v", f, err)
		}
		local, _, _ := strings.Cut(addr, "@")
		token := strings.TrimPrefix(local, c.Local+c.Sep)
		if len(local) > 64 || len(token) != verp.TokenLen || token != strings.ToLower(token) || strings.ContainsFunc(addr, func(r rune) bool { return r > 127 }) {
			t.Fatalf("Encode(%+v) = %q: want an ASCII local part of at most 64 octets with a lower-case token", f, addr)
		}
		for _, a := range []string{addr, strings.ToUpper(addr), "<" + addr + ">"} {
			tok, err := c.Verify(a, f)
			if err != nil {
				t.Fatalf("Verify(%q, %+v) = %v, want nil", a, f, err)
			}
			if tok.KeyID != "new" || !tok.Current || !tok.Issued.Equal(issued.Truncate(24*time.Hour)) {
				t.Fatalf("Decode(%q) = key %s current %v issued %s, want new true %s", a, tok.KeyID, tok.Current, tok.Issued, issued)
			}
		}
		tok, _ := c.Decode(addr)
		for _, tc := range []struct {
			f    verp.Fields
			want error
		}{
			{verp.Fields{Recipient: "x" + f.Recipient}, verp.ErrWrongRecipient},
			{verp.Fields{Recipient: f.Recipient, List: f.List + "x"}, verp.ErrWrongList},
			{verp.Fields{Recipient: f.Recipient, Campaign: f.Campaign + "x"}, verp.ErrWrongCampaign},
		} {
			if err := tok.Check(tc.f); !errors.Is(err, tc.want) {
				t.Fatalf("token for %+v: Check(%+v) = %v, want %v", f, tc.f, err, tc.want)
			}
		}
	}
}

// Mail systems rewrite addresses: the recipient a DSN reports may differ in
// case, Unicode normalization or IDNA form from the one we sent to.
func TestRecipientNormalization(t *testing.T) {
	c := codec(t, "k1:"+secret1)
	for _, tc := range []struct{ sent, reported string }{
		{"ana@mail.example.net", "Ana@MAIL.Example.NET"},
		{"ana@mail.example.net", "<ana@mail.example.net>"},
		{"ana@mail.example.net", "ana@mail.example.net."},
		{"jürgen@münchen.example", "JÜRGEN@xn--mnchen-3ya.example"},
		{"jos\u00e9@example.org", "jose\u0301@example.org"}, // NFC and NFD
	} {
		addr, err := c.Encode(verp.Fields{Recipient: tc.sent}, day)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(addr, verp.Fields{Recipient: tc.reported}); err != nil {
			t.Errorf("token for %q: Verify(recipient %q) = %v, want nil", tc.sent, tc.reported, err)
		}
	}
}

// A token for another address than the bounce names is detected, and the
// right candidate among several (a forwarded address) is found.
func TestWrongRecipient(t *testing.T) {
	c := codec(t, "k1:"+secret1)
	mine, err := c.Encode(verp.Fields{Recipient: "mallory@example.net", List: "news", Campaign: "c1"}, day)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.Verify(mine, verp.Fields{Recipient: "alice@example.org", List: "news", Campaign: "c1"})
	if !errors.Is(err, verp.ErrWrongRecipient) || errors.Is(err, verp.ErrWrongList) || tok == nil {
		t.Errorf("Verify(mallory's token, alice) = %v, %v; want a token and only ErrWrongRecipient", tok, err)
	}
	if err := tok.Check(verp.Fields{Recipient: "bob@example.org", List: "other", Campaign: "c2"}); !errors.Is(err, verp.ErrWrongRecipient) || !errors.Is(err, verp.ErrWrongList) || !errors.Is(err, verp.ErrWrongCampaign) {
		t.Errorf("Check(all wrong) = %v, want all three mismatches", err)
	}
	var found string
	for _, cand := range []string{"postmaster@example.net", "mallory@EXAMPLE.net"} {
		if tok.MatchRecipient(cand) {
			found = cand
		}
	}
	if found != "mallory@EXAMPLE.net" {
		t.Errorf("candidate matching the token = %q, want mallory@EXAMPLE.net", found)
	}
}

// Changing any one character of a token, to any other character, makes it
// fail; so do cutting and lengthening it.
func TestTamper(t *testing.T) {
	c := codec(t, "k1:"+secret1+",k0:"+secret2)
	addr, err := c.Encode(verp.Fields{Recipient: "a@example.org", List: "l", Campaign: "c"}, day)
	if err != nil {
		t.Fatal(err)
	}
	local, domain, _ := strings.Cut(addr, "@")
	tok := strings.TrimPrefix(local, "bounces+")
	alphabet := "abcdefghijklmnopqrstuvwxyz234567018=_-+.!é"
	n := 0
	for i := range tok {
		for _, ch := range alphabet {
			if string(ch) == tok[i:i+1] {
				continue
			}
			forged := "bounces+" + tok[:i] + string(ch) + tok[i+1:] + "@" + domain
			_, err := c.Decode(forged)
			if !errors.Is(err, verp.ErrBadTag) && !errors.Is(err, verp.ErrUnknownKey) && !errors.Is(err, verp.ErrMalformed) {
				t.Fatalf("Decode(%q) = %v, want a bad tag, unknown key or malformed token", forged, err)
			}
			n++
		}
	}
	for _, forged := range []string{"bounces+" + tok[1:] + "@" + domain, "bounces+" + tok + "a@" + domain, "bounces+" + tok + "+x@" + domain} {
		if _, err := c.Decode(forged); !errors.Is(err, verp.ErrMalformed) {
			t.Errorf("Decode(%q) = %v, want ErrMalformed", forged, err)
		}
	}
	t.Logf("%d one-character forgeries refused", n)
}

// Rotation: a new key first signs; the old one verifies while listed, and
// fails as unknown once dropped; a foreign key never verifies.
func TestRotation(t *testing.T) {
	before := codec(t, "k1:"+secret1)
	during := codec(t, "k2:"+secret2+",k1:"+secret1)
	after := codec(t, "k2:"+secret2)
	f := verp.Fields{Recipient: "a@example.org", List: "news", Campaign: "c"}
	old, err := before.Encode(f, day)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := during.Encode(f, day)
	if err != nil {
		t.Fatal(err)
	}
	if old == fresh {
		t.Fatalf("the new key signs like the old one: %s", old)
	}
	for _, tc := range []struct {
		c       verp.Codec
		addr    string
		key     string
		current bool
		err     error
	}{
		{during, old, "k1", false, nil},
		{during, fresh, "k2", true, nil},
		{after, fresh, "k2", true, nil},
		{after, old, "", false, verp.ErrUnknownKey},
		{before, fresh, "", false, verp.ErrUnknownKey},
		// The same id with another secret: a key we never had.
		{codec(t, "k1:"+secret2), old, "", false, verp.ErrBadTag},
	} {
		tok, err := tc.c.Verify(tc.addr, f)
		if !errors.Is(err, tc.err) || (err == nil && (tok.KeyID != tc.key || tok.Current != tc.current)) {
			t.Errorf("keys %s: Verify(%s) = %v, %v; want key %q current %v, error %v", tc.c.Keys, tc.addr, tok, err, tc.key, tc.current, tc.err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	c := codec(t, "k1:"+secret1)
	good, err := c.Encode(verp.Fields{Recipient: "a@example.org"}, day)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSuffix(strings.TrimPrefix(good, "bounces+"), "@bounces.example.com")
	for _, tc := range []struct {
		addr string
		want error
	}{
		{"", verp.ErrNotVERP},
		{"bounces", verp.ErrNotVERP},
		{"@bounces.example.com", verp.ErrNotVERP},
		{"bounces+" + tok + "@", verp.ErrNotVERP},
		{"bounce+" + tok + "@bounces.example.com", verp.ErrNotVERP},
		{"bounces-" + tok + "@bounces.example.com", verp.ErrNotVERP},
		{"bounces+" + tok + "@other.example.com", verp.ErrNotVERP},
		{"bounces+@bounces.example.com", verp.ErrMalformed},
		{"bounces+" + strings.Repeat("a", 48) + "@bounces.example.com", verp.ErrMalformed}, // version 0
		{"bounces+b" + tok[1:] + "@bounces.example.com", verp.ErrMalformed},                // version 9
		{"bounces+" + tok[:47] + "1@bounces.example.com", verp.ErrMalformed},
		{"bounces+" + tok[:47] + "\xff@bounces.example.com", verp.ErrMalformed},
	} {
		if _, err := c.Decode(tc.addr); !errors.Is(err, tc.want) {
			t.Errorf("Decode(%q) = %v, want %v", tc.addr, err, tc.want)
		}
	}
	idn := verp.Codec{Keys: c.Keys, Domain: "Bounces.München.example."}
	addr, err := idn.Encode(verp.Fields{Recipient: "a@example.org"}, day)
	if err != nil || !strings.HasSuffix(addr, "@bounces.xn--mnchen-3ya.example") {
		t.Errorf("Encode at an IDN domain = %q, %v; want the ASCII form of the domain", addr, err)
	}
	if _, err := idn.Decode(addr); err != nil {
		t.Errorf("Decode(%q) with Domain %q = %v, want nil", addr, idn.Domain, err)
	}
	// Without a domain, any domain is accepted (one mailbox, several domains).
	c.Domain = ""
	if _, err := c.Decode("bounces+" + tok + "@Other.Example.COM"); err != nil {
		t.Errorf("Decode at another domain with no Domain set = %v, want nil", err)
	}
	if _, err := (verp.Codec{}).Decode(good); !errors.Is(err, verp.ErrNoKeys) {
		t.Errorf("Decode without keys = %v, want ErrNoKeys", err)
	}
}

func TestEncodeErrors(t *testing.T) {
	ok := verp.Fields{Recipient: "a@example.org", List: "news", Campaign: "c1"}
	for _, tc := range []struct {
		name   string
		c      verp.Codec
		f      verp.Fields
		issued time.Time
		want   string
	}{
		{"no @", codec(t, "k:"+secret1), verp.Fields{Recipient: "alice"}, day, `recipient "alice" is not an email address`},
		{"empty local", codec(t, "k:"+secret1), verp.Fields{Recipient: "@example.org"}, day, "not an email address"},
		{"space", codec(t, "k:"+secret1), verp.Fields{Recipient: "a b@example.org"}, day, "U+0020"},
		{"padded", codec(t, "k:"+secret1), verp.Fields{Recipient: " a@example.org"}, day, "not an email address"},
		{"invalid UTF-8", codec(t, "k:"+secret1), verp.Fields{Recipient: "a\xff@example.org"}, day, "not valid UTF-8"},
		{"replacement", codec(t, "k:"+secret1), verp.Fields{Recipient: "a\uFFFD@example.org"}, day, "U+FFFD"},
		{"too long", codec(t, "k:"+secret1), verp.Fields{Recipient: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 190) + ".org"}, day, "more than 254"},
		{"list control", codec(t, "k:"+secret1), verp.Fields{Recipient: "a@example.org", List: "a\nb"}, day, "list"},
		{"before 2020", codec(t, "k:"+secret1), ok, time.Date(2019, 12, 31, 0, 0, 0, 0, time.UTC), "outside 2020-2199"},
		{"no domain", verp.Codec{Keys: mustKeys(t, "k:"+secret1)}, ok, day, "no domain"},
		{"bad domain", verp.Codec{Keys: mustKeys(t, "k:"+secret1), Domain: "bad domain!"}, ok, day, `domain "bad domain!" is not a host name`},
		{"no keys", verp.Codec{Domain: "bounces.example.com"}, ok, day, "no VERP keys"},
		{"local too long", verp.Codec{Keys: mustKeys(t, "k:"+secret1), Domain: "x.example", Local: "bounces-and-more"}, ok, day, "take 17 octets, and with the 48-character token 65"},
		{"bad local", verp.Codec{Keys: mustKeys(t, "k:"+secret1), Domain: "x.example", Local: "a..b"}, ok, day, "not a dot-atom"},
		{"alnum sep", verp.Codec{Keys: mustKeys(t, "k:"+secret1), Domain: "x.example", Sep: "x"}, ok, day, `separator "x"`},
		{"space sep", verp.Codec{Keys: mustKeys(t, "k:"+secret1), Domain: "x.example", Sep: " "}, ok, day, `separator " "`},
	} {
		addr, err := tc.c.Encode(tc.f, tc.issued)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Encode(%+v) = %q, %v; want an error containing %q", tc.name, tc.f, addr, err, tc.want)
		}
	}
}

// The local part must fit RFC 5321's 64 octets: every local part and
// separator that Validate accepts gives one that does.
func TestLocalPartLimit(t *testing.T) {
	f := verp.Fields{Recipient: strings.Repeat("r", 64) + "@" + strings.Repeat("d", 60) + ".example"}
	for n := 1; n <= 20; n++ {
		for _, sep := range []string{"+", "--"} {
			c := verp.Codec{Keys: mustKeys(t, "k:"+secret1), Domain: "bounces.example.com", Local: strings.Repeat("b", n), Sep: sep}
			addr, err := c.Encode(f, day)
			fits := n+len(sep)+verp.TokenLen <= 64
			if fits != (err == nil) {
				t.Errorf("Encode with local part of %d and separator %q = %q, %v; want success %v", n, sep, addr, err, fits)
				continue
			}
			if err != nil {
				if !errors.Is(err, verp.ErrConfig) || !strings.Contains(err.Error(), "RFC 5321") {
					t.Errorf("Encode with local part of %d = %v, want ErrConfig naming RFC 5321", n, err)
				}
				continue
			}
			if local, _, _ := strings.Cut(addr, "@"); len(local) > 64 {
				t.Errorf("Encode with local part of %d = %q: local part of %d octets", n, addr, len(local))
			}
		}
	}
}

// Printing keys or tokens, in any verb, never shows a secret.
func TestSecretsNeverPrinted(t *testing.T) {
	ks := mustKeys(t, "k2:"+secret2+",k1:"+secret1)
	c := verp.Codec{Keys: ks, Domain: "bounces.example.com"}
	addr, _ := c.Encode(verp.Fields{Recipient: "a@example.org"}, day)
	tok, err := c.Decode(addr)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range []any{ks, *ks, c, tok, *tok} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out = append(out, fmt.Sprintf(verb, v))
		}
	}
	for _, s := range out {
		for _, secret := range []string{secret1, secret2, "secret-number-one", "the-second-secret", "c2VjcmV0", "dGhlLXNl"} {
			if strings.Contains(s, secret) {
				t.Errorf("printed %q, which contains a secret", s)
			}
		}
	}
	if got, want := ks.String(), "VERP keys k2, k1 (k2 signs)"; got != want {
		t.Errorf("Keys.String() = %q, want %q", got, want)
	}
}

// What a verification costs the worker per bounce: three HMACs and a
// base32 decode.
func BenchmarkVerify(b *testing.B) {
	c := codec(b, "k2:"+secret2+",k1:"+secret1)
	f := verp.Fields{Recipient: "ana@mail.example.net", List: "news", Campaign: "c-2026-12"}
	addr, err := c.Encode(f, day)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Verify(addr, f); err != nil {
			b.Fatal(err)
		}
	}
}
