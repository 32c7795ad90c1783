package main

// Runs the staging Dovecot outside its image: deploy/dovecot/entrypoint.sh
// with deploy/dovecot/dovecot.conf, their paths moved into a temporary
// directory, on this machine's Dovecot 2.3 (Debian's dovecot-imapd, the
// package the image installs; .ci/run installs it). Only the paths, the
// ports and the mail owner are changed: the TLS, authentication and mailbox
// settings are the image's.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/jackc/pgx/v5"

	"github.com/bouncer-mail/bouncer/store/storetest"
	wt "github.com/bouncer-mail/bouncer/worker/workertest"
)

// stagingDovecot is a running Dovecot of the staging configuration.
type stagingDovecot struct {
	dir                 string
	imapPort, imapsPort int
	caFile              string
	passwords           map[string]string // user -> password
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// entrypointEnv is the environment of entrypoint.sh for d.
func (d *stagingDovecot) entrypointEnv() []string {
	return append(os.Environ(),
		"DOVECOT_CONFIG="+filepath.Join(d.dir, "etc/dovecot.conf"),
		"DOVECOT_USERS_FILE="+filepath.Join(d.dir, "etc/users"),
		"DOVECOT_TLS_DIR="+filepath.Join(d.dir, "etc/tls"),
		"IMAP_CA_EXPORT_DIR="+filepath.Join(d.dir, "ca"),
		"DOVECOT_MAIL_ROOT="+filepath.Join(d.dir, "mail"),
		"DOVECOT_MAIL_OWNER=nobody:nogroup",
		fmt.Sprintf("IMAP_HEALTH_PORT=%d", d.imapPort),
		"IMAP_BOUNCE_USER=bounces",
		"IMAP_BOUNCE_PASSWORD_FILE="+filepath.Join(d.dir, "secrets/imap_password"),
		"IMAP_TEST_USER=test",
		"IMAP_TEST_PASSWORD_FILE="+filepath.Join(d.dir, "secrets/imap_test_password"),
		"IMAP_TLS_NAMES=dovecot,localhost",
	)
}

// startStagingDovecot starts deploy/dovecot's entrypoint and waits until
// its healthcheck passes.
func startStagingDovecot(t *testing.T) *stagingDovecot {
	t.Helper()
	if _, err := exec.LookPath("dovecot"); err != nil {
		t.Fatalf("dovecot is not installed (apt-get install dovecot-imapd; .ci/run does): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("the staging Dovecot runs as root (it drops privileges itself), as in its image")
	}
	dir := t.TempDir()
	// Dovecot's auth process (user dovecot) and mail processes (nobody)
	// must reach the files below.
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := &stagingDovecot{dir: dir, imapPort: freePort(t), imapsPort: freePort(t),
		caFile: filepath.Join(dir, "ca/cert.pem"), passwords: map[string]string{}}
	for _, sub := range []string{"etc", "run", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The secrets, as the operator makes them.
	if out, err := exec.CommandContext(t.Context(), "sh", repoPath("deploy/gen-secrets"), filepath.Join(dir, "secrets")).CombinedOutput(); err != nil {
		t.Fatalf("deploy/gen-secrets: %v\n%s", err, out)
	}
	for file, user := range map[string]string{"imap_password": "bounces", "imap_test_password": "test"} {
		b, err := os.ReadFile(filepath.Join(dir, "secrets", file))
		if err != nil {
			t.Fatal(err)
		}
		d.passwords[user] = string(b)
	}

	conf, err := os.ReadFile(repoPath("deploy/dovecot/dovecot.conf"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(conf)
	for _, r := range []struct{ old, new string }{
		{"/etc/dovecot/", filepath.Join(dir, "etc") + "/"},
		{"/srv/mail/", filepath.Join(dir, "mail") + "/"},
		{"uid=vmail gid=vmail", "uid=nobody gid=nogroup"},
		{"port = 143\n", fmt.Sprintf("port = %d\n", d.imapPort)},
		{"port = 993\n", fmt.Sprintf("port = %d\n", d.imapsPort)},
		{"listen = *, ::\n", fmt.Sprintf("listen = 127.0.0.1\nbase_dir = %s/run\nstate_dir = %s/state\ninstance_name = bouncer-staging-%d\n",
			dir, dir, d.imapPort)},
	} {
		if !strings.Contains(s, r.old) {
			t.Fatalf("deploy/dovecot/dovecot.conf has no %q any more: update this test", r.old)
		}
		s = strings.ReplaceAll(s, r.old, r.new)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/dovecot.conf"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("bash", repoPath("deploy/dovecot/entrypoint.sh"))
	cmd.Env = d.entrypointEnv()
	logf, err := os.Create(filepath.Join(dir, "dovecot.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("dovecot log:\n%s", b)
		}
	})

	// The image's healthcheck, until it passes.
	deadline := time.Now().Add(15 * time.Second)
	for {
		// A check that hangs (a busy machine, a server stuck in its start)
		// is cut off and tried again, never waited on for ever.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		hc := exec.CommandContext(ctx, "bash", repoPath("deploy/dovecot/entrypoint.sh"), "healthcheck")
		hc.Env = d.entrypointEnv()
		err := hc.Run()
		cancel()
		if err == nil {
			return d
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("the entrypoint exited: %v\n%s", err, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("the healthcheck did not pass within 15 s\n%s", b)
		}
	}
}

// imapsLogin logs in over IMAPS to d as bouncer would: verifying the
// certificate for serverName against the exported CA file only. It returns
// the tagged LOGIN response.
func (d *stagingDovecot) imapsLogin(t *testing.T, serverName, user, password string) (string, error) {
	t.Helper()
	pem, err := os.ReadFile(d.caFile)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return "", fmt.Errorf("%s: no certificate", d.caFile)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	dialer := &tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}}
	conn, err := dialer.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", d.imapsPort))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	greeting, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "* OK") {
		return "", fmt.Errorf("greeting %q: %v", greeting, err)
	}
	fmt.Fprintf(conn, "a1 LOGIN %q %q\r\n", user, password)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(line, "a1 ") {
			fmt.Fprintf(conn, "a2 LOGOUT\r\n")
			return strings.TrimSpace(line), nil
		}
	}
}

func TestStagingDovecot(t *testing.T) {
	t.Parallel()
	d := startStagingDovecot(t)

	// Both users log in over TLS, verified as the compose network names
	// the server (dovecot) with the certificate it exported.
	for user, pw := range d.passwords {
		resp, err := d.imapsLogin(t, "dovecot", user, pw)
		if err != nil || !strings.HasPrefix(resp, "a1 OK") {
			t.Errorf("IMAPS LOGIN %s (server name dovecot) = %q, %v; want OK", user, resp, err)
		}
	}
	if resp, err := d.imapsLogin(t, "dovecot", "bounces", "wrong"); err != nil || !strings.HasPrefix(resp, "a1 NO") {
		t.Errorf("IMAPS LOGIN with a wrong password = %q, %v; want NO", resp, err)
	}
	// The certificate is not valid for another name.
	if _, err := d.imapsLogin(t, "mail.example.org", "bounces", d.passwords["bounces"]); err == nil {
		t.Errorf("TLS to the staging Dovecot as mail.example.org succeeded; want a certificate error")
	}

	// Passwords are stored hashed, readable by Dovecot's auth process only.
	users := filepath.Join(d.dir, "etc/users")
	b, err := os.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}
	for user, pw := range d.passwords {
		if strings.Contains(string(b), pw) || !strings.Contains(string(b), user+":{SHA512-CRYPT}$6$") {
			t.Errorf("users file %q: want %s with a SHA512-CRYPT hash and no password", b, user)
		}
	}
	if st, err := os.Stat(users); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("users file mode %v (%v), want 0640", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Join(d.dir, "etc/tls/key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("TLS key mode %v (%v), want 0600", st.Mode(), err)
	}

	// Without its password files the entrypoint refuses to start.
	// An entrypoint that started instead of refusing would run for ever.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", repoPath("deploy/dovecot/entrypoint.sh"))
	cmd.Env = append(d.entrypointEnv(), "IMAP_TEST_PASSWORD_FILE="+filepath.Join(d.dir, "secrets/missing"),
		"DOVECOT_USERS_FILE="+filepath.Join(d.dir, "users.other"))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "password file") {
		t.Errorf("entrypoint without a password file = %v\n%s\nwant a refusal naming it", err, out)
	}
}

// composeEnv returns a getenv of service's environment in
// docker-compose.yml, each value rewritten by the replacements (the compose
// network's names and the containers' paths to this machine's). A value
// that still points into the compose network or a container fails the
// test: a changed compose file changes this test.
func composeEnv(t *testing.T, s types.ServiceConfig, repl [][2]string) func(string) string {
	t.Helper()
	vars := map[string]string{}
	for k, v := range s.Environment {
		if v == nil {
			continue
		}
		val := *v
		for _, r := range repl {
			val = strings.ReplaceAll(val, r[0], r[1])
		}
		if regexp.MustCompile(`^/run/|=/run/|@(dovecot|postgres)[:/]|//nats:|^0\.0\.0\.0:`).MatchString(val) {
			t.Fatalf("%s: %s=%q still points into the compose stack: update this test", s.Name, k, val)
		}
		vars[k] = val
	}
	return func(k string) string { return vars[k] }
}

// TestStagingPipeline runs the compose stack's one-shot and long-running
// bouncer services (migrate, seeder, bouncer) as the compose file
// configures them, with its environment and secrets, against the staging
// Dovecot (its image's entrypoint and config), Postgres and an embedded
// NATS JetStream on loopback: everything but Docker itself.
func TestStagingPipeline(t *testing.T) {
	t.Parallel()
	d := startStagingDovecot(t)
	n := wt.StartNATS(t)
	dbURL, err := url.Parse(storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, nil)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	compose, _ := url.Parse(envOf(p.Services["bouncer"], "DATABASE_URL"))
	repl := [][2]string{
		{"/run/secrets/", filepath.Join(d.dir, "secrets") + "/"},
		{"/run/imap-ca/", filepath.Join(d.dir, "ca") + "/"},
		{"@dovecot:993/", fmt.Sprintf("@127.0.0.1:%d/", d.imapsPort)},
		// The database's user, host and name; its parameters (passfile=)
		// stay. The local server trusts its users; the pgpass file is read
		// all the same.
		{compose.Scheme + "://" + compose.User.String() + "@" + compose.Host + compose.Path,
			dbURL.Scheme + "://" + dbURL.User.String() + "@" + dbURL.Host + dbURL.Path},
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	// migrate, then the seeder, then the worker, as depends_on orders them.
	var out, errOut syncBuffer
	migrateEnv := composeEnv(t, p.Services["migrate"], repl)
	if err := run(ctx, &env{stdout: &out, stderr: &errOut, getenv: migrateEnv}, p.Services["migrate"].Command); err != nil {
		t.Fatalf("migrate service (bouncer %v) = %v\n%s", p.Services["migrate"].Command, err, errOut.String())
	}
	if !strings.Contains(out.String(), "applied") {
		t.Errorf("migrate service said %q, want the migrations applied", out.String())
	}

	seeder := p.Services["seeder"]
	seedDir := repoPath("classify/testdata")
	args := slices.Clone(seeder.Command)
	for i, a := range args {
		for _, r := range repl {
			a = strings.ReplaceAll(a, r[0], r[1])
		}
		if a == mountTarget(seeder, "classify/testdata") {
			a = seedDir
		}
		args[i] = a
	}
	files, _ := filepath.Glob(filepath.Join(seedDir, "*.eml"))
	out = syncBuffer{}
	if err := run(ctx, &env{stdout: &out, stderr: &errOut, getenv: composeEnv(t, seeder, repl)}, args); err != nil {
		t.Fatalf("seeder service (bouncer %v) = %v\n%s", args, err, errOut.String())
	}
	if want := fmt.Sprintf("appended %d message(s)", len(files)); !strings.Contains(out.String(), want) {
		t.Errorf("seeder service said %q, want %q", out.String(), want)
	}

	b := p.Services["bouncer"]
	benv := composeEnv(t, b, append(repl,
		[2]string{"nats://nats:4222", n.URL()},
		[2]string{envOf(b, "BOUNCER_HTTP_ADDR"), httpAddr}))
	var runErr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, &env{stdout: io.Discard, stderr: &runErr, getenv: benv}, b.Command)
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	msgCount := regexp.MustCompile(`(?m)^bouncer_messages_total\{kind="[a-z_]+"\} (\d+)$`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("bouncer service (bouncer %v) exited: %v\n%s", b.Command, err, runErr.String())
		case <-time.After(200 * time.Millisecond):
		}
		code, _ := get("/readyz")
		_, metrics := get("/metrics")
		sum := 0
		for _, m := range msgCount.FindAllStringSubmatch(metrics, -1) {
			k, _ := strconv.Atoi(m[1])
			sum += k
		}
		if code == 200 && sum == len(files) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 60 s: /readyz %d, %d of %d seeded messages committed\n%s", code, sum, len(files), runErr.String())
		}
	}
	// The dashboards have data: the rows are in the database.
	conn, err := pgx.Connect(ctx, dbURL.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var msgs, bounces int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM source_messages), (SELECT count(*) FROM bounces)`).Scan(&msgs, &bounces); err != nil || msgs != len(files) || bounces == 0 {
		t.Errorf("database: %d messages, %d bounces (%v); want %d messages and bounces", msgs, bounces, err, len(files))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("bouncer service after its stop = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("bouncer run did not stop within 20 s")
	}
	if strings.Contains(runErr.String(), `"level":"ERROR"`) {
		t.Errorf("the bouncer service logged errors:\n%s", runErr.String())
	}
}
