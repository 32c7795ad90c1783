package classify

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/encoding/unicode"
)

// TestToUTF8Charsets encodes a notice line with x/text's encoder for each
// charset MTAs write notices in, and reads it back through toUTF8 under the
// labels MTAs give it.
func TestToUTF8Charsets(t *testing.T) {
	tests := []struct {
		labels []string
		enc    encoding.Encoding
		text   string
	}{
		{[]string{"iso-8859-1", "ISO_8859-1", "latin1", "Latin-1"}, charmap.ISO8859_1, "550 Boîte aux lettres pleine, réessayez"},
		{[]string{"windows-1252", "cp1252"}, charmap.Windows1252, "Empfänger unbekannt – €"},
		{[]string{"iso-8859-15"}, charmap.ISO8859_15, "casella piena €"},
		{[]string{"iso-8859-2"}, charmap.ISO8859_2, "Użytkownik nieznany"},
		{[]string{"windows-1250"}, charmap.Windows1250, "Uživatel neexistuje"},
		{[]string{"windows-1251", "cp1251"}, charmap.Windows1251, "550 Пользователь не найден"},
		{[]string{"koi8-r", "KOI8-R"}, charmap.KOI8R, "Почтовый ящик переполнен"},
		{[]string{"iso-8859-5"}, charmap.ISO8859_5, "Пользователь не найден"},
		{[]string{"gb2312", "GBK", "euc-cn", "cp936"}, simplifiedchinese.GBK, "550 用户不存在"},
		{[]string{"gb18030"}, simplifiedchinese.GB18030, "收件人邮箱已满"},
		{[]string{"hz-gb-2312"}, simplifiedchinese.HZGB2312, "550 用户不存在"},
		{[]string{"big5", "Big5-HKSCS"}, traditionalchinese.Big5, "550 用戶不存在"},
		{[]string{"shift_jis", "Shift-JIS", "x-sjis", "cp932", "windows-31j"}, japanese.ShiftJIS, "550 宛先不明 メールボックスがいっぱいです"},
		{[]string{"euc-jp"}, japanese.EUCJP, "ユーザーが存在しません"},
		{[]string{"iso-2022-jp", "ISO-2022-JP-2", `"iso-2022-jp"`}, japanese.ISO2022JP, "550 <a@example.jp>: 宛先不明"},
		{[]string{"euc-kr", "ks_c_5601-1987", "cp949"}, korean.EUCKR, "사용자를 찾을 수 없습니다"},
		{[]string{"utf-16be"}, unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM), "550 宛先不明"},
		{[]string{"utf-16le"}, unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM), "550 あて先不明"},
		{[]string{"utf-16"}, unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM), "550 あいう"},
		{[]string{"utf-16"}, unicode.UTF16(unicode.LittleEndian, unicode.UseBOM), "550 あいう"},
	}
	for _, tt := range tests {
		raw, err := tt.enc.NewEncoder().Bytes([]byte(tt.text + "\r\nline two\r\n"))
		if err != nil {
			t.Fatalf("encoding %q: %v", tt.text, err)
		}
		for _, label := range tt.labels {
			if got, want := toUTF8(raw, label), tt.text+"\nline two\n"; got != want {
				t.Errorf("toUTF8(%q in %s) = %q, want %q", tt.text, label, got, want)
			}
		}
	}
}

// TestToUTF8Fallback checks the labels no decoder serves and the bytes no
// decoder reads: the ASCII is kept, whatever else is lost.
func TestToUTF8Fallback(t *testing.T) {
	tests := []struct {
		label string
		raw   string
		want  string
	}{
		{"", "550 5.1.1 user unknown", "550 5.1.1 user unknown"},
		{"us-ascii", "550 Benutzer unbekannt: \xc3\xa4", "550 Benutzer unbekannt: ä"}, // 8-bit UTF-8 labelled ASCII
		{"utf-8", "550 user \xff\xfe unknown", "550 user \uFFFD unknown"},             // broken UTF-8
		{"x-unknown-charset", "550 user \xe9 unknown", "550 user \uFFFD unknown"},     // no decoder
		{"ansi_x3.110-1983", "550 user unknown\r\n", "550 user unknown\n"},            // known to IANA, no decoder
		{"unicode-1-1-utf-7", "Delivery to the following recipients failed.", "Delivery to the following recipients failed."},
		{"iso-2022-kr", "550 user unknown", "550 user unknown"},                 // WHATWG "replacement"
		{"shift_jis", "550 user unknown \x82", "550 user unknown \uFFFD"},       // truncated pair
		{"iso-2022-jp", "550 \x1b$B$\"\x1b(B user \x1b$", "550 あ user \uFFFD$"}, // a broken escape
		{"utf-16be", "\x00a\x00b\x00", "ab\uFFFD"},                              // odd length
	}
	for _, tt := range tests {
		got := toUTF8([]byte(tt.raw), tt.label)
		if got != tt.want {
			t.Errorf("toUTF8(%q, %q) = %q, want %q", tt.raw, tt.label, got, tt.want)
		}
	}
}

