package main

// Tests of the staging stack (docker-compose.yml and deploy/) without a
// Docker engine: the compose file is loaded with the compose-spec loader
// (github.com/compose-spec/compose-go/v2, the one docker compose uses) and
// checked against the Dockerfiles, the scripts and the worker's
// configuration; the Dockerfiles are read instruction by instruction.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/bouncer-mail/bouncer/cmd/bouncer/internal/explain"
	"github.com/bouncer-mail/bouncer/worker"
)

// repoPath returns the path of a repository file from this package's
// directory, where go test runs.
func repoPath(rel string) string {
	return filepath.Join("..", "..", filepath.FromSlash(rel))
}

// loadCompose loads docker-compose.yml as `docker compose` would, with
// exactly the environment env (nil: none, so every default applies) and no
// .env file.
func loadCompose(t *testing.T, env []string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{repoPath("docker-compose.yml")},
		cli.WithWorkingDirectory(repoPath(".")),
		cli.WithEnv(env),
		cli.WithDiscardEnvFile,
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

// envOf returns the value of a service's environment variable, "" if unset.
func envOf(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

func hasSecret(s types.ServiceConfig, name string) bool {
	return slices.ContainsFunc(s.Secrets, func(r types.ServiceSecretConfig) bool { return r.Source == name })
}

// mountTarget returns where the service mounts the repository path rel
// (a bind mount), or "".
func mountTarget(s types.ServiceConfig, rel string) string {
	abs, _ := filepath.Abs(repoPath(rel))
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Source == abs {
			return v.Target
		}
	}
	return ""
}

// volumeTarget returns where the service mounts the named volume, or "".
func volumeTarget(s types.ServiceConfig, name string) (target string, readOnly bool) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source == name {
			return v.Target, v.ReadOnly
		}
	}
	return "", false
}

// The services of the stack; the one-shot ones run to completion.
var (
	longRunning = []string{"postgres", "nats", "dovecot", "bouncer", "prometheus", "grafana"}
	oneShot     = []string{"migrate", "seeder"}
)

func TestComposeServices(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, nil)
	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	want := slices.Sorted(slices.Values(append(slices.Clone(longRunning), oneShot...)))
	if !slices.Equal(names, want) {
		t.Fatalf("services = %q, want %q", names, want)
	}

	for _, name := range longRunning {
		s := p.Services[name]
		if s.Restart != "unless-stopped" && s.Restart != "always" {
			t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
		}
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
			t.Errorf("%s: healthcheck %+v, want a test with interval, timeout and retries", name, hc)
			continue
		}
		if hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL" {
			t.Errorf("%s: healthcheck test %q, want CMD or CMD-SHELL", name, hc.Test)
		}
		if hc.Test[0] == "CMD" && hc.Test[1] == "/bouncer" {
			if _, ok := commands[hc.Test[2]]; !ok {
				t.Errorf("%s: healthcheck runs `bouncer %s`, which does not exist", name, hc.Test[2])
			}
		}
	}
	for _, name := range oneShot {
		s := p.Services[name]
		if s.Restart != "no" || s.HealthCheck != nil {
			t.Errorf("%s: restart %q healthcheck %v; a one-shot service wants restart \"no\" and no healthcheck", name, s.Restart, s.HealthCheck)
		}
	}

	// Who waits for whom. A service waited for as healthy has a healthcheck.
	wantDeps := map[string]map[string]string{
		"migrate": {"postgres": types.ServiceConditionHealthy},
		"bouncer": {
			"postgres": types.ServiceConditionHealthy,
			"nats":     types.ServiceConditionHealthy,
			"dovecot":  types.ServiceConditionHealthy,
			"migrate":  types.ServiceConditionCompletedSuccessfully,
		},
		"seeder":  {"dovecot": types.ServiceConditionHealthy},
		"grafana": {"postgres": types.ServiceConditionHealthy, "prometheus": types.ServiceConditionStarted},
	}
	for _, name := range names {
		s := p.Services[name]
		got := map[string]string{}
		for dep, d := range s.DependsOn {
			got[dep] = d.Condition
			if d.Condition == types.ServiceConditionHealthy && p.Services[dep].HealthCheck == nil {
				t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
			if d.Condition == types.ServiceConditionCompletedSuccessfully && !slices.Contains(oneShot, dep) {
				t.Errorf("%s waits for %s to complete, which is not a one-shot service", name, dep)
			}
		}
		w := wantDeps[name]
		if w == nil {
			w = map[string]string{}
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s depends_on = %v, want %v", name, got, w)
		}
	}

	// Pinned images of the versions the notes measured (servers.md).
	images := map[string]*regexp.Regexp{
		"postgres":   regexp.MustCompile(`^postgres:15[.-]`),
		"nats":       regexp.MustCompile(`^nats:2\.15\.\d+-alpine$`),
		"prometheus": regexp.MustCompile(`^prom/prometheus:v3\.\d+\.\d+$`),
		"grafana":    regexp.MustCompile(`^grafana/grafana:\d+\.\d+\.\d+$`),
	}
	for name, re := range images {
		if img := p.Services[name].Image; !re.MatchString(img) {
			t.Errorf("%s: image %q, want a pinned tag matching %v", name, img, re)
		}
	}
	// Published ports are for the operator's machine only.
	for _, name := range names {
		for _, port := range p.Services[name].Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %s published on %q, want 127.0.0.1", name, port.Published, port.HostIP)
			}
		}
	}
}

