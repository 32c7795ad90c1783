package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bouncer-mail/bouncer/worker/verp"
)

// runVERP is `bouncer verp encode|decode`: build the signed return path of
// one message, or read one and say whether it is ours (see worker/verp).
func runVERP(_ context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: verp needs encode or decode (see bouncer verp -h)", errUsage)
	}
	switch args[0] {
	case "encode":
		return runVERPEncode(e, args[1:], time.Now())
	case "decode":
		return runVERPDecode(e, args[1:])
	case "-h", "--help", "help":
		verpUsage(e.stdout)
		return nil
	}
	return fmt.Errorf("%w: unknown verp action %q (want encode or decode)", errUsage, args[0])
}

func verpUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: bouncer verp encode --recipient A --list L --campaign C [--domain D] [--local bounces] [--sep +]")
	fmt.Fprintln(w, "       bouncer verp decode ADDRESS [--recipient A] [--list L] [--campaign C] [--domain D] [--local bounces] [--sep +]")
	fmt.Fprintln(w, "Keys come from BOUNCER_VERP_KEYS (id:base64secret,..., the first signs) or BOUNCER_VERP_KEYS_FILE.")
	fmt.Fprintln(w, "decode exits 0 when the address verifies, 1 when it does not, 2 on a usage error.")
}

// verpFlags are the flags both actions share: the return path's form, with
// the environment as defaults.
type verpFlags struct {
	fs                        *flag.FlagSet
	recipient, list, campaign *string
	domain, local, sep        *string
}

func newVERPFlags(e *env, action string) verpFlags {
	fs := flag.NewFlagSet("verp "+action, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { verpUsage(e.stderr); fs.PrintDefaults() }
	or := func(name, def string) string {
		if v := e.getenv(name); v != "" {
			return v
		}
		return def
	}
	return verpFlags{
		fs:        fs,
		recipient: fs.String("recipient", "", "the address the message is sent to"),
		list:      fs.String("list", "", "the list id"),
		campaign:  fs.String("campaign", "", "the campaign or send id"),
		domain:    fs.String("domain", e.getenv(verp.EnvDomain), "the return path's domain ($"+verp.EnvDomain+")"),
		local:     fs.String("local", or(verp.EnvLocal, verp.DefaultLocal), "the local part before the separator ($"+verp.EnvLocal+")"),
		sep:       fs.String("sep", or(verp.EnvSep, verp.DefaultSep), "the separator before the token ($"+verp.EnvSep+")"),
	}
}

// codec loads the keys and builds the codec; configuration errors are
// usage errors (exit 2), an unreadable key file a failure (exit 1).
func (v verpFlags) codec(e *env) (verp.Codec, error) {
	c := verp.Codec{Local: *v.local, Sep: *v.sep, Domain: *v.domain}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	ks, err := verp.LoadKeys(e.getenv)
	if errors.Is(err, verp.ErrNoKeys) || errors.Is(err, verp.ErrConfig) {
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	c.Keys = ks
	return c, err
}

// parseInterspersed parses flags before and after the positional
// arguments (`decode ADDRESS --recipient A`), which flag.Parse alone stops
// at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

func runVERPEncode(e *env, args []string, now time.Time) error {
	v := newVERPFlags(e, "encode")
	pos, err := parseInterspersed(v.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: verp encode takes no arguments, got %q", errUsage, pos[0])
	}
	for _, f := range []struct{ name, value string }{{"recipient", *v.recipient}, {"list", *v.list}, {"campaign", *v.campaign}} {
		if f.value == "" {
			return fmt.Errorf("%w: verp encode needs --%s", errUsage, f.name)
		}
	}
	c, err := v.codec(e)
	if err != nil {
		return err
	}
	addr, err := c.Encode(verp.Fields{Recipient: *v.recipient, List: *v.list, Campaign: *v.campaign}, now)
	if err != nil {
		// Encode does no I/O: whatever it refuses is the input.
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	_, err = fmt.Fprintln(e.stdout, addr)
	return err
}

func runVERPDecode(e *env, args []string) error {
	v := newVERPFlags(e, "decode")
	pos, err := parseInterspersed(v.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: verp decode takes one ADDRESS, got %d arguments", errUsage, len(pos))
	}
	addr := pos[0]
	if local, domain, ok := strings.Cut(strings.Trim(addr, "<> "), "@"); !ok || local == "" || domain == "" {
		return fmt.Errorf("%w: %q is not an email address: want LOCAL+TOKEN@DOMAIN", errUsage, addr)
	}
	c, err := v.codec(e)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "address:   %s\n", addr)
	tok, err := c.Decode(addr)
	if err != nil {
		fmt.Fprintf(e.stdout, "verifies:  no\n")
		return err
	}
	key := "the signing key"
	if !tok.Current {
		key = "an older key, still accepted"
	}
	fmt.Fprintf(e.stdout, "key:       %s (%s)\n", tok.KeyID, key)
	fmt.Fprintf(e.stdout, "issued:    %s\n", tok.Issued.Format(time.DateOnly))
	printMatch(e.stdout, "recipient", *v.recipient, tok.MatchRecipient)
	printMatch(e.stdout, "list", *v.list, tok.MatchList)
	printMatch(e.stdout, "campaign", *v.campaign, tok.MatchCampaign)
	if err := tok.Check(verp.Fields{Recipient: *v.recipient, List: *v.list, Campaign: *v.campaign}); err != nil {
		fmt.Fprintf(e.stdout, "verifies:  no\n")
		return err
	}
	fmt.Fprintf(e.stdout, "verifies:  yes\n")
	return nil
}

// printMatch says whether the token commits to value: the token holds only
// keyed hashes of the recipient, list and campaign, so it can confirm a
// value it is given but not name one.
func printMatch(w io.Writer, what, value string, match func(string) bool) {
	switch {
	case value == "":
		fmt.Fprintf(w, "%-10s not checked (give --%s)\n", what+":", what)
	case match(value):
		fmt.Fprintf(w, "%-10s %s: matches\n", what+":", value)
	default:
		fmt.Fprintf(w, "%-10s %s: does NOT match (the token was issued for another %s)\n", what+":", value, what)
	}
}
