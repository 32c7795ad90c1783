// Package workertest starts the real servers the worker's tests need, on
// loopback: Dovecot (from a generated config), go-imap's in-memory server,
// an embedded nats-server with JetStream, a throw-away Postgres database per
// test, and a TCP proxy that cuts or freezes a connection on purpose.
// Nothing here is a mock.
package workertest

// Test harnesses for the real servers on loopback: Dovecot (started from a
// generated config), go-imap's in-memory server, an embedded nats-server,
// a throw-away Postgres database per test, and a TCP proxy to cut a
// connection on purpose. Nothing here is a mock.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/jackc/pgx/v5"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/bouncer-mail/bouncer/internal/privdovecot"
	"github.com/bouncer-mail/bouncer/store"
)

// missing fails the test when a server the tests need is not installed.
// Under CI that is a broken setup; elsewhere the message says what to do.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing under CI: %s", what, install)
	}
	t.Fatalf("%s is missing (install it: %s, or run bash .ci/run)", what, install)
}

func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dovecot is a Dovecot instance of the test, in the foreground, owned by
// the test process.
type Dovecot struct {
	t        testing.TB
	dir      string
	port     int
	conf     string
	proc     *privdovecot.Process
	User     string
	Password string
}

// startDovecot starts Dovecot on a free port with one user.
func StartDovecot(t testing.TB) *Dovecot {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/dovecot"); serr != nil {
			Missing(t, "Dovecot", "apt-get install dovecot-imapd")
		}
		bin = "/usr/sbin/dovecot"
	}
	dir, err := os.MkdirTemp("", "bouncer-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	d := &Dovecot{t: t, dir: dir, port: FreePort(t), User: "bounces", Password: "secret"}
	for _, sub := range []string{"run", "state", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		// Mail is owned by nobody (uid 0 is refused as a mail user).
		exec.Command("chown", "nobody:nogroup", filepath.Join(dir, "mail")).Run()
	}
	os.WriteFile(filepath.Join(dir, "users"), []byte(d.User+":{PLAIN}"+d.Password+"\n"), 0o644)
	conf := privdovecot.Config(privdovecot.Options{Dir: dir, Port: d.port, Instance: "dovecot-test", UID: "nobody", GID: "nogroup"})
	d.conf = filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Start(bin)
	t.Cleanup(d.Stop)
	return d
}

func (d *Dovecot) Start(bin string) {
	d.t.Helper()
	p, err := privdovecot.Start(bin, d.conf)
	if err != nil {
		d.t.Fatalf("start dovecot: %v", err)
	}
	d.proc = p
	WaitPort(d.t, d.Addr(), 10*time.Second, p.Exited())
}

// stop stops Dovecot and waits for it to exit.
func (d *Dovecot) Stop() {
	if d.proc == nil {
		return
	}
	d.proc.Stop()
	d.proc = nil
}

// restart stops Dovecot (dropping every connection) and starts it again
// after pause, on the same port with the same mail.
func (d *Dovecot) Restart(pause time.Duration) {
	d.t.Helper()
	bin := d.proc.Bin
	d.Stop()
	time.Sleep(pause)
	d.Start(bin)
}

func (d *Dovecot) Addr() string { return fmt.Sprintf("127.0.0.1:%d", d.port) }

// URL is the worker's URL of folder on this server.
func (d *Dovecot) URL(folder string) string {
	return fmt.Sprintf("imap://%s:%s@%s/%s?tls=none", d.User, d.Password, d.Addr(), folder)
}

func WaitPort(t testing.TB, addr string, limit time.Duration, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("server for %s exited at start", addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("nothing listens on %s after %v", addr, limit)
}

// memIMAP is go-imap's in-memory server with IMAP4rev2 capabilities (so
// MOVE and UIDPLUS are there), plaintext login allowed on loopback.
type MemIMAP struct {
	srv      *imapserver.Server
	ln       net.Listener
	user     *imapmemserver.User
	User     string
	Password string
}

func StartMemIMAP(t testing.TB, caps imap.CapSet) *MemIMAP {
	t.Helper()
	if caps == nil {
		caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}}
	}
	mem := imapmemserver.New()
	m := &MemIMAP{User: "bounces", Password: "secret"}
	m.user = imapmemserver.NewUser(m.User, m.Password)
	m.user.Create("INBOX", nil)
	mem.AddUser(m.user)
	m.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.ln = ln
	go m.srv.Serve(ln)
	t.Cleanup(func() { m.srv.Close() })
	return m
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

