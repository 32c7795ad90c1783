package verp_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/bouncer-mail/bouncer/worker/verp"
)

func Example() {
	keys, err := verp.ParseKeys("k2:" + secret2 + ",k1:" + secret1) // as in BOUNCER_VERP_KEYS
	if err != nil {
		panic(err)
	}
	c := verp.Codec{Keys: keys, Domain: "bounces.example.com"}
	sent := verp.Fields{Recipient: "ana@mail.example.net", List: "news", Campaign: "c-2026-12"}
	rp, _ := c.Encode(sent, time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC))
	fmt.Println(rp)

	// The bounce comes back to rp; the DSN names the failed recipient.
	tok, err := c.Verify(rp, verp.Fields{Recipient: "Ana@mail.example.net", List: "news"})
	fmt.Println(tok.KeyID, tok.Issued.Format(time.DateOnly), err)

	// Ana's token, replayed in a forged bounce for Bob.
	_, err = c.Verify(rp, verp.Fields{Recipient: "bob@mail.example.net"})
	fmt.Println(errors.Is(err, verp.ErrWrongRecipient))
	// Output:
	// bounces+aeyatyn3qploe2ypljknhhzaukr72urddv72xjoi42s7zei6@bounces.example.com
	// k2 2026-12-04 <nil>
	// true
}
