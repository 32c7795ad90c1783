package demo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// IMAP is go-imap's in-memory server on a free loopback port, with one user
// and an INBOX. It speaks IMAP4rev2 (so MOVE, UIDPLUS and IDLE, RFC 9051)
// in plaintext: the demo's URL says tls=none, which the worker allows only
// to a loopback host.
type IMAP struct {
	User     string
	Password string

	srv  *imapserver.Server
	ln   net.Listener
	user *imapmemserver.User
	done chan error
}

// StartIMAP starts the server for user with a generated password.
func StartIMAP(user string, log *slog.Logger) (*IMAP, error) {
	s := &IMAP{User: user, Password: randomHex(8), done: make(chan error, 1)}
	mem := imapmemserver.New()
	s.user = imapmemserver.NewUser(s.User, s.Password)
	if err := s.user.Create("INBOX", nil); err != nil {
		return nil, fmt.Errorf("demo: imap: %w", err)
	}
	mem.AddUser(s.user)
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: imap: %w", err)
	}
	s.ln = ln
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the server's host:port.
func (s *IMAP) Addr() string { return s.ln.Addr().String() }

// URL is the IMAP URL of folder, with the password when withPassword.
func (s *IMAP) URL(folder string, withPassword bool) string {
	u := &url.URL{Scheme: "imap", Host: s.Addr(), Path: "/" + folder, RawQuery: "tls=none"}
	if withPassword {
		u.User = url.UserPassword(s.User, s.Password)
	} else {
		u.User = url.User(s.User)
	}
	return u.String()
}

// Append stores raw in folder as arrived at t, unread, and returns its UID.
// Other sessions IDLEing on the folder are told (EXISTS).
func (s *IMAP) Append(folder string, raw []byte, t time.Time) (imap.UID, error) {
	data, err := s.user.Append(folder, literal{bytes.NewReader(raw)}, &imap.AppendOptions{Time: t})
	if err != nil {
		return 0, fmt.Errorf("demo: append to %s: %w", folder, err)
	}
	return data.UID, nil
}

// Count returns how many messages folder holds (0 when it does not exist).
func (s *IMAP) Count(folder string) int {
	st, err := s.user.Status(folder, &imap.StatusOptions{NumMessages: true})
	if err != nil || st.NumMessages == nil {
		return 0
	}
	return int(*st.NumMessages)
}

// Close stops the server and closes every session.
func (s *IMAP) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

// literal is an imap.LiteralReader over bytes.
type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

// NATS is an embedded nats-server with JetStream, its store in a temporary
// directory removed by Close.
type NATS struct {
	srv *natsserver.Server
	dir string
}

// StartNATS starts the server on a free loopback port and waits until it
// takes connections.
func StartNATS() (*NATS, error) {
	dir, err := os.MkdirTemp("", "bouncer-demo-nats-")
	if err != nil {
		return nil, fmt.Errorf("demo: nats: %w", err)
	}
	srv, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "bouncer-demo",
		Host:       "127.0.0.1",
		Port:       -1, // a free one
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("demo: nats: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("demo: nats: not ready after 10s")
	}
	return &NATS{srv: srv, dir: dir}, nil
}

// URL is the client URL of the server.
func (n *NATS) URL() string { return n.srv.ClientURL() }

// Close shuts the server down and removes its store.
func (n *NATS) Close() error {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	return os.RemoveAll(n.dir)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
