package classify

import "testing"

// TestForeignPhrasesReachable checks that every phrase of foreignRules is
// the one the matcher reports for its own text: no earlier phrase, English
// or foreign, hides it.
func TestForeignPhrasesReachable(t *testing.T) {
	for _, r := range foreignRules {
		for _, p := range r.phrases {
			strong, _ := match(rules, appendNorm(nil, p))
			if strong == nil || strong.phrase != p || strong.category != r.category {
				t.Errorf("match(%q) = %+v, want the phrase itself, %s", p, strong, r.category)
			}
		}
	}
}

// TestForeignPhrases checks the wordings as MTAs write them, in every case,
// through the same normalization the rules use.
func TestForeignPhrases(t *testing.T) {
	tests := []struct {
		text string
		want Category
	}{
		{"550 Benutzer unbekannt", MailboxUnknown},
		{"550 Empfaenger unbekannt: <hans@example.de>", MailboxUnknown},
		{"552 Das Postfach des Empfängers ist voll", MailboxFull},
		{"550 Absenderadresse unbekannt", SenderRejected},
		{"550 Utilisateur inconnu", MailboxUnknown},
		{"552 BOÎTE AUX LETTRES PLEINE", MailboxFull},
		{"552 Boite du destinataire pleine", MailboxFull},
		{"550 Le domaine de l'expéditeur est inconnu", SenderRejected},
		{"550 Usuario desconocido", MailboxUnknown},
		{"552 Buzón lleno", MailboxFull},
		{"550 Dominio inexistente", DomainUnknown},
		{"550 Usuário desconhecido", MailboxUnknown},
		{"552 Caixa postal cheia", MailboxFull},
		{"550 Utente sconosciuto", MailboxUnknown},
		{"552 La casella è piena", MailboxFull},
		{"550 Пользователь не найден", MailboxUnknown},
		{"550 ПОЛЬЗОВАТЕЛЬ НЕ НАЙДЕН", MailboxUnknown},
		{"552 Почтовый ящик переполнен", MailboxFull},
		{"550 Домен не существует", DomainUnknown},
		{"550 Адрес отправителя не существует", SenderRejected},
		{"550 宛先不明", MailboxUnknown},
		{"550 指定されたドメインが存在しません", DomainUnknown},
		{"552 メールボックスがいっぱいです", MailboxFull},
		{"550 送信者のアドレスが存在しません", SenderRejected},
		{"550 收件人帐号不存在", MailboxUnknown},
		{"550 用戶不存在", MailboxUnknown},
		{"552 收件人邮箱已满", MailboxFull},
		{"550 发件人域名不存在", SenderRejected},
		{"550 收件人域名不存在", DomainUnknown},
		{"550 发送帐号不存在", SenderRejected},
		{"550 Обратный адрес не существует", SenderRejected},
		{"550 Votre compte n'existe pas", SenderRejected},
		{"550 Der Absender existiert nicht", SenderRejected},
	}
	for _, tt := range tests {
		if got, _, _ := matchPhrase(normalize(tt.text), false); got != tt.want {
			t.Errorf("matchPhrase(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}