func TestComposeBuilds(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, nil)
	built := map[string]string{} // image -> Dockerfile
	for name, s := range p.Services {
		if s.Build == nil {
			continue
		}
		df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
		if _, err := os.Stat(df); err != nil {
			t.Errorf("%s: build %s: %v", name, df, err)
		}
		if s.Image == "" {
			t.Errorf("%s: builds an image without naming it", name)
		}
		if prev, ok := built[s.Image]; ok && prev != df {
			t.Errorf("%s: image %s is built from both %s and %s", name, s.Image, prev, df)
		}
		built[s.Image] = df
	}
	for _, name := range []string{"migrate", "bouncer", "seeder"} {
		s := p.Services[name]
		if s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" || !strings.HasSuffix(filepath.ToSlash(filepath.Join(s.Build.Context, s.Build.Dockerfile)), "deploy/Dockerfile") {
			t.Errorf("%s: build %+v, want deploy/Dockerfile from the repository root", name, s.Build)
		}
		if len(s.Command) == 0 {
			t.Errorf("%s: no command", name)
			continue
		}
		if _, ok := commands[s.Command[0]]; !ok {
			t.Errorf("%s: command `bouncer %s` does not exist", name, s.Command[0])
		}
	}
	if s := p.Services["dovecot"]; s.Build == nil || !strings.HasSuffix(filepath.ToSlash(s.Build.Context), "deploy/dovecot") {
		t.Errorf("dovecot: build %+v, want deploy/dovecot", s.Build)
	}
	if got := p.Services["migrate"].Command; !slices.Equal(got, []string{"migrate"}) {
		t.Errorf("migrate: command %q, want [migrate]", got)
	}
	if got := p.Services["bouncer"].Command; !slices.Equal(got, []string{"run"}) {
		t.Errorf("bouncer: command %q, want [run]", got)
	}
}

