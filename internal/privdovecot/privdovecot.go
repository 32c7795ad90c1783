// Package privdovecot writes the configuration of a private Dovecot IMAP
// server (RFC 9051) on loopback and runs it, for the tests and `bouncer
// chaos`: plain
// IMAP on 127.0.0.1 with PLAIN/LOGIN authentication (RFC 4616), users in a
// passwd-file, mail in maildirs under one directory, nothing shared with
// a system Dovecot.
package privdovecot

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Options say where an instance lives and whose its mail is.
type Options struct {
	// Dir holds everything: run/, state/, mail/, the users file (Dir/users,
	// "user:{PLAIN}password" lines, written by the caller) and the log.
	Dir string
	// Port is the IMAP port on 127.0.0.1.
	Port int
	// Instance prefixes the instance name (the port is added), which
	// keeps doveadm of one instance away from another's.
	Instance string
	// UID and GID own the mail (names or numbers); Dovecot refuses uid 0.
	UID, GID string
	// User and Group, when set, run Dovecot's own processes unprivileged,
	// unchrooted, as this user and group: for a run that is not root.
	User, Group string
}

const template = `base_dir = {{D}}/run
state_dir = {{D}}/state
instance_name = {{INSTANCE}}-{{PORT}}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {{D}}/dovecot.log
mail_location = maildir:~/Maildir
mail_fsync = never
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {{D}}/users
}
userdb {
  driver = static
  args = uid={{UID}} gid={{GID}} home={{D}}/mail/%u
}
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{PORT}}
  }
  inet_listener imaps {
    port = 0
  }
}
protocol imap {
  mail_max_userip_connections = 100
}
`

// Config returns the dovecot.conf of the instance o describes.
func Config(o Options) string {
	conf := template
	if o.User != "" {
		conf += "default_internal_user = " + o.User + "\ndefault_login_user = " + o.User +
			"\ndefault_internal_group = " + o.Group + "\nservice anvil {\n  chroot =\n}\nservice imap-login {\n  chroot =\n}\n"
	}
	return strings.NewReplacer("{{D}}", o.Dir, "{{PORT}}", strconv.Itoa(o.Port), "{{INSTANCE}}", o.Instance,
		"{{UID}}", o.UID, "{{GID}}", o.GID).Replace(conf)
}

// Process is a Dovecot running in the foreground (dovecot -F).
type Process struct {
	Bin    string // the dovecot binary it runs
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts bin (the dovecot binary) with the configuration file conf,
// its output discarded (Dovecot logs to the log_path of Config).
func Start(bin, conf string) (*Process, error) {
	p := &Process{Bin: bin, cmd: exec.Command(bin, "-F", "-c", conf), exited: make(chan struct{})}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stop asks Dovecot to stop (SIGINT), kills it after 10 s, and waits for
// it to exit.
func (p *Process) Stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}