func (m *MemIMAP) Addr() string { return m.ln.Addr().String() }

func (m *MemIMAP) URL(folder string) string {
	return fmt.Sprintf("imap://%s:%s@%s/%s?tls=none", m.User, m.Password, m.Addr(), folder)
}

// client logs in to an IMAP server for the test's own checks.
func IMAPClient(t testing.TB, addr, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// appendRaw APPENDs each message, unread.
func AppendRaw(t testing.TB, c *imapclient.Client, folder string, msgs ...[]byte) {
	t.Helper()
	var cmds []*imapclient.AppendCommand
	for _, raw := range msgs {
		raw = ToCRLF(raw)
		cmd := c.Append(folder, int64(len(raw)), nil)
		cmd.Write(raw)
		if err := cmd.Close(); err != nil {
			t.Fatalf("append: %v", err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

// toCRLF is the test's own line-end normalisation.
func ToCRLF(b []byte) []byte {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

// folderMsg is what the tests look at in a folder.
type FolderMsg struct {
	UID  imap.UID
	Seen bool
	Sum  [32]byte
}

// listFolder returns every message of folder with its flags and hash.
func ListFolder(t testing.TB, c *imapclient.Client, folder string) []FolderMsg {
	t.Helper()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
			return nil
		}
		t.Fatalf("examine %s: %v", folder, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	sec := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", folder, err)
	}
	var out []FolderMsg
	for _, b := range bufs {
		m := FolderMsg{UID: b.UID, Sum: sha256.Sum256(ToCRLF(b.FindBodySection(sec)))}
		for _, f := range b.Flags {
			if f == imap.FlagSeen {
				m.Seen = true
			}
		}
		out = append(out, m)
	}
	return out
}

// startNATS runs nats-server with JetStream in the test process.
type NATS struct {
	t    testing.TB
	srv  *natsserver.Server
	port int
	dir  string
}

func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, port: FreePort(t), dir: t.TempDir()}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

func (n *NATS) Start() {
	n.t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: n.port, JetStream: true,
		StoreDir: n.dir, NoSigs: true, NoLog: true})
	if err != nil {
		n.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		n.t.Fatal("nats-server not ready")
	}
	n.srv = srv
}

func (n *NATS) Stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// testDatabaseURL is the server the tests use: $BOUNCER_TEST_DATABASE_URL,
// or the local one.
func DatabaseURL() string {
	if u := os.Getenv("BOUNCER_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// newDatabase creates a migrated database of its own for the test and
// returns its URL; it is dropped at the end.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base, err := url.Parse(DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base.String())
	if err != nil {
		Missing(t, "PostgreSQL at "+base.Redacted(), "apt-get install postgresql && pg_ctlcluster 15 main start ("+err.Error()+")")
	}
	admin.Close(ctx)
	var rnd [6]byte
	rand.Read(rnd[:])
	name := "bouncer_worker_test_" + hex.EncodeToString(rnd[:])
	u := *base
	u.Path = "/" + name
	if err := store.Migrate(ctx, u.String()); err != nil {
		t.Fatalf("migrate %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base.String())
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return u.String()
}

// proxy forwards TCP connections to a target until cut: then it drops
// every connection and refuses new ones until healed.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	down   bool
	frozen bool
	conns  map[net.Conn]bool
}

func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.Cut() })
	return p
}

func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.copy(u, c); done <- struct{}{} }()
	go func() { p.copy(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// copy forwards src to dst, dropping what arrives while frozen.
func (p *Proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			if !frozen {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Freeze keeps the connections open but silently drops everything: a peer
// that hangs without closing, which only timeouts can notice.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

// Cut drops every connection and refuses new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.frozen = false, false
}

// viaProxy returns databaseURL with its host replaced by the proxy's.
func ViaProxy(databaseURL, proxyAddr string) string {
	u, _ := url.Parse(databaseURL)
	u.Host = proxyAddr
	return u.String()
}
