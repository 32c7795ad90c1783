package classify

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// The forms of RFC 5321 §4.1.2, RFC 5322 §3.4 and RFC 6531 §3.3 that bounces
// carry, in free text (firstAddress) and in field values (fieldAddress).
func TestAddressForms(t *testing.T) {
	for _, tc := range []struct {
		in, text, field string // text: what firstAddress finds, "" for none
	}{
		{`user@example.org`, `user@example.org`, `user@example.org`},
		{`<user@example.org>`, `user@example.org`, `user@example.org`},
		{`rfc822; user@example.org`, `user@example.org`, `user@example.org`},
		{`rfc822;<user@example.org>`, `user@example.org`, `user@example.org`},
		{`smtp; user@example.org`, `user@example.org`, `user@example.org`},
		{`SMTP:user@example.org`, `user@example.org`, `user@example.org`},
		{`SMTP=user@example.org`, `user@example.org`, `user@example.org`},
		{`RFC-822=user@example.org`, `user@example.org`, `user@example.org`},
		{`"a..b"@example.org`, `"a..b"@example.org`, `"a..b"@example.org`},
		{`"john smith"@example.org`, `"john smith"@example.org`, `"john smith"@example.org`},
		{`<"john smith"@example.org>`, `"john smith"@example.org`, `"john smith"@example.org`},
		{`"quote\"d"@example.org`, `"quote\"d"@example.org`, `"quote\"d"@example.org`},
		{`"plain"@example.org`, `plain@example.org`, `plain@example.org`}, // quotes not needed
		{`"(not a comment)"@example.org`, `"(not a comment)"@example.org`, `"(not a comment)"@example.org`},
		{`user@example.org (John)`, `user@example.org`, `user@example.org`},
		{`(comment) user@example.org`, `user@example.org`, `user@example.org`},
		{`John Smith <user@example.org>`, `user@example.org`, `user@example.org`},
		{`"Smith, John" <user@example.org>`, `user@example.org`, `user@example.org`},
		{`<@relay.example.net:user@example.org>`, `user@example.org`, `user@example.org`},
		{`<@a.example.net,@b.example.net:user@example.org>`, `user@example.org`, `user@example.org`},
		{`user@[192.0.2.1]`, `user@[192.0.2.1]`, `user@[192.0.2.1]`},
		{`user@[IPv6:2001:db8::1]`, `user@[IPv6:2001:db8::1]`, `user@[IPv6:2001:db8::1]`},
		{`'user@example.org'`, `user@example.org`, `user@example.org`},
		{`user@example.org.`, `user@example.org`, `user@example.org`},
		{`utf-8; 用户@例子.广告`, `用户@例子.广告`, `用户@例子.广告`},
		{`utf-8; \x{7528}\x{6237}@\x{4F8B}\x{5B50}.example`, ``, `用户@例子.example`},
		{`<pelé@example.org>`, `pelé@example.org`, `pelé@example.org`},
		{`rfc822; user@localhost`, ``, `user@localhost`}, // no dot: kept in a field, not an address in text
		{`@host.example.org`, ``, `@host.example.org`},
		{`IMCEASMTP-jo+2Esmith+40example+2Eorg@exch.example.net`, `jo.smith@example.org`, `jo.smith@example.org`},
		{`IMCEAEX-_O=ORG_OU=SITE_CN=RECIPIENTS_CN=jo@exch.example.net`, `IMCEAEX-_O=ORG_OU=SITE_CN=RECIPIENTS_CN=jo@exch.example.net`, `IMCEAEX-_O=ORG_OU=SITE_CN=RECIPIENTS_CN=jo@exch.example.net`},
	} {
		if got := firstAddress(tc.in); got != tc.text {
			t.Errorf("firstAddress(%q) = %q, want %q", tc.in, got, tc.text)
		}
		if got := fieldAddress(tc.in); got != tc.field {
			t.Errorf("fieldAddress(%q) = %q, want %q", tc.in, got, tc.field)
		}
	}
}

