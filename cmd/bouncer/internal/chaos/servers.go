package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/bouncer-mail/bouncer/internal/privdovecot"
)

// freePort returns a loopback TCP port nobody listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitPort waits until something accepts connections on addr, or exited
// is closed (the server died), or limit passes.
func waitPort(addr string, limit time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the server for %s exited at start", addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("nothing listens on %s after %v", addr, limit)
}

// dovecot is a private Dovecot 2.3 in the foreground, with two users: one
// mailbox for the clean run and one for the chaos run.
type dovecot struct {
	dir, conf, bin string
	port           int
	password       string
	proc           *privdovecot.Process
}

// startDovecot writes the configuration into dir/dovecot and starts it.
// As root the mail belongs to nobody (Dovecot refuses uid 0 for mail).
func startDovecot(dir, password string) (*dovecot, error) {
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/dovecot"); serr != nil {
			return nil, errors.New("dovecot is not installed (apt-get install dovecot-imapd)")
		}
		bin = "/usr/sbin/dovecot"
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d := &dovecot{dir: filepath.Join(dir, "dovecot"), bin: bin, port: port, password: password}
	for _, sub := range []string{"run", "state", "mail"} {
		if err := os.MkdirAll(filepath.Join(d.dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	if os.Geteuid() == 0 {
		uid, gid = "nobody", "nogroup"
		if err := exec.Command("chown", "nobody:nogroup", filepath.Join(d.dir, "mail")).Run(); err != nil {
			return nil, fmt.Errorf("chown the mail directory to nobody: %w", err)
		}
	}
	users := "clean:{PLAIN}" + password + "\nchaos:{PLAIN}" + password + "\n"
	if err := os.WriteFile(filepath.Join(d.dir, "users"), []byte(users), 0o644); err != nil {
		return nil, err
	}
	o := privdovecot.Options{Dir: d.dir, Port: port, Instance: "bouncer-chaos", UID: uid, GID: gid}
	if os.Geteuid() != 0 {
		// Unprivileged: Dovecot's own processes run as this user, unchrooted.
		me, err := user.Current()
		if err != nil {
			return nil, err
		}
		g, err := user.LookupGroupId(me.Gid)
		if err != nil {
			return nil, err
		}
		o.User, o.Group = me.Username, g.Name
	}
	conf := privdovecot.Config(o)
	d.conf = filepath.Join(d.dir, "dovecot.conf")
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return d, d.start()
}

func (d *dovecot) start() error {
	p, err := privdovecot.Start(d.bin, d.conf)
	if err != nil {
		return fmt.Errorf("start dovecot: %w", err)
	}
	d.proc = p
	if err := waitPort(d.addr(), 15*time.Second, p.Exited()); err != nil {
		return fmt.Errorf("dovecot: %w (see %s)", err, filepath.Join(d.dir, "dovecot.log"))
	}
	return nil
}

// stop stops Dovecot (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (d *dovecot) stop() {
	if d.proc == nil {
		return
	}
	d.proc.Stop()
	d.proc = nil
}

// restart drops every connection and starts again on the same port and mail.
func (d *dovecot) restart() error {
	d.stop()
	return d.start()
}

// changeUIDValidity gives user's INBOX a new UIDVALIDITY (RFC 3501
// §2.3.1.1): every UID the workers remember becomes meaningless.
func (d *dovecot) changeUIDValidity(ctx context.Context, user string, v uint32) error {
	bin, err := exec.LookPath("doveadm")
	if err != nil {
		bin = "/usr/bin/doveadm"
	}
	out, err := exec.CommandContext(ctx, bin, "-c", d.conf, "mailbox", "update", "-u", user,
		"--uid-validity", strconv.FormatUint(uint64(v), 10), "INBOX").CombinedOutput()
	if err != nil {
		return fmt.Errorf("doveadm mailbox update --uid-validity: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (d *dovecot) addr() string { return fmt.Sprintf("127.0.0.1:%d", d.port) }

// url is the worker's URL of user's INBOX.
func (d *dovecot) url(user string) string {
	return fmt.Sprintf("imap://%s:%s@%s/INBOX?tls=none", user, d.password, d.addr())
}

// postgres is a private cluster (initdb, pg_ctl) on its own port, which
// the run may stop and start. As root it runs as the postgres OS user.
type postgres struct {
	bin, dir, data string
	port           int
	asUser         string
}

// pgBinDir finds the directory of initdb and pg_ctl: the newest
// /usr/lib/postgresql/*/bin (Debian), else the PATH.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return a > b
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)")
}

// startPostgres creates a cluster in dir/pg and starts it. fsync is off
// (a restart here is a process crash, not a power cut, so the kernel keeps
// what was written) but synchronous_commit stays on: a commit bouncer was
// told of is in the WAL before the reply.
func startPostgres(ctx context.Context, dir string) (*postgres, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &postgres{bin: bin, dir: filepath.Join(dir, "pg"), port: port}
	p.data = filepath.Join(p.dir, "data")
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root needs the postgres OS user to run PostgreSQL (apt-get install postgresql)")
		}
		p.asUser = u.Username
		if err := exec.Command("chown", u.Username, p.dir).Run(); err != nil {
			return nil, fmt.Errorf("chown %s: %w", p.dir, err)
		}
	}
	if err := p.ctl(ctx, "initdb", "-D", p.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"); err != nil {
		return nil, err
	}
	return p, p.start(ctx)
}

// ctl runs one of PostgreSQL's programs, as the postgres user when root.
func (p *postgres) ctl(ctx context.Context, prog string, args ...string) error {
	path := filepath.Join(p.bin, prog)
	cmd := exec.CommandContext(ctx, path, args...)
	if p.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", p.asUser, "--", path}, args...)...)
	}
	cmd.Dir = p.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", prog, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (p *postgres) start(ctx context.Context) error {
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c full_page_writes=off -c max_connections=200", p.port, p.dir)
	return p.ctl(ctx, "pg_ctl", "-D", p.data, "-l", filepath.Join(p.dir, "postgres.log"), "-w", "-t", "60", "-o", opts, "start")
}

// restart stops the server the hard way (-m immediate: every backend is
// killed, the next start recovers from the WAL) and starts it again.
func (p *postgres) restart(ctx context.Context) error {
	if err := p.ctl(ctx, "pg_ctl", "-D", p.data, "-m", "immediate", "-w", "stop"); err != nil {
		return err
	}
	return p.start(ctx)
}

func (p *postgres) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.ctl(ctx, "pg_ctl", "-D", p.data, "-m", "fast", "-w", "stop")
}

// url is the URL of database name on this server.
func (p *postgres) url(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, name)
}

// natsServer is an embedded nats-server with JetStream on a fixed port,
// its store kept across restarts.
type natsServer struct {
	srv  *natsserver.Server
	port int
	dir  string
	name string
}

func startNATS(dir, name string) (*natsServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &natsServer{port: port, dir: filepath.Join(dir, "nats-"+name), name: name}
	return n, n.start()
}

func (n *natsServer) start() error {
	srv, err := natsserver.NewServer(&natsserver.Options{ServerName: "bouncer-chaos-" + n.name,
		Host: "127.0.0.1", Port: n.port, JetStream: true, StoreDir: n.dir, NoSigs: true, NoLog: true})
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return errors.New("nats: not ready after 30s")
	}
	n.srv = srv
	return nil
}

func (n *natsServer) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *natsServer) restart() error {
	n.stop()
	return n.start()
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }
