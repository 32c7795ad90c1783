package worker

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// TLSMode says how the IMAP connection is protected.
type TLSMode string

// The TLS modes. Plaintext (TLSNone) is only allowed to a loopback host.
const (
	TLSImplicit TLSMode = "implicit" // imaps://, port 993 (RFC 8314 §3.2)
	TLSStartTLS TLSMode = "starttls" // imap://, STARTTLS required (RFC 3501 §6.2.1)
	TLSNone     TLSMode = "none"     // imap://...?tls=none, loopback only
)

// Auth mechanisms.
const (
	AuthLogin       = "login"       // LOGIN command, or AUTHENTICATE PLAIN when LOGINDISABLED
	AuthPlain       = "plain"       // AUTHENTICATE PLAIN (RFC 4616)
	AuthXOAUTH2     = "xoauth2"     // Google's and Microsoft's XOAUTH2
	AuthOAuthBearer = "oauthbearer" // RFC 7628
)

// Mailbox is one bounce mailbox, fully resolved: where it is, how to log in
// and where its messages go.
type Mailbox struct {
	// Key names the mailbox in Postgres (checkpoint, lease, source
	// messages): Name when the operator gave one, else its identity
	// "user@host:port/Folder" with the host canonical (see canonicalHost),
	// so that two spellings of one server give one key.
	Key string
	// Name is the operator's name for the mailbox (name= in the URL,
	// "name" in the config file), used as Key as it is.
	Name string
	// LegacyKey is the key versions before the canonical identity used:
	// "user@host:port/Folder" with the host as written, lower-cased. The
	// worker reads a checkpoint saved under it when Key has none, and
	// leases it too, so an older worker given the same URL stands by.
	LegacyKey string

	Host string
	Addr string // host:port
	TLS  TLSMode
	// CAFile, when set, is a PEM file of the CAs that may sign the server's
	// certificate instead of the system pool.
	CAFile string

	User     string
	Password string `json:"-"`
	// Auth is one of AuthLogin, AuthPlain, AuthXOAUTH2, AuthOAuthBearer.
	Auth string
	// TokenFile or TokenCommand give the OAuth access token, read afresh
	// at every login (tokens expire).
	TokenFile    string
	TokenCommand string

	// Folder is the bounce mailbox itself (default INBOX).
	Folder string
	// Processed receives classified messages once their results are
	// committed; Quarantine the messages that could not be classified.
	Processed  string
	Quarantine string
	// NotBounce, when set, receives mail that is not a bounce (a person's
	// reply); when empty such mail is left unread where it is.
	NotBounce string
}

// String returns the mailbox without secrets, for logs.
func (m *Mailbox) String() string { return m.Key }

// ParseMailboxURL parses an IMAP URL:
//
//	imaps://user[:password]@host[:993]/INBOX         implicit TLS
//	imap://user[:password]@host[:143]/INBOX          STARTTLS required
//	imap://user@127.0.0.1:1143/INBOX?tls=none        plaintext, loopback only
//
// Query options: processed=, quarantine=, notbounce= (folders), auth=
// (login, plain, xoauth2, oauthbearer), token_file=, token_command=, ca_file=,
// name= (the mailbox's name in Postgres instead of its identity).
// The URL form follows RFC 5092 loosely: only the server, user and mailbox
// parts are used.
func ParseMailboxURL(raw string) (Mailbox, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return Mailbox{}, fmt.Errorf("worker: imap url: %w", redactURLError(err))
	}
	var m Mailbox
	port := ""
	switch strings.ToLower(u.Scheme) {
	case "imaps":
		m.TLS, port = TLSImplicit, "993"
	case "imap":
		m.TLS, port = TLSStartTLS, "143"
	default:
		return Mailbox{}, fmt.Errorf("worker: imap url %q: scheme must be imap or imaps (want imap[s]://USER@HOST[:PORT]/MAILBOX)", redact(u))
	}
	m.Host = strings.ToLower(u.Hostname())
	if m.Host == "" {
		return Mailbox{}, fmt.Errorf("worker: imap url %s: no host", redact(u))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return Mailbox{}, fmt.Errorf("worker: imap url %s: bad port %q", redact(u), p)
		}
		port = p
	}
	m.Addr = net.JoinHostPort(m.Host, port)
	if u.User != nil {
		m.User = u.User.Username()
		m.Password, _ = u.User.Password()
	}
	m.Folder = strings.TrimPrefix(u.Path, "/")
	if m.Folder == "" {
		m.Folder = "INBOX"
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "tls", "processed", "quarantine", "notbounce", "auth", "token_file", "token_command", "ca_file", "name":
		default:
			return Mailbox{}, fmt.Errorf("worker: imap url %s: unknown option %q", redact(u), k)
		}
	}
	switch t := q.Get("tls"); t {
	case "":
	case "none":
		if m.TLS == TLSImplicit {
			return Mailbox{}, fmt.Errorf("worker: imap url %s: tls=none with imaps", redact(u))
		}
		m.TLS = TLSNone
	case "starttls", "implicit":
		m.TLS = TLSMode(t)
	default:
		return Mailbox{}, fmt.Errorf("worker: imap url %s: tls=%q, want none, starttls or implicit", redact(u), t)
	}
	m.Processed = q.Get("processed")
	m.Quarantine = q.Get("quarantine")
	m.NotBounce = q.Get("notbounce")
	m.Auth = strings.ToLower(q.Get("auth"))
	m.TokenFile = q.Get("token_file")
	m.TokenCommand = q.Get("token_command")
	m.CAFile = q.Get("ca_file")
	m.Name = strings.TrimSpace(q.Get("name"))
	return m, nil
}