// TestDecodeHeader checks RFC 2047 encoded-words in the charsets of
// TestToUTF8Charsets, and the values left as they came.
func TestDecodeHeader(t *testing.T) {
	word := func(enc encoding.Encoding, charset, text string) string {
		b, err := enc.NewEncoder().String(text)
		if err != nil {
			t.Fatalf("encoding %q: %v", text, err)
		}
		return mime.BEncoding.Encode(charset, b)
	}
	raw := func(enc encoding.Encoding, text string) string {
		b, err := enc.NewEncoder().String(text)
		if err != nil {
			t.Fatalf("encoding %q: %v", text, err)
		}
		return b
	}
	tests := []struct{ in, want string }{
		{"Undelivered Mail Returned to Sender", "Undelivered Mail Returned to Sender"},
		{"=?ISO-8859-1?Q?Unzustellbar:_Pr=FCfung?=", "Unzustellbar: Prüfung"},
		{word(charmap.Windows1251, "windows-1251", "Недоставленное сообщение"), "Недоставленное сообщение"},
		{word(charmap.KOI8R, "KOI8-R", "Недоставленное сообщение"), "Недоставленное сообщение"},
		{word(simplifiedchinese.GBK, "gb2312", "系统退信"), "系统退信"},
		{word(japanese.ISO2022JP, "ISO-2022-JP", "配信不能") + " (Returned)", "配信不能 (Returned)"},
		{word(japanese.ShiftJIS, "shift_jis", "配信不能"), "配信不能"},
		{word(traditionalchinese.Big5, "big5", "無法投遞"), "無法投遞"},
		{word(korean.EUCKR, "ks_c_5601-1987", "배달 실패"), "배달 실패"},
		{"=?utf-8?q?a=3Db?=", "a=b"}, // no quotes added around what follows "="
		{"=?x-unknown?Q?Undelivered_mail_=E9?=", "Undelivered mail \uFFFD"},
		{"=?utf-8?x?broken?=", "=?utf-8?x?broken?="},
		{raw(japanese.ISO2022JP, "配信不能") + " (Returned mail)", "配信不能 (Returned mail)"}, // unencoded
	}
	for _, tt := range tests {
		if got := decodeHeader(tt.in); got != tt.want {
			t.Errorf("decodeHeader(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// corpusReaderInput returns the quoted-printable and base64 part contents
// and the top-level header blocks of the dev corpus, as readTree finds
// them.
func corpusReaderInput(tb testing.TB) (qp, b64 [][]byte, heads []string) {
	c := New(Options{})
	dir := corpusDir(tb)
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	crlf, _ := filepath.Glob(filepath.Join(dir, "*", "*.eml"))
	files = append(files, crlf...)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		raw = fixLineEnds(raw)
		if end := headerEnd(raw); end > 0 {
			heads = append(heads, string(raw[:end]))
		}
		tree, err := c.readTree(raw)
		if err != nil {
			continue
		}
		for _, p := range tree.leaves {
			switch p.cte {
			case "quoted-printable":
				qp = append(qp, bytes.Clone(p.raw))
			case "base64":
				b64 = append(b64, bytes.Clone(p.raw))
			}
		}
	}
	return qp, b64, heads
}

func stdlibQP(raw []byte) ([]byte, error) {
	return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
}

// trimLines drops the white space at the end of each line, which
// mime/quotedprintable removes as transport padding (RFC 2045 §6.7 (3))
// and decodeQP keeps.
func trimLines(b []byte) string {
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.Join(lines, "\n")
}

// TestMeasureReaders checks the hand-written readers against the standard
// library's on the dev corpus, where the library can read the input: the
// same quoted-printable and base64 text, the same header fields. It logs
// how many header blocks net/textproto rejects, the reason readHeaderBlock
// is kept.
func TestMeasureReaders(t *testing.T) {
	qp, b64, heads := corpusReaderInput(t)
	for _, p := range qp {
		want, err := stdlibQP(p)
		if got := decodeQP(bytes.Clone(p)); err != nil || trimLines(got) != trimLines(want) {
			t.Errorf("decodeQP(%.60q) = %.80q, mime/quotedprintable %.80q (%v)", p, got, want, err)
		}
	}
	for _, p := range b64 {
		want, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(p)))
		if got := decodeBase64(bytes.Clone(p)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("decodeBase64(%.60q) = %.40q, encoding/base64 %.40q (%v)", p, got, want, err)
		}
	}
	rejected, misread := 0, 0
	for _, h := range heads {
		std, err := textproto.NewReader(bufio.NewReader(strings.NewReader(h))).ReadMIMEHeader()
		if err != nil {
			rejected++
			continue
		}
		own, _ := headerBlock(h)
		for k, v := range std {
			if strings.ContainsAny(k, " \t") {
				misread++ // an mbox "From sender date" line taken for a field
				continue
			}
			if strings.Join(own[k], "\n") != strings.Join(v, "\n") {
				t.Errorf("headerBlock: %s = %q, net/textproto %q", k, own[k], v)
			}
		}
	}
	t.Logf("%d quoted-printable and %d base64 parts decode alike; of %d header blocks net/textproto rejects %d "+
		"and reads an mbox From_ line as a field in %d", len(qp), len(b64), len(heads), rejected, misread)
}

// TestDecodeMalformed checks the malformed encodings that bounces carry
// (a returned message cut short, a boundary line inside a base64 body, a
// quoted-printable line over 4 KB): what can be decoded is decoded, where
// encoding/base64 and mime/quotedprintable stop at the first fault.
func TestDecodeMalformed(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"QUJD\nREVG", "ABCDEF"},
		{"QUJD*REVG", "ABCDEF"},
		{"QUJDREV", "ABCDE"},          // cut short
		{"QUJD\n-- \nREVG", "ABCDEF"}, // a stray delimiter line
	} {
		if got := decodeBase64([]byte(tt.in)); string(got) != tt.want {
			t.Errorf("decodeBase64(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"a=ZZb\nc", "a=ZZb\nc"},
		{"a= \t\nb", "ab"},
		{"550 user=\r\n unknown", "550 user unknown"},
		{"a=3db=3D", "a=b="},
		{"caf=E9 =", "caf\xe9 ="},
		{strings.Repeat("x", 5000) + "\n550 user unknown", strings.Repeat("x", 5000) + "\n550 user unknown"},
	} {
		if got := decodeQP([]byte(tt.in)); string(got) != tt.want {
			t.Errorf("decodeQP(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func BenchmarkDecodeQP(b *testing.B) {
	qp, _, _ := corpusReaderInput(b)
	b.Run("own", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			decodeQP(qp[i%len(qp)])
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, _ = stdlibQP(qp[i%len(qp)])
		}
	})
}

func BenchmarkHeaderBlock(b *testing.B) {
	_, _, heads := corpusReaderInput(b)
	b.Run("own", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			headerBlock(heads[i%len(heads)])
		}
	})
	b.Run("textproto", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, _ = textproto.NewReader(bufio.NewReader(strings.NewReader(heads[i%len(heads)]))).ReadMIMEHeader()
		}
	})
}