// TestComposeVolumesAndSecrets checks that every mount has a source and
// that secrets only come from files deploy/gen-secrets writes.
func TestComposeVolumesAndSecrets(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, nil)
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s: volume %q is not declared", name, v.Source)
				}
			case types.VolumeTypeBind:
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: bind mount: %v", name, err)
				}
				if !v.ReadOnly {
					t.Errorf("%s: bind mount of %s is writable, want :ro", name, v.Source)
				}
			default:
				t.Errorf("%s: mount of type %s", name, v.Type)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := p.Secrets[sec.Source]; !ok {
				t.Errorf("%s: secret %q is not declared", name, sec.Source)
			}
		}
	}
	for _, vol := range []struct{ service, volume, target string }{
		{"postgres", "postgres-data", "/var/lib/postgresql/data"},
		{"nats", "nats-data", "/data"},
		{"dovecot", "dovecot-mail", "/srv/mail"},
		{"prometheus", "prometheus-data", "/prometheus"},
		{"grafana", "grafana-data", "/var/lib/grafana"},
	} {
		if got, _ := volumeTarget(p.Services[vol.service], vol.volume); got != vol.target {
			t.Errorf("%s: volume %s at %q, want %q (state survives a restart)", vol.service, vol.volume, got, vol.target)
		}
	}
	if got := p.Services["nats"].Command; !slices.Equal(got[:3], []string{"-js", "-sd", "/data"}) {
		t.Errorf("nats: command %q, want JetStream with its store on /data", got)
	}

	// The secrets' files are what deploy/gen-secrets writes, in secrets/.
	dir := t.TempDir()
	out, err := exec.CommandContext(t.Context(), "sh", repoPath("deploy/gen-secrets"), dir).CombinedOutput()
	if err != nil {
		t.Fatalf("deploy/gen-secrets: %v\n%s", err, out)
	}
	written := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		written[e.Name()] = true
	}
	secretsDir, _ := filepath.Abs(repoPath("secrets"))
	for name, sec := range p.Secrets {
		if sec.File == "" || filepath.Dir(sec.File) != secretsDir {
			t.Errorf("secret %s: file %q, want one in %s", name, sec.File, secretsDir)
			continue
		}
		if !written[filepath.Base(sec.File)] {
			t.Errorf("secret %s: deploy/gen-secrets does not write %s (it wrote %v)", name, filepath.Base(sec.File), written)
		}
	}
	for f := range written {
		if _, ok := p.Secrets[f]; !ok {
			t.Errorf("deploy/gen-secrets writes %s, which no compose secret reads", f)
		}
	}
	// The pgpass file holds the database password for DATABASE_URL's user.
	pgpass, _ := os.ReadFile(filepath.Join(dir, "pgpass"))
	pw, _ := os.ReadFile(filepath.Join(dir, "postgres_password"))
	if want := "*:*:*:" + envOf(p.Services["postgres"], "POSTGRES_USER") + ":" + string(pw); len(pw) < 20 || string(pgpass) != want {
		t.Errorf("pgpass = %q, want %q with a password of 20+ characters", pgpass, want)
	}
	// bouncer listens beyond loopback, so its explain page needs a token
	// from a secret file, long enough for the page to accept it.
	if tf := envOf(p.Services["bouncer"], "BOUNCER_HTTP_TOKEN_FILE"); tf != "/run/secrets/http_token" {
		t.Errorf("bouncer: BOUNCER_HTTP_TOKEN_FILE %q, want /run/secrets/http_token", tf)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "http_token"))
	addr := envOf(p.Services["bouncer"], "BOUNCER_HTTP_ADDR")
	if err := explain.CheckListen(addr, string(tok)); err != nil || len(tok) < explain.MinTokenLength {
		t.Errorf("explain.CheckListen(%s, the generated token of %d bytes) = %v, want it accepted", addr, len(tok), err)
	}
	if explain.CheckListen(addr, "") == nil {
		t.Errorf("explain.CheckListen(%s, no token) accepted: then the token secret is not needed", addr)
	}
	// Running it again keeps the passwords (the database volume remembers them).
	if out, err := exec.CommandContext(t.Context(), "sh", repoPath("deploy/gen-secrets"), dir).CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("deploy/gen-secrets again = %q, %v; want nothing written", out, err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "postgres_password")); string(again) != string(pw) {
		t.Errorf("deploy/gen-secrets again changed postgres_password")
	}
	for _, ignore := range []string{".gitignore", ".dockerignore"} {
		b, err := os.ReadFile(repoPath(ignore))
		if err != nil || !regexp.MustCompile(`(?m)^/?secrets/?$`).Match(b) {
			t.Errorf("%s does not list secrets/ (%v)", ignore, err)
		}
	}
}

// secretWord matches an environment variable name that holds a secret.
var secretWord = regexp.MustCompile(`PASSWORD|PASSWD|SECRET|TOKEN|_KEY$|CREDENTIAL`)

// TestComposeNoSecretLiterals checks that no service is given a secret in
// its environment: only the paths of secret files.
func TestComposeNoSecretLiterals(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, nil)
	for name, s := range p.Services {
		for k, v := range s.Environment {
			if v == nil {
				continue
			}
			val := *v
			if secretWord.MatchString(k) {
				if !strings.HasSuffix(k, "_FILE") {
					t.Errorf("%s: %s is set in the environment; give a secret file (%s_FILE) instead", name, k, k)
					continue
				}
				sec, ok := strings.CutPrefix(val, "/run/secrets/")
				if !ok || !hasSecret(s, sec) {
					t.Errorf("%s: %s=%q is not one of the service's secrets (/run/secrets/NAME)", name, k, val)
				}
			}
			// A URL with a password in it.
			for _, word := range strings.Fields(val) {
				if u, err := url.Parse(word); err == nil && u.User != nil {
					if _, set := u.User.Password(); set {
						t.Errorf("%s: %s holds a URL with a password", name, k)
					}
				}
			}
			// passfile= and other file references name the service's secrets.
			for _, m := range regexp.MustCompile(`/run/secrets/([A-Za-z0-9_.-]+)`).FindAllStringSubmatch(val, -1) {
				if !hasSecret(s, m[1]) {
					t.Errorf("%s: %s refers to /run/secrets/%s, not one of its secrets", name, k, m[1])
				}
			}
		}
	}
	// The bouncer services' database password comes from the pgpass secret.
	for _, name := range []string{"migrate", "bouncer"} {
		u, err := url.Parse(envOf(p.Services[name], "DATABASE_URL"))
		if err != nil || u.Query().Get("passfile") != "/run/secrets/pgpass" || u.User.Username() != envOf(p.Services["postgres"], "POSTGRES_USER") {
			t.Errorf("%s: DATABASE_URL %v (%v), want the postgres service's user with passfile=/run/secrets/pgpass", name, u, err)
		}
		if u != nil && (u.Host != "postgres:5432" || strings.TrimPrefix(u.Path, "/") != envOf(p.Services["postgres"], "POSTGRES_DB")) {
			t.Errorf("%s: DATABASE_URL %v, want the postgres service's database", name, u)
		}
	}
}

// TestComposeBouncerEnvironment checks the bouncer, migrate and seeder
// services' environment against what the binary reads (worker.EnvVars), and the IMAP, NATS
// and HTTP settings against the services they point at.
func TestComposeBouncerEnvironment(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, nil)
	known := worker.EnvNames()
	for _, name := range []string{"bouncer", "migrate", "seeder"} {
		for k := range p.Services[name].Environment {
			if !slices.Contains(known, k) {
				t.Errorf("%s: environment variable %s is not one bouncer reads (%v)", name, k, known)
			}
		}
	}
	b := p.Services["bouncer"]
	for _, k := range []string{"DATABASE_URL", "NATS_URL", "BOUNCER_IMAP_URL", "BOUNCER_HTTP_ADDR", "BOUNCER_IMAP_PASSWORD_FILE", "BOUNCER_IMAP_CA_FILE"} {
		if envOf(b, k) == "" {
			t.Errorf("bouncer: %s is not set", k)
		}
	}

	// NATS: the nats service's client port.
	if u, err := url.Parse(envOf(b, "NATS_URL")); err != nil || u.Scheme != "nats" || u.Host != "nats:4222" {
		t.Errorf("bouncer: NATS_URL %q, want nats://nats:4222", envOf(b, "NATS_URL"))
	}

	// IMAP: TLS to the dovecot service, as its bounce user, trusting the
	// certificate dovecot exports on the shared volume.
	d := p.Services["dovecot"]
	u, err := url.Parse(envOf(b, "BOUNCER_IMAP_URL"))
	if err != nil {
		t.Fatalf("bouncer: BOUNCER_IMAP_URL: %v", err)
	}
	if u.Scheme != "imaps" || u.Hostname() != "dovecot" || u.Port() != "993" || u.User.Username() != envOf(d, "IMAP_BOUNCE_USER") {
		t.Errorf("bouncer: BOUNCER_IMAP_URL %s, want imaps://%s@dovecot:993/...", u, envOf(d, "IMAP_BOUNCE_USER"))
	}
	if !slices.Contains(strings.Split(envOf(d, "IMAP_TLS_NAMES"), ","), u.Hostname()) {
		t.Errorf("dovecot: IMAP_TLS_NAMES %q does not name %s, the host bouncer verifies", envOf(d, "IMAP_TLS_NAMES"), u.Hostname())
	}
	if envOf(b, "BOUNCER_IMAP_PASSWORD_FILE") != envOf(d, "IMAP_BOUNCE_PASSWORD_FILE") {
		t.Errorf("bouncer reads the IMAP password from %s, dovecot from %s", envOf(b, "BOUNCER_IMAP_PASSWORD_FILE"), envOf(d, "IMAP_BOUNCE_PASSWORD_FILE"))
	}
	caDir, ro := volumeTarget(d, "imap-ca")
	if caDir == "" || ro {
		t.Errorf("dovecot: the imap-ca volume is at %q (read-only %v), want it writable", caDir, ro)
	}
	for _, name := range []string{"bouncer", "seeder"} {
		s := p.Services[name]
		dir, ro := volumeTarget(s, "imap-ca")
		if dir == "" || !ro || envOf(s, "BOUNCER_IMAP_CA_FILE") != dir+"/cert.pem" {
			t.Errorf("%s: BOUNCER_IMAP_CA_FILE %q, imap-ca volume at %q (read-only %v); want the volume's cert.pem, read-only",
				name, envOf(s, "BOUNCER_IMAP_CA_FILE"), dir, ro)
		}
		if envOf(s, "BOUNCER_IMAP_PASSWORD_FILE") != envOf(b, "BOUNCER_IMAP_PASSWORD_FILE") {
			t.Errorf("%s: IMAP password file %q, want bouncer's", name, envOf(s, "BOUNCER_IMAP_PASSWORD_FILE"))
		}
	}
	entry, err := os.ReadFile(repoPath("deploy/dovecot/entrypoint.sh"))
	if err != nil || !strings.Contains(string(entry), "ca_export=${IMAP_CA_EXPORT_DIR:-"+caDir+"}") {
		t.Errorf("deploy/dovecot/entrypoint.sh does not export the certificate to %s (%v)", caDir, err)
	}

	// The seeder APPENDs the sample bounces to the mailbox bouncer works.
	s := p.Services["seeder"]
	if want := []string{"inject", "--imap", envOf(b, "BOUNCER_IMAP_URL"), "/seed"}; !slices.Equal(s.Command, want) {
		t.Errorf("seeder: command %q, want %q", s.Command, want)
	}
	if got := mountTarget(s, "classify/testdata"); got != "/seed" {
		t.Errorf("seeder: classify/testdata is mounted at %q, want /seed", got)
	}
	if emls, _ := filepath.Glob(repoPath("classify/testdata/*.eml")); len(emls) == 0 {
		t.Errorf("classify/testdata holds no .eml file to seed")
	}

	// Prometheus scrapes the port bouncer listens on.
	_, port, err := net.SplitHostPort(envOf(b, "BOUNCER_HTTP_ADDR"))
	if err != nil {
		t.Fatalf("bouncer: BOUNCER_HTTP_ADDR: %v", err)
	}
	prom, err := os.ReadFile(repoPath("deploy/prometheus/prometheus.yml"))
	if err != nil || !strings.Contains(string(prom), `"bouncer:`+port+`"`) {
		t.Errorf("deploy/prometheus/prometheus.yml does not scrape bouncer:%s (%v)", port, err)
	}
	if got := mountTarget(p.Services["prometheus"], "deploy/prometheus"); got != "/etc/prometheus" {
		t.Errorf("prometheus: deploy/prometheus mounted at %q, want /etc/prometheus", got)
	}
}

// TestComposeInterpolation checks that the environment reaches the services:
// an operator's settings replace the defaults, in every service that uses them.
func TestComposeInterpolation(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, []string{
		"BOUNCER_IMAP_URL=imaps://bounces@mail.example.org/INBOX",
		"NATS_URL=nats://nats.example.org:4222",
		"BOUNCER_LOG_LEVEL=debug",
		"GRAFANA_HOST_PORT=13000",
		"BOUNCER_IMAGE=registry.example.org/bouncer:1.2.3",
	})
	b := p.Services["bouncer"]
	if envOf(b, "BOUNCER_IMAP_URL") != "imaps://bounces@mail.example.org/INBOX" || envOf(b, "NATS_URL") != "nats://nats.example.org:4222" || envOf(b, "BOUNCER_LOG_LEVEL") != "debug" {
		t.Errorf("bouncer environment = %v, want the operator's", b.Environment)
	}
	if got := p.Services["seeder"].Command; !slices.Contains(got, "imaps://bounces@mail.example.org/INBOX") {
		t.Errorf("seeder command = %q, want the operator's IMAP URL", got)
	}
	for _, name := range []string{"bouncer", "migrate", "seeder"} {
		if img := p.Services[name].Image; img != "registry.example.org/bouncer:1.2.3" {
			t.Errorf("%s: image %q, want BOUNCER_IMAGE", name, img)
		}
	}
	if ports := p.Services["grafana"].Ports; len(ports) != 1 || ports[0].Published != "13000" {
		t.Errorf("grafana ports = %+v, want 13000 published", ports)
	}
}

// dockerInstruction is one instruction of a Dockerfile.
type dockerInstruction struct {
	cmd  string // upper case
	args string
	line int
}

// parseDockerfile splits a Dockerfile into instructions: comments dropped,
// backslash continuations joined (the default escape character).
func parseDockerfile(t *testing.T, path string) []dockerInstruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dockerInstruction
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " "), start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: ends inside a continued line", path)
	}
	return out
}

// jsonArgs decodes the exec (JSON array) form of CMD, ENTRYPOINT...
func jsonArgs(s string) ([]string, bool) {
	var v []string
	return v, json.Unmarshal([]byte(s), &v) == nil
}

func TestBouncerDockerfile(t *testing.T) {
	t.Parallel()
	ins := parseDockerfile(t, repoPath("deploy/Dockerfile"))
	var stages []int // index of each FROM
	for i, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, i)
		}
		switch in.cmd {
		case "FROM", "ARG", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "ENTRYPOINT", "CMD", "ENV", "LABEL", "HEALTHCHECK":
		default:
			t.Errorf("deploy/Dockerfile:%d: unexpected instruction %s", in.line, in.cmd)
		}
	}
	if len(stages) != 2 {
		t.Fatalf("deploy/Dockerfile: %d stages, want a builder and the final image", len(stages))
	}
	builder, final := ins[stages[0]:stages[1]], ins[stages[1]:]
	if !regexp.MustCompile(`^(--platform=\S+ )?golang:\S+ AS build$`).MatchString(builder[0].args) {
		t.Errorf("builder stage FROM %q, want golang:... AS build", builder[0].args)
	}
	var build string
	for _, in := range builder {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = in.args
		}
	}
	for _, want := range []string{"--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/root/.cache/go-build",
		"CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`, "./cmd/bouncer"} {
		if !strings.Contains(build, want) {
			t.Errorf("deploy/Dockerfile: the go build step %q lacks %s", build, want)
		}
	}
	if !regexp.MustCompile(`^(gcr\.io/distroless/static\S*|scratch)$`).MatchString(final[0].args) {
		t.Errorf("final stage FROM %q, want distroless static (or scratch)", final[0].args)
	}
	got := map[string]string{}
	for _, in := range final {
		got[in.cmd] = in.args
	}
	if u := got["USER"]; u == "" || u == "root" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:") {
		t.Errorf("final stage USER %q, want a non-root user", u)
	}
	if args, ok := jsonArgs(got["ENTRYPOINT"]); !ok || !slices.Equal(args, []string{"/bouncer"}) {
		t.Errorf("ENTRYPOINT %s, want [\"/bouncer\"]", got["ENTRYPOINT"])
	}
	if args, ok := jsonArgs(got["CMD"]); !ok || !slices.Equal(args, []string{"run"}) {
		t.Errorf("CMD %s, want [\"run\"]", got["CMD"])
	}
	// No shell in the image: the binary probes itself.
	hc, probe, _ := strings.Cut(got["HEALTHCHECK"], "CMD ")
	if args, ok := jsonArgs(probe); !ok || len(args) < 2 || args[0] != "/bouncer" || args[1] != "healthcheck" || !strings.Contains(hc, "--interval=") {
		t.Errorf("HEALTHCHECK %q, want an interval and CMD [\"/bouncer\", \"healthcheck\"]", got["HEALTHCHECK"])
	} else if _, ok := commands[args[1]]; !ok {
		t.Errorf("HEALTHCHECK runs `bouncer %s`, which does not exist", args[1])
	}
	if got["COPY"] != "--from=build /out/bouncer /bouncer" || !strings.Contains(build, "-o /out/bouncer") {
		t.Errorf("final stage COPY %q and build %q: want the built /out/bouncer copied to /bouncer", got["COPY"], build)
	}
	// The build context is the repository root: migrations (embedded) must
	// be in it, personal data and secrets must not.
	ignore, err := os.ReadFile(repoPath(".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var ignored []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored = append(ignored, strings.Trim(l, "/"))
		}
	}
	for _, must := range []string{".git", "secrets", "classify/testdata/private"} {
		if !slices.Contains(ignored, must) {
			t.Errorf(".dockerignore does not exclude %s", must)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "cmd", "classify", "store", "migrations"} {
		if slices.Contains(ignored, keep) {
			t.Errorf(".dockerignore excludes %s, which the build needs", keep)
		}
	}
}

