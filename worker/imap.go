package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// keepAlive notices a peer that vanished (host down, network cut) within
// about 30 s even while IDLE, when no command is waiting for an answer.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// tlsConfig returns the TLS configuration for m: the server name checked
// against the certificate, and the custom CAs if any.
func tlsConfig(m *Mailbox) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: m.Host, MinVersion: tls.VersionTLS12}
	if m.CAFile != "" {
		pem, err := os.ReadFile(m.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", m.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Dial connects to m's server, protects the connection as m.TLS says and
// logs in. The handler, if any, gets the server's unilateral data. timeout
// bounds the dial, the TLS handshake, the greeting and the login; ctx
// ending closes the connection.
func Dial(ctx context.Context, m *Mailbox, timeout time.Duration, handler *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	opts := &imapclient.Options{UnilateralDataHandler: handler}
	if m.TLS != TLSNone {
		cfg, err := tlsConfig(m)
		if err != nil {
			return nil, fmt.Errorf("imap %s: %w", m.Key, err)
		}
		opts.TLSConfig = cfg
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAliveConfig: keepAlive}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nc net.Conn
	var err error
	if m.TLS == TLSImplicit {
		td := &tls.Dialer{NetDialer: dialer, Config: opts.TLSConfig}
		nc, err = td.DialContext(dctx, "tcp", m.Addr)
	} else {
		nc, err = dialer.DialContext(dctx, "tcp", m.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("imap %s: dial: %w", m.Key, err)
	}

	// Until login is done, the timeout and ctx both close the connection.
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	defer stop()

	var c *imapclient.Client
	if m.TLS == TLSStartTLS {
		c, err = imapclient.NewStartTLS(nc, opts)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("imap %s: STARTTLS (required; use imaps:// or ?tls=none to loopback): %w", m.Key, ctxErr(dctx, err))
		}
	} else {
		c = imapclient.New(nc, opts)
		if err := c.WaitGreeting(); err != nil {
			c.Close()
			return nil, fmt.Errorf("imap %s: greeting: %w", m.Key, ctxErr(dctx, err))
		}
	}
	if err := login(dctx, c, m); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap %s: login as %s (%s): %w", m.Key, m.User, m.Auth, ctxErr(dctx, err))
	}
	return c, nil
}

// ctxErr prefers ctx's error to the one a closed connection caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

func login(ctx context.Context, c *imapclient.Client, m *Mailbox) error {
	caps := c.Caps()
	switch m.Auth {
	case AuthLogin:
		if caps.Has(imap.CapLoginDisabled) {
			if !caps.Has(imap.AuthCap("PLAIN")) {
				return errors.New("server disabled LOGIN and offers no AUTH=PLAIN")
			}
			return c.Authenticate(sasl.NewPlainClient("", m.User, m.Password))
		}
		return c.Login(m.User, m.Password).Wait()
	case AuthPlain:
		return c.Authenticate(sasl.NewPlainClient("", m.User, m.Password))
	case AuthXOAUTH2, AuthOAuthBearer:
		token, err := readToken(ctx, m)
		if err != nil {
			return err
		}
		if m.Auth == AuthXOAUTH2 {
			return c.Authenticate(&xoauth2Client{user: m.User, token: token})
		}
		host, port, _ := net.SplitHostPort(m.Addr)
		p, _ := strconv.Atoi(port)
		return c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
			Username: m.User, Token: token, Host: host, Port: p,
		}))
	}
	return fmt.Errorf("unknown auth %q", m.Auth)
}

// readToken reads the OAuth access token afresh: tokens expire, and the
// file or the command is what the operator's refresher keeps current.
func readToken(ctx context.Context, m *Mailbox) (string, error) {
	var b []byte
	var err error
	if m.TokenFile != "" {
		b, err = os.ReadFile(m.TokenFile)
		if err != nil {
			return "", fmt.Errorf("read token: %w", err)
		}
	} else {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", m.TokenCommand)
		cmd.Stderr = nil
		b, err = cmd.Output()
		if err != nil {
			return "", fmt.Errorf("token command: %w", err)
		}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("empty OAuth token")
	}
	return tok, nil
}

// xoauth2Client is the XOAUTH2 SASL mechanism of Google and Microsoft: an
// initial response "user=U^Aauth=Bearer T^A^A". On failure the server sends
// a JSON error as a challenge, answered with an empty response, after which
// it fails the command.
type xoauth2Client struct {
	user, token string
}

func (x *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	return []byte{}, nil
}
