//go:build ignore

// i18n-gen writes the foreign-language bounce fixtures of classify's
// golden tests (testdata/<category>-<lang>-<charset>.eml): notices written
// here in UTF-8, encoded into the charset their MTAs use with x/text, and
// sent in the transfer encoding named for each. Run from classify/:
//
//	go run testdata/i18n-gen.go && go test . -run Golden -update
package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log"
	"mime"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

type fixture struct {
	name    string // <category>-<lang>-<charset>
	charset string // as the MTA labels it
	enc     encoding.Encoding
	cte     string // 8bit, quoted-printable, base64 or 7bit
	from    string
	subject string
	date    string
	rcpt    string
	notice  string // {rcpt} stands for the recipient
	attach  bool   // the original as a message/rfc822 part, else quoted in the text
}

var fixtures = []fixture{
	{
		name: "mailbox_unknown-de-iso-8859-1", charset: "ISO-8859-1", enc: charmap.ISO8859_1, cte: "quoted-printable",
		from: "Mail Delivery System <MAILER-DAEMON@mx01.hosting.example.de>", subject: "Unzustellbar: Ihre Nachricht an einen Empfänger",
		date: "Tue, 12 Mar 2024 09:14:07 +0100", rcpt: "hans.mueller@example.de",
		notice: `Diese Nachricht wurde automatisch vom Mailsystem erzeugt.

Ihre Nachricht konnte an einen oder mehrere Empfänger nicht zugestellt
werden. Folgende Adresse(n) sind fehlgeschlagen:

  {rcpt}
    SMTP-Fehler vom entfernten Mailserver nach RCPT TO:<{rcpt}>:
    Host mx.example.de [192.0.2.25]: 550 Empfänger unbekannt
`,
	},
	{
		name: "mailbox_full-fr-windows-1252", charset: "windows-1252", enc: charmap.Windows1252, cte: "8bit",
		from: "MAILER-DAEMON@smtp.fournisseur.example.fr (Système de messagerie)", subject: "Non remis : Votre message n'a pas pu être distribué",
		date: "Wed, 13 Mar 2024 17:02:44 +0100", rcpt: "claire.dubois@example.fr",
		notice: `Ceci est un message automatique du serveur de messagerie.

Votre message n’a pas pu être remis au destinataire suivant :

<{rcpt}> : le serveur distant a répondu à RCPT TO:<{rcpt}> :
    552 Boîte aux lettres du destinataire pleine, réessayez ultérieurement
`,
	},
	{
		name: "mailbox_unknown-es-windows-1252", charset: "windows-1252", enc: charmap.Windows1252, cte: "base64",
		from: "Sistema de correo <MAILER-DAEMON@correo.example.es>", subject: "No se puede entregar: Notificación de estado de entrega",
		date: "Thu, 14 Mar 2024 11:45:10 +0100", rcpt: "maria.garcia@example.es", attach: true,
		notice: `Este es un mensaje generado automáticamente por el sistema de correo.

No se pudo entregar su mensaje a uno o más destinatarios.
Las siguientes direcciones han fallado:

  {rcpt}
    Error SMTP del servidor remoto tras RCPT TO:<{rcpt}>:
    550 Usuario desconocido
`,
	},
	{
		name: "domain_unknown-pt-iso-8859-1", charset: "iso-8859-1", enc: charmap.ISO8859_1, cte: "quoted-printable",
		from: "MAILER-DAEMON@mail.provedor.example.com.br (Sistema de Entrega de Mensagens)", subject: "Não foi possível entregar a mensagem",
		date: "Fri, 15 Mar 2024 08:30:00 -0300", rcpt: "joao.silva@dominio-antigo.example.com.br",
		notice: `Esta é uma mensagem automática do sistema de correio.

Não foi possível entregar sua mensagem aos seguintes destinatários:

<{rcpt}>:
    o servidor relay.provedor.example.com.br respondeu ao comando RCPT TO:
    550 Domínio não existe (dominio-antigo.example.com.br)
`,
	},
	{
		name: "mailbox_full-it-iso-8859-15", charset: "ISO-8859-15", enc: charmap.ISO8859_15, cte: "quoted-printable",
		from: "Mail Delivery Subsystem <MAILER-DAEMON@smtp.example.it>", subject: "Messaggio non recapitabile",
		date: "Mon, 18 Mar 2024 15:21:33 +0100", rcpt: "giulia.rossi@example.it", attach: true,
		notice: `Questo è un messaggio generato automaticamente dal sistema di posta.

Non è stato possibile recapitare il messaggio ai seguenti destinatari:

  {rcpt}
    risposta del server remoto a RCPT TO:<{rcpt}>:
    452 La casella del destinatario è piena (quota superata)
`,
	},
	{
		name: "mailbox_unknown-ru-koi8-r", charset: "koi8-r", enc: charmap.KOI8R, cte: "8bit",
		from: "Mail Delivery System <MAILER-DAEMON@mx.example.ru>", subject: "Недоставленное сообщение",
		date: "Tue, 19 Mar 2024 12:00:01 +0300", rcpt: "ivan.petrov@example.ru",
		notice: `Это сообщение создано автоматически почтовой системой.

Ваше письмо не может быть доставлено одному или нескольким адресатам.
Ошибка при доставке по следующим адресам:

  {rcpt}
    Ошибка SMTP от удалённого сервера после RCPT TO:<{rcpt}>:
    550 Пользователь не найден
`,
	},
	{
		name: "mailbox_full-ru-windows-1251", charset: "windows-1251", enc: charmap.Windows1251, cte: "base64",
		from: "Mail Delivery System <MAILER-DAEMON@relay.example.ru>", subject: "Ошибка доставки письма",
		date: "Wed, 20 Mar 2024 18:40:12 +0300", rcpt: "olga.smirnova@example.ru", attach: true,
		notice: `Это сообщение создано автоматически почтовой системой.

Письмо не доставлено следующему адресату:

  {rcpt}
    Ответ сервера на RCPT TO:<{rcpt}>:
    552 Почтовый ящик переполнен
`,
	},
	{
		name: "mailbox_unknown-ja-iso-2022-jp", charset: "ISO-2022-JP", enc: japanese.ISO2022JP, cte: "7bit",
		from: "Mail Administrator <postmaster@mta.example.ne.jp>", subject: "配信不能のお知らせ (Returned mail)",
		date: "Thu, 21 Mar 2024 10:05:48 +0900", rcpt: "hanako.yamada@example.ne.jp",
		notice: `このメールはシステムより自動的に送信されています。

以下のあて先へのメールは配信できませんでした。

あて先: <{rcpt}>
理由: RCPT TO:<{rcpt}> に対する応答
    550 宛先不明 (このメールアドレスは存在しません)
`,
	},
	{
		name: "mailbox_full-ja-shift_jis", charset: "Shift_JIS", enc: japanese.ShiftJIS, cte: "base64",
		from: "MAILER-DAEMON@mail.example.co.jp", subject: "メール配信エラー (Undelivered Mail)",
		date: "Fri, 22 Mar 2024 21:13:09 +0900", rcpt: "taro.suzuki@example.co.jp", attach: true,
		notice: `送信されたメールは以下のあて先に配信できませんでした。

<{rcpt}>:
    RCPT TO:<{rcpt}> への応答: 552 メールボックスがいっぱいです
`,
	},
	{
		name: "mailbox_unknown-zh-gb2312", charset: "gb2312", enc: simplifiedchinese.GBK, cte: "base64",
		from: "=?gb2312?B?z7XNs83L0MU=?= <postmaster@mail.example.cn>", subject: "系统退信",
		date: "Mon, 25 Mar 2024 09:31:27 +0800", rcpt: "zhangwei@example.cn", attach: true,
		notice: `很抱歉您的邮件没有发送成功。

收件人: {rcpt}
退信原因: 收件人帐号不存在
    RCPT TO:<{rcpt}> 550 收件人帐号不存在
`,
	},
	{
		name: "mailbox_full-zh-big5", charset: "big5", enc: traditionalchinese.Big5, cte: "quoted-printable",
		from: "Mail Delivery System <MAILER-DAEMON@mail.example.com.tw>", subject: "無法投遞: 郵件退回通知",
		date: "Tue, 26 Mar 2024 14:47:55 +0800", rcpt: "chen.meiling@example.com.tw",
		notice: `此為系統自動發送的郵件。

您的郵件無法投遞到以下收件人:

  {rcpt}
    RCPT TO:<{rcpt}> 遠端伺服器回應: 552 收件人信箱已滿
`,
	},
}