// Free text: an address is not run together with the words around it.
func TestAddressInText(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`550 5.1.1 <user@example.org>... User unknown`, "user@example.org"},
		{`user@example.org: host mx.example.org said: 550 unknown`, "user@example.org"},
		{`RCPT TO:<"a..b"@example.org>: 550 no such user`, `"a..b"@example.org`},
		{`The message to SMTP=user@example.org was not delivered`, "user@example.org"},
		{`收件人：用户@例子.广告 不存在`, "用户@例子.广告"},
		{`无法投递到user@example.org的邮件`, "user@example.org"}, // ASCII address in CJK prose
		{`<=?utf-8?B?8J+QiPCfkIg=?=@example.org>... User unknown`, "=?utf-8?B?8J+QiPCfkIg=?=@example.org"},
		{`no address @ here, nor @there`, ""},
		{`""@example.org`, ""},
		{`user@localhost`, ""},
	} {
		if got := firstAddress(tc.line); got != tc.want {
			t.Errorf("firstAddress(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// A DSN field folded over lines (RFC 5322 §2.2.3) gives its address.
func TestDSNAddressFolded(t *testing.T) {
	d := parseDSN("Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822;\n\t\"john smith\"@example.org\nAction: failed\nStatus: 5.1.1\n", 0)
	if len(d.recipients) != 1 || d.recipients[0].Address != `"john smith"@example.org` {
		t.Fatalf("recipients = %+v", d.recipients)
	}
}

const (
	atext  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
	qtext  = " !#$%&'()*+,./:;<>=?[]^_`{|}~abcXYZ09-"
	ldh    = "abcdefghijklmnopqrstuvwxyz0123456789-"
	wideCh = "用户例子广告пользовательüéñ"
)

// genAddress makes a random address: a dot-atom, quoted or UTF-8 local
// part at a domain of one to three labels under a TLD.
func genAddress(r *rand.Rand) string {
	var local string
	switch r.IntN(3) {
	case 0:
		var parts []string
		for range 1 + r.IntN(3) {
			parts = append(parts, randString(r, atext, 1+r.IntN(8)))
		}
		local = strings.Join(parts, ".")
		if typePrefix(local) > 0 || local[0] == '\'' || local[0] == '=' {
			local = "x" + local
		}
	case 1:
		inner := randString(r, qtext, 1+r.IntN(10))
		if r.IntN(3) == 0 {
			inner += `\"`
		}
		if dotAtom(inner) {
			inner += " "
		}
		local = `"` + inner + `"`
	default:
		local = randString(r, wideCh, 1+r.IntN(6))
	}
	var labels []string
	for range 1 + r.IntN(3) {
		l := randString(r, ldh, 1+r.IntN(10))
		labels = append(labels, "a"+strings.Trim(l, "-")+"z")
	}
	if r.IntN(4) == 0 {
		labels = append(labels, randString(r, "例子广告", 2))
	}
	return local + "@" + strings.Join(labels, ".") + "." + []string{"org", "com", "example", "广告"}[r.IntN(4)]
}

func randString(r *rand.Rand, chars string, n int) string {
	rs := []rune(chars)
	var sb strings.Builder
	for range n {
		sb.WriteRune(rs[r.IntN(len(rs))])
	}
	return sb.String()
}

// Every generated address, wrapped in every form bounces use, comes back
// exactly, from text and from a field value.
func TestAddressProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	wraps := []string{
		"%s", "<%s>", "rfc822; %s", "rfc822;<%s>", "utf-8; %s", "smtp; %s", "SMTP:%s", "%s (John Smith)",
		"(comment) %s", "John Smith <%s>", `"Smith, John" <%s>`, "<@relay.example.net:%s>",
		"<@a.example.net,@b.example.net:%s>",
	}
	texts := []string{
		"550 5.1.1 <%s>... User unknown", "%s: host mx.example.net said: 550 no such user",
		"  %s\n", "RCPT TO:<%s>: 550 rejected", "The following address failed: %s.",
	}
	for range 400 {
		want := genAddress(r)
		for _, w := range wraps {
			in := strings.ReplaceAll(w, "%s", want)
			if got := fieldAddress(in); got != want {
				t.Errorf("fieldAddress(%q) = %q, want %q", in, got, want)
			}
		}
		for _, w := range append(wraps, texts...) {
			in := strings.ReplaceAll(w, "%s", want)
			if got := firstAddress(in); got != want {
				t.Errorf("firstAddress(%q) = %q, want %q", in, got, want)
			}
		}
		if want[0] != '"' && isASCIIString(want) {
			in := "SMTP=" + want
			if got := fieldAddress(in); got != want {
				t.Errorf("fieldAddress(%q) = %q, want %q", in, got, want)
			}
		}
	}
}

// FuzzAddress checks the extractors on any input: no panic, and what they
// find is an address that reads back as itself.
func FuzzAddress(f *testing.F) {
	for _, s := range []string{
		`"a..b"@example.org`, `<@relay:user@host.example>`, `SMTP=user@example.org (John)`,
		`utf-8; \x{7528}@example.org`, `收件人：用户@例子.广告`, `"\"@x.org`, `user@[IPv6:::1]`, `@@.@`, `"\0"@0.0`, `"a\"b"@x.org`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a := firstAddress(s)
		if a != "" {
			at := strings.LastIndexByte(a, '@')
			if at <= 0 || at == len(a)-1 {
				t.Fatalf("firstAddress(%q) = %q: no local part or domain", s, a)
			}
			if again := firstAddress(a); again != a {
				t.Fatalf("firstAddress(%q) = %q, which reads back as %q", s, a, again)
			}
			if utf8.ValidString(a) {
				if fa := fieldAddress(a); fa != a {
					t.Fatalf("fieldAddress(%q) = %q", a, fa)
				}
			}
		}
		_ = fieldAddress(s)
		_ = addressList(s)
	})
}