// FuzzToUTF8 checks that any bytes in any label give valid UTF-8, and that
// a label no decoder serves keeps the ASCII bytes in their order.
func FuzzToUTF8(f *testing.F) {
	labels := []string{"", "utf-8", "us-ascii", "iso-8859-1", "windows-1251", "koi8-r", "gb2312", "gb18030",
		"big5", "shift_jis", "euc-jp", "iso-2022-jp", "euc-kr", "utf-16", "utf-16le", "hz-gb-2312", "x-unknown"}
	f.Add([]byte("550 \x1b$B$\"\x1b(B user"), uint8(11))
	f.Add([]byte("550 user \xe9\x82 unknown\r\n"), uint8(7))
	f.Fuzz(func(t *testing.T, b []byte, l uint8) {
		label := labels[int(l)%len(labels)]
		got := toUTF8(b, label)
		if !utf8.ValidString(got) {
			t.Fatalf("toUTF8(%q, %s) = %q: not UTF-8", b, label, got)
		}
		if label == "x-unknown" {
			var ascii []byte
			for _, c := range b {
				if c < utf8.RuneSelf && c != '\r' {
					ascii = append(ascii, c)
				}
			}
			var kept []byte
			for _, c := range []byte(got) {
				if c < utf8.RuneSelf {
					kept = append(kept, c)
				}
			}
			if !bytes.Equal(bytes.ReplaceAll(kept, []byte("\n"), nil), bytes.ReplaceAll(ascii, []byte("\n"), nil)) {
				t.Fatalf("toUTF8(%q, %s) = %q: ASCII lost", b, label, got)
			}
		}
	})
}