// finish fills defaults, derives the key and checks the mailbox.
func (m *Mailbox) finish() error {
	if m.Folder == "" {
		m.Folder = "INBOX"
	}
	if m.Processed == "" {
		m.Processed = "Processed"
	}
	if m.Quarantine == "" {
		m.Quarantine = "Quarantine"
	}
	if m.Auth == "" {
		m.Auth = AuthLogin
		if m.TokenFile != "" || m.TokenCommand != "" {
			m.Auth = AuthXOAUTH2
		}
	}
	m.LegacyKey = fmt.Sprintf("%s@%s/%s", m.User, m.Addr, m.Folder)
	m.Key = m.identity(canonicalHost(m.Host))
	if m.Name != "" {
		m.Key = m.Name
	}
	if m.User == "" {
		return fmt.Errorf("worker: mailbox %s: no user", m.Key)
	}
	if m.TLS == TLSNone && !isLoopback(m.Host) {
		return fmt.Errorf("worker: mailbox %s: tls=none is only allowed to a loopback host", m.Key)
	}
	for _, f := range []string{m.Processed, m.Quarantine, m.NotBounce} {
		if f != "" && strings.EqualFold(f, m.Folder) {
			return fmt.Errorf("worker: mailbox %s: folder %q is the bounce mailbox itself", m.Key, f)
		}
	}
	switch m.Auth {
	case AuthLogin, AuthPlain:
		if m.Password == "" {
			return fmt.Errorf("worker: mailbox %s: no password (URL, BOUNCER_IMAP_PASSWORD or BOUNCER_IMAP_PASSWORD_FILE)", m.Key)
		}
	case AuthXOAUTH2, AuthOAuthBearer:
		if (m.TokenFile == "") == (m.TokenCommand == "") {
			return fmt.Errorf("worker: mailbox %s: auth %s needs exactly one of token_file or token_command", m.Key, m.Auth)
		}
	default:
		return fmt.Errorf("worker: mailbox %s: auth %q, want login, plain, xoauth2 or oauthbearer", m.Key, m.Auth)
	}
	return nil
}

// identity is the mailbox's key with host as its server's name.
func (m *Mailbox) identity(host string) string {
	_, port, _ := net.SplitHostPort(m.Addr)
	return fmt.Sprintf("%s@%s/%s", m.User, net.JoinHostPort(host, port), m.Folder)
}

// canonicalHost is host as the mailbox's identity names it: every loopback
// spelling (localhost, *.localhost of RFC 6761 §6.3, 127.0.0.0/8, ::1) is
// "localhost", since they all reach this machine's server; an IP address
// is in its canonical form (::ffff:192.0.2.1 is 192.0.2.1, 2001:DB8:0::1
// is 2001:db8::1); a name is lower-cased without its final dot. A name is
// not replaced by its addresses here: those change with DNS and would
// move the checkpoint. The lease also covers the addresses the name
// resolves to when it is taken (leaseNames).
func canonicalHost(host string) string {
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return "localhost"
	}
	if ip := net.ParseIP(h); ip != nil {
		if ip.IsLoopback() {
			return "localhost"
		}
		return ip.String()
	}
	return h
}

// isLoopback reports whether host names the local machine without DNS:
// "localhost", 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// redact returns u with its password removed.
func redact(u *url.URL) string {
	return u.Redacted()
}

// redactURLError drops the URL (which may hold a password) from a parse
// error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
