package classify

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// foreignRules are the dead-mailbox, full-mailbox and dead-domain wordings
// of MTAs that write their notices in German, French, Spanish, Portuguese,
// Italian, Russian, Japanese and Chinese: localised Exchange, Exim and
// Postfix templates, Japanese carriers, Chinese providers (QQ, Netease,
// Sina, Coremail). They are strong phrases, tried after the English ones
// (see withForeign), in this order:
//
//   - the sender's own address, account or domain named as missing or
//     invalid ("Absenderadresse unbekannt", "发件人域名不存在", "votre
//     compte n'existe pas", "обратный адрес не существует"), so that the
//     words of the rows below, which they contain, never suppress a
//     recipient for a sender-side failure (the foreign counterpart of
//     namesSender);
//   - dead domains before dead mailboxes ("ドメインが存在しません" holds
//     the mailbox row's "が存在しません" shape);
//   - dead mailboxes, then full ones.
//
// Phrases are written as MTAs write them, lower-cased where the matcher
// lower-cases (ASCII only, see appendNorm): the sentence-case and upper-case
// forms of the non-ASCII letters are added by caseVariants. Accented words
// come in their composed form and in the forms MTAs that strip accents
// write (German "ae" for "ä" as well as a bare "a"). Phrases are specific
// on purpose: a bare "不存在" or "存在しません" (does not exist) or
// "n'existe pas" says nothing of what does not exist.
var foreignRules = caseVariants([]phraseRule{
	{SenderRejected, []string{
		// de
		"absender unbekannt", "absender existiert nicht", "absender nicht gefunden", "absenderadresse",
		"absender-adresse", "adresse des absenders", "absenderdomain", "absender-domain",
		"domain des absenders", "rücksendeadresse", "ruecksendeadresse", "ihr konto", "ihre adresse",
		// fr
		"expéditeur inconnu", "expediteur inconnu", "adresse de l'expéditeur", "adresse de l'expediteur",
		"domaine de l'expéditeur", "domaine de l'expediteur", "expéditeur invalide", "expediteur invalide",
		"adresse de retour", "votre adresse", "votre compte", "votre domaine",
		// es
		"remitente desconocido", "dirección del remitente", "direccion del remitente",
		"dominio del remitente", "remitente no existe", "remitente inválido", "remitente invalido",
		"dirección de retorno", "direccion de retorno",
		// pt
		"remetente desconhecido", "endereço do remetente", "endereco do remetente",
		"domínio do remetente", "dominio do remetente", "remetente inválido", "remetente invalido",
		"remetente não existe", "remetente nao existe", "endereço de retorno", "endereco de retorno",
		// it
		"mittente sconosciuto", "indirizzo del mittente", "dominio del mittente",
		"mittente inesistente", "mittente non valido", "indirizzo di ritorno",
		// ru
		"отправитель не найден", "отправитель не существует", "неизвестный отправитель",
		"адрес отправителя", "домен отправителя", "ящик отправителя", "обратный адрес", "обратного адреса",
		"ваш адрес", "вашего адреса", "ваш домен",
		// ja
		"送信者のアドレス", "送信者アドレス", "送信元アドレス", "差出人のアドレス", "差出人アドレス",
		"送信者のドメイン", "送信元ドメイン", "差出人のドメイン", "送信者が存在しません", "送信者は存在しません",
		"送信アカウント",
		// zh: the sender ("发件人"), the sending account ("发送帐号"), "your" ("您的")
		"发件人不存在", "发件人地址", "发件人帐号", "发件人账号", "发件人帐户", "发件人账户",
		"发件人邮箱", "发件人域名", "发信人地址", "发信人域名", "寄件人地址", "寄件人網域", "寄件者地址",
		"發件人地址", "發件人帳號", "發件人域名", "发送帐号", "发送账号", "发信帐号", "发信账号",
		"您的帐号", "您的账号", "您的邮箱地址",
	}},
	{DomainUnknown, []string{
		// de
		"domain existiert nicht", "domäne existiert nicht", "domaene existiert nicht",
		"domain unbekannt", "unbekannte domain", "unbekannte domäne", "unbekannte domaene",
		"domain nicht gefunden", "host unbekannt", "unbekannter host",
		// fr
		"domaine inconnu", "domaine inexistant", "domaine introuvable", "domaine n'existe pas",
		"domaine n’existe pas", "hôte inconnu", "hote inconnu",
		// es, pt, it
		"dominio desconocido", "dominio inexistente", "dominio no existe", "dominio no encontrado",
		"domínio desconhecido", "dominio desconhecido", "domínio inexistente",
		"domínio não existe", "dominio nao existe", "domínio não encontrado", "dominio nao encontrado",
		"dominio sconosciuto", "dominio non esistente", "dominio non esiste",
		// ru
		"домен не существует", "домена не существует", "домен не найден", "несуществующий домен",
		"неизвестный домен",
		// ja
		"ドメインが存在しません", "ドメインは存在しません", "ドメイン名が存在しません", "存在しないドメイン",
		"ドメインが見つかりません", "ドメイン不明", "ホスト不明",
		// zh
		"域名不存在", "網域不存在", "无此域名", "找不到域名", "域名無效", "域名无效",
	}},
	{MailboxUnknown, []string{
		// de
		"benutzer unbekannt", "unbekannter benutzer", "benutzer existiert nicht", "benutzer nicht gefunden",
		"kein solcher benutzer", "empfänger unbekannt", "empfaenger unbekannt", "empfanger unbekannt",
		"unbekannter empfänger", "unbekannter empfaenger", "empfänger existiert nicht",
		"empfaenger existiert nicht", "empfänger nicht gefunden", "empfaenger nicht gefunden",
		"adresse existiert nicht", "unbekannte adresse", "postfach existiert nicht",
		"postfach nicht vorhanden", "postfach unbekannt", "postfach nicht gefunden", "mailbox existiert nicht",
		"konto existiert nicht",
		// fr
		"utilisateur inconnu", "utilisateur inexistant", "utilisateur introuvable",
		"utilisateur n'existe pas", "utilisateur n’existe pas", "destinataire inconnu",
		"destinataire inexistant", "destinataire introuvable", "destinataire n'existe pas",
		"destinataire n’existe pas", "adresse inconnue", "adresse inexistante", "adresse introuvable",
		"adresse n'existe pas", "adresse n’existe pas", "compte inexistant", "compte n'existe pas",
		"compte n’existe pas", "boîte aux lettres inexistante", "boite aux lettres inexistante",
		"boîte aux lettres n'existe pas", "boite aux lettres n'existe pas", "boîte aux lettres introuvable",
		"boite aux lettres introuvable",
		// es
		"usuario desconocido", "usuario inexistente", "usuario no existe", "usuario no encontrado",
		"no existe el usuario", "destinatario desconocido", "destinatario inexistente",
		"destinatario no existe", "dirección no existe", "direccion no existe", "dirección inexistente",
		"direccion inexistente", "cuenta no existe", "cuenta inexistente", "no existe la cuenta",
		"buzón no existe", "buzon no existe", "buzón inexistente", "buzon inexistente",
		"no existe el buzón", "no existe el buzon", "casilla inexistente", "casilla no existe",
		// pt
		"usuário desconhecido", "usuario desconhecido", "utilizador desconhecido",
		"usuário inexistente", "utilizador inexistente", "usuário não existe",
		"usuario nao existe", "usuario não existe", "utilizador não existe", "utilizador nao existe",
		"usuário não encontrado", "usuario nao encontrado", "destinatário desconhecido",
		"destinatario desconhecido", "destinatário inexistente", "destinatário não existe",
		"destinatario nao existe", "endereço não existe", "endereco nao existe", "endereço inexistente",
		"endereco inexistente", "conta não existe", "conta nao existe", "conta inexistente",
		"caixa postal inexistente", "caixa postal não existe", "caixa postal nao existe",
		// it
		"utente sconosciuto", "utente inesistente", "utente non esistente", "utente non esiste",
		"utente non trovato", "destinatario sconosciuto", "destinatario non esistente",
		"indirizzo inesistente", "indirizzo non esistente", "indirizzo sconosciuto",
		"casella inesistente", "casella di posta inesistente", "casella non esistente", "casella non esiste",
		// ru
		"пользователь не найден", "пользователь не существует", "пользователя не существует",
		"нет такого пользователя", "такого пользователя нет", "несуществующий пользователь",
		"неизвестный пользователь", "получатель не найден", "получатель не существует",
		"адресат не найден", "адресат не существует", "адрес не существует", "несуществующий адрес",
		"почтовый ящик не существует", "почтовый ящик не найден", "ящик не существует",
		"нет такого почтового ящика",
		// ja
		"宛先不明", "あて先不明", "宛先が見つかりません", "あて先が見つかりません",
		"ユーザが存在しません", "ユーザーが存在しません", "ユーザは存在しません", "ユーザーは存在しません",
		"ユーザが見つかりません", "ユーザーが見つかりません", "存在しないユーザ", "不明なユーザ",
		"アドレスが存在しません", "アドレスは存在しません", "アドレスが見つかりません",
		"存在しないメールアドレス", "存在しないアドレス", "アカウントが存在しません", "アカウントは存在しません",
		"受信者が存在しません", "受信者が見つかりません",
		// zh
		"用户不存在", "用戶不存在", "无此用户", "無此用戶", "没有这个用户",
		"收件人不存在", "收件人地址不存在", "收件人帐号不存在", "收件人账号不存在", "收件人帐户不存在",
		"收件人账户不存在", "帐号不存在", "账号不存在", "帐户不存在", "账户不存在", "帳號不存在", "帳戶不存在",
		"邮箱不存在", "郵箱不存在", "信箱不存在", "邮件地址不存在", "邮箱地址不存在", "郵件地址不存在",
		"收件者不存在",
	}},
	{MailboxFull, []string{
		// de
		"postfach voll", "postfach ist voll", "postfach des empfängers ist voll",
		"postfach des empfaengers ist voll", "postfach überfüllt", "postfach ueberfuellt",
		"mailbox voll", "mailbox ist voll", "speicherkontingent überschritten",
		"speicherkontingent ueberschritten", "postfachgröße überschritten", "postfachgroesse ueberschritten",
		// fr
		"boîte pleine", "boite pleine", "boîte aux lettres pleine", "boite aux lettres pleine",
		"boîte aux lettres est pleine", "boite aux lettres est pleine", "boîte du destinataire pleine",
		"boite du destinataire pleine", "boîte de réception pleine", "boite de reception pleine",
		"boîte de réception est pleine", "boite de reception est pleine", "destinataire pleine",
		"destinataire est pleine",
		// es
		"buzón lleno", "buzon lleno", "buzón está lleno", "buzon esta lleno", "buzón de correo lleno",
		"buzon de correo lleno", "buzón del destinatario está lleno", "buzon del destinatario esta lleno",
		"casilla llena", "casilla de correo llena", "casilla está llena", "casilla esta llena",
		"cuota del buzón", "cuota del buzon",
		// pt
		"caixa postal cheia", "caixa de correio cheia", "caixa cheia", "caixa postal lotada",
		"caixa de entrada cheia", "caixa postal está cheia", "caixa postal esta cheia",
		"cota da caixa postal", "quota da caixa de correio",
		// it
		"casella piena", "casella di posta piena", "casella postale piena", "casella è piena",
		"casella e' piena", "quota della casella", "destinatario è piena", "destinatario e' piena",
		// ru
		"ящик переполнен", "ящик получателя переполнен", "переполнен почтовый ящик",
		"превышен размер почтового ящика", "превышена квота почтового ящика",
		"недостаточно места в почтовом ящике",
		// ja
		"メールボックスがいっぱい", "メールボックスが一杯", "メールボックスが満杯", "メールボックスの容量",
		"メールボックス容量", "容量オーバー", "容量超過", "容量がいっぱい",
		// zh
		"邮箱已满", "郵箱已滿", "信箱已满", "信箱已滿", "邮箱满", "邮箱空间已满", "邮箱空间不足",
		"邮箱容量已满", "邮箱容量不足", "邮箱容量超限", "超出邮箱容量", "超过邮箱容量",
		"信箱空間已滿", "信箱容量已滿", "郵箱空間已滿", "郵箱容量已滿",
	}},
})

// withForeign is the strong table the matcher is built from: the English
// phrases first, then foreignRules. A copy, so that neither table is
// changed.
func withForeign(english []phraseRule) []phraseRule {
	return slices.Concat(english, foreignRules)
}

// caseVariants adds to each phrase the forms that survive the matcher's
// ASCII-only lower-casing of a sentence-case or upper-case text
// ("Пользователь не найден", "BOÎTE PLEINE" read as "boÎte pleine"), and
// drops repeats (Spanish and Italian share words), so that every phrase of
// the table can be the first to match (TestForeignPhrasesReachable).
func caseVariants(table []phraseRule) []phraseRule {
	seen := map[string]bool{}
	out := make([]phraseRule, len(table))
	for i, r := range table {
		out[i].category = r.category
		for _, p := range r.phrases {
			for _, v := range []string{p, asciiLower(upperFirst(p)), asciiLower(strings.ToUpper(p))} {
				if !seen[v] {
					seen[v] = true
					out[i].phrases = append(out[i].phrases, v)
				}
			}
		}
	}
	return out
}

// upperFirst returns s with its first letter upper-cased.
func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// asciiLower lower-cases the ASCII letters of s only, as the matcher does.
func asciiLower(s string) string {
	return string(appendNorm(nil, s))
}