const list = "bounces+m1042@lists.example.com"

func main() {
	for _, f := range fixtures {
		raw, err := f.message()
		if err != nil {
			log.Fatalf("%s: %v", f.name, err)
		}
		if err := os.WriteFile(filepath.Join("testdata", f.name+".eml"), raw, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// original is the returned message's header, in UTF-8 with its Subject
// encoded as the sender wrote it.
func (f fixture) original() string {
	return "Return-Path: <" + list + ">\n" +
		"Received: from out.lists.example.com (out.lists.example.com [198.51.100.7])\n\tby " + domainOf(f.rcpt) + " with ESMTP; " + f.date + "\n" +
		"From: Newsletter <news@lists.example.com>\n" +
		"To: <" + f.rcpt + ">\n" +
		"Subject: =?utf-8?q?Newsletter_M=C3=A4rz?=\n" +
		"Date: " + f.date + "\n" +
		"Message-ID: <m1042." + strings.ReplaceAll(f.rcpt, "@", "=") + "@lists.example.com>\n" +
		"List-Id: Newsletter <news.lists.example.com>\n" +
		"X-Campaign-Id: m1042\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=utf-8\n\n" +
		"Hello!\n"
}

func (f fixture) message() ([]byte, error) {
	notice := strings.ReplaceAll(f.notice, "{rcpt}", f.rcpt)
	if !f.attach {
		notice += "\n------ This is a copy of the message, including all the headers. ------\n\n" + f.original()
	}
	body, err := f.enc.NewEncoder().String(notice)
	if err != nil {
		return nil, err
	}
	subject, err := f.enc.NewEncoder().String(f.subject)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <>\nFrom: %s\nTo: %s\nSubject: %s\nDate: %s\nMessage-ID: <%s@bounce.example>\nMIME-Version: 1.0\n",
		f.from, list, mime.BEncoding.Encode(f.charset, subject), f.date, f.name)
	textHeader := fmt.Sprintf("Content-Type: text/plain; charset=%s\nContent-Transfer-Encoding: %s\n\n", f.charset, f.cte)
	if !f.attach {
		b.WriteString(textHeader)
		b.WriteString(transferEncode(body, f.cte))
		return b.Bytes(), nil
	}
	const boundary = "=_bounce_" + "4f1c"
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\n\nThis is a multi-part message in MIME format.\n\n", boundary)
	fmt.Fprintf(&b, "--%s\n%s%s\n", boundary, textHeader, transferEncode(body, f.cte))
	fmt.Fprintf(&b, "--%s\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n%s\n--%s--\n", boundary, f.original(), boundary)
	return b.Bytes(), nil
}

func transferEncode(s, cte string) string {
	switch cte {
	case "base64":
		e := base64.StdEncoding.EncodeToString([]byte(s))
		var b strings.Builder
		for len(e) > 76 {
			b.WriteString(e[:76] + "\n")
			e = e[76:]
		}
		b.WriteString(e + "\n")
		return b.String()
	case "quoted-printable":
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return strings.ReplaceAll(b.String(), "\r\n", "\n")
	}
	return s
}

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }
