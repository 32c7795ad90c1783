package chaos

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// worker is one `bouncer run` child process.
type child struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// workerSet starts `bouncer run` processes (the binary bin) on one
// mailbox, database and NATS server, and kills and restarts them.
type workerSet struct {
	bin                  string
	dbURL, natsURL, imap string
	log                  io.Writer
	prefix               string
	gen                  int
	running              []*child
	batchSize            int
}

// childEnv is the environment of a worker: this process's, without any
// bouncer or connection setting, plus the run's own. The lease is short
// (3 s) so that a standby takes over soon after a SIGKILL; reconnects are
// retried within a second.
func (s *workerSet) childEnv(owner string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "BOUNCER_") || strings.HasPrefix(k, "NATS_") || k == "DATABASE_URL" {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"DATABASE_URL="+s.dbURL,
		"NATS_URL="+s.natsURL,
		"BOUNCER_IMAP_URL="+s.imap,
		"BOUNCER_HTTP_ADDR=off",
		"BOUNCER_LEASE_TTL=3s",
		"BOUNCER_BACKOFF_MAX=1s",
		"BOUNCER_IMAP_TIMEOUT=10s",
		fmt.Sprintf("BOUNCER_BATCH_SIZE=%d", s.batchSize),
		"BOUNCER_LOG_LEVEL=info", // lifecycle only: the UIDVALIDITY change shows
		"BOUNCER_OWNER="+owner,
	)
}

// start starts one more worker, named PREFIX-GEN (a restarted worker is a
// new process with a new lease owner name, as after a real crash).
func (s *workerSet) start() (*child, error) {
	name := fmt.Sprintf("%s-%d", s.prefix, s.gen)
	s.gen++
	cmd := exec.Command(s.bin, "run", "--migrate=false")
	cmd.Env = s.childEnv(name)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", name, err)
	}
	w := &child{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(w.exited) }()
	s.running = append(s.running, w)
	return w, nil
}

// kill SIGKILLs the worker named owner (or, when none is, the first one)
// and returns its name.
func (s *workerSet) kill(owner string) string {
	i := 0
	for j, w := range s.running {
		if w.name == owner {
			i = j
		}
	}
	w := s.running[i]
	w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.exited
	s.running = append(s.running[:i], s.running[i+1:]...)
	return w.name
}

// died returns a worker that exited without being killed, if any.
func (s *workerSet) died() *child {
	for _, w := range s.running {
		select {
		case <-w.exited:
			return w
		default:
		}
	}
	return nil
}

// stop ends every worker with SIGTERM (a clean shutdown), SIGKILL after 20 s.
func (s *workerSet) stop() {
	for _, w := range s.running {
		w.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, w := range s.running {
		select {
		case <-w.exited:
		case <-time.After(20 * time.Second):
			w.cmd.Process.Kill()
			<-w.exited
		}
	}
	s.running = nil
}