func TestDovecotDockerfile(t *testing.T) {
	t.Parallel()
	dir := repoPath("deploy/dovecot")
	ins := parseDockerfile(t, filepath.Join(dir, "Dockerfile"))
	got := map[string][]string{}
	for _, in := range ins {
		got[in.cmd] = append(got[in.cmd], in.args)
		if in.cmd == "COPY" {
			f := strings.Fields(in.args)
			for _, src := range f[:len(f)-1] {
				if strings.HasPrefix(src, "--") {
					continue
				}
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					t.Errorf("deploy/dovecot/Dockerfile:%d: COPY %s: %v", in.line, src, err)
				}
			}
		}
		if in.cmd == "ENV" && secretWord.MatchString(in.args) {
			t.Errorf("deploy/dovecot/Dockerfile:%d: ENV %s: no secret in the image", in.line, in.args)
		}
	}
	if len(got["FROM"]) != 1 || got["FROM"][0] != "debian:bookworm-slim" {
		t.Errorf("FROM %q, want debian:bookworm-slim (Dovecot 2.3: the config is not 2.4's)", got["FROM"])
	}
	if !slices.ContainsFunc(got["RUN"], func(s string) bool { return strings.Contains(s, "dovecot-imapd") && strings.Contains(s, "openssl") }) {
		t.Errorf("RUN %q does not install dovecot-imapd and openssl", got["RUN"])
	}
	if hc := strings.Join(got["HEALTHCHECK"], ""); !strings.Contains(hc, `CMD ["/usr/local/bin/dovecot-entrypoint", "healthcheck"]`) {
		t.Errorf("HEALTHCHECK %q, want the entrypoint's healthcheck", hc)
	}
	if ep, ok := jsonArgs(strings.Join(got["ENTRYPOINT"], "")); !ok || !slices.Equal(ep, []string{"/usr/local/bin/dovecot-entrypoint"}) {
		t.Errorf("ENTRYPOINT %q, want [/usr/local/bin/dovecot-entrypoint]", got["ENTRYPOINT"])
	}
	// The compose healthcheck runs what the image installs.
	p := loadCompose(t, nil)
	if hc := p.Services["dovecot"].HealthCheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/usr/local/bin/dovecot-entrypoint", "healthcheck"}) {
		t.Errorf("dovecot compose healthcheck %+v, want the image's entrypoint healthcheck", hc)
	}
	for _, script := range []string{"deploy/dovecot/entrypoint.sh", "deploy/postgres/initdb/10-readonly-login.sh", "deploy/gen-secrets"} {
		st, err := os.Stat(repoPath(script))
		if err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s: not executable (%v)", script, err)
			continue
		}
		shell := "bash"
		if b, _ := os.ReadFile(repoPath(script)); strings.HasPrefix(string(b), "#!/bin/sh") {
			shell = "sh"
		}
		if out, err := exec.CommandContext(t.Context(), shell, "-n", repoPath(script)).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", shell, script, err, out)
		}
	}
}
