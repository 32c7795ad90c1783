package main

// Tests of deploy/grafana and deploy/postgres: the provisioning files parse
// and agree with each other and with docker-compose.yml, and every SQL query
// of the provisioned dashboard runs, and returns rows, on a migrated database
// holding classified sample bounces, through a login made by the same init
// script as in the compose stack (a member of the read-only role).

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"go.yaml.in/yaml/v3"

	"github.com/bouncer-mail/bouncer/classify"
	"github.com/bouncer-mail/bouncer/store"
	"github.com/bouncer-mail/bouncer/store/storetest"
)

// The uids of the provisioned datasources, as dashboards reference them.
const (
	postgresDatasourceUID   = "bouncer-postgres"
	prometheusDatasourceUID = "bouncer-prometheus"
)

// dashboard is the part of a Grafana dashboard JSON the tests read.
type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []target    `json:"targets"`
	Panels     []panel     `json:"panels"` // a collapsed row's panels
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string      `json:"refId"`
	Datasource *datasource `json:"datasource"`
	Format     string      `json:"format"`
	RawQuery   bool        `json:"rawQuery"`
	RawSQL     string      `json:"rawSql"`
	Expr       string      `json:"expr"`
}

// dashboardTarget is one query of a dashboard, with where it is.
type dashboardTarget struct {
	file, panel string
	target
}

func (q dashboardTarget) String() string {
	return fmt.Sprintf("%s: panel %q, query %s", q.file, q.panel, q.RefID)
}

// dashboardFiles returns the dashboard JSON files the provisioning loads.
func dashboardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(repoPath("deploy/grafana/dashboards/*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard in deploy/grafana/dashboards (%v)", err)
	}
	return files
}

// dashboardTargets reads every query of every provisioned dashboard.
func dashboardTargets(t *testing.T) []dashboardTarget {
	t.Helper()
	var out []dashboardTarget
	for _, f := range dashboardFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				for _, tg := range p.Targets {
					if tg.Datasource == nil {
						tg.Datasource = p.Datasource
					}
					out = append(out, dashboardTarget{filepath.Base(f), p.Title, tg})
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
	}
	return out
}

func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	// Datasources: the uids the dashboards use, the read-only login of the
	// compose file, the password from the compose secret.
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name           string            `yaml:"name"`
			UID            string            `yaml:"uid"`
			Type           string            `yaml:"type"`
			URL            string            `yaml:"url"`
			User           string            `yaml:"user"`
			JSONData       map[string]any    `yaml:"jsonData"`
			SecureJSONData map[string]string `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, "deploy/grafana/provisioning/datasources/bouncer.yml", &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 2 {
		t.Fatalf("datasources: apiVersion %d, %d datasources; want 1 and 2", ds.APIVersion, len(ds.Datasources))
	}
	project := loadCompose(t, nil)
	grafana, postgres := project.Services["grafana"], project.Services["postgres"]
	types := map[string]string{}
	for _, d := range ds.Datasources {
		types[d.UID] = d.Type
		switch d.UID {
		case postgresDatasourceUID:
			if d.Type != "grafana-postgresql-datasource" {
				t.Errorf("datasource %s: type %q, want grafana-postgresql-datasource", d.UID, d.Type)
			}
			if d.URL != "postgres:5432" || d.JSONData["database"] != envOf(postgres, "POSTGRES_DB") {
				t.Errorf("datasource %s: url %q database %v; want postgres:5432 and the compose POSTGRES_DB %q",
					d.UID, d.URL, d.JSONData["database"], envOf(postgres, "POSTGRES_DB"))
			}
			// The user is Grafana's environment variable, the same login
			// the postgres init script creates.
			if d.User != "${GRAFANA_DB_USER}" {
				t.Errorf("datasource %s: user %q, want ${GRAFANA_DB_USER}", d.UID, d.User)
			}
			if g, p := envOf(grafana, "GRAFANA_DB_USER"), envOf(postgres, "GRAFANA_DB_USER"); g == "" || g != p {
				t.Errorf("GRAFANA_DB_USER: grafana %q, postgres %q; want the same login", g, p)
			}
			pw := d.SecureJSONData["password"]
			m := regexp.MustCompile(`^\$__file\{/run/secrets/([a-z_]+)\}$`).FindStringSubmatch(pw)
			if m == nil {
				t.Errorf("datasource %s: password %q, want $__file{/run/secrets/NAME} (no literal)", d.UID, pw)
			} else if !hasSecret(grafana, m[1]) || !hasSecret(postgres, m[1]) {
				t.Errorf("datasource %s: secret %s is not given to both grafana and postgres", d.UID, m[1])
			} else if "/run/secrets/"+m[1] != envOf(postgres, "GRAFANA_DB_PASSWORD_FILE") {
				t.Errorf("datasource %s: password file %s, but postgres sets the login's from %s", d.UID, m[1], envOf(postgres, "GRAFANA_DB_PASSWORD_FILE"))
			}
		case prometheusDatasourceUID:
			if d.Type != "prometheus" || d.URL != "http://prometheus:9090" {
				t.Errorf("datasource %s: %s at %s, want prometheus at http://prometheus:9090", d.UID, d.Type, d.URL)
			}
		default:
			t.Errorf("datasource %q: unexpected", d.UID)
		}
	}

	// The dashboard provider reads the directory compose mounts.
	var prov struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "deploy/grafana/provisioning/dashboards/bouncer.yml", &prov)
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers = %+v, want one of type file", prov.Providers)
	}
	if got := mountTarget(grafana, "deploy/grafana/dashboards"); got != prov.Providers[0].Options.Path {
		t.Errorf("dashboards are mounted at %q, the provider reads %q", got, prov.Providers[0].Options.Path)
	}
	if got := mountTarget(grafana, "deploy/grafana/provisioning"); got != "/etc/grafana/provisioning" {
		t.Errorf("provisioning is mounted at %q, want /etc/grafana/provisioning", got)
	}
	home := envOf(grafana, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
	if home != prov.Providers[0].Options.Path+"/bouncer.json" {
		t.Errorf("home dashboard %q is not bouncer.json in the provider's path", home)
	}

	// Every query names a provisioned datasource of the right type, and the
	// dashboard has what issue 5 asks for.
	targets := dashboardTargets(t)
	var titles []string
	for _, q := range targets {
		titles = append(titles, strings.ToLower(q.panel))
		if q.Datasource == nil || types[q.Datasource.UID] == "" || types[q.Datasource.UID] != q.Datasource.Type {
			t.Errorf("%v: datasource %+v is not a provisioned one (%v)", q, q.Datasource, types)
			continue
		}
		switch q.Datasource.UID {
		case postgresDatasourceUID:
			if !q.RawQuery || strings.TrimSpace(q.RawSQL) == "" || (q.Format != "table" && q.Format != "time_series") {
				t.Errorf("%v: want a raw SQL query of format table or time_series, got rawQuery %v format %q", q, q.RawQuery, q.Format)
			}
		case prometheusDatasourceUID:
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("%v: empty PromQL expression", q)
			}
		}
	}
	for _, want := range []string{"bounce rate", "by category", "553", "domains", "suppressions per day", "outbox"} {
		if !slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no dashboard panel about %q (panels: %q)", want, titles)
		}
	}
}

// grafanaMacro matches the Grafana SQL macros ($__name or $__name(args)).
var grafanaMacro = regexp.MustCompile(`\$__([A-Za-z]+)(?:\(([^()]*)\))?`)

// expandGrafanaMacros does what Grafana's PostgreSQL datasource does to a
// raw query before sending it (pkg/tsdb/grafana-postgresql-datasource,
// macros.go, TimescaleDB off), for the time range [from, to]. A macro it
// does not know is an error, so a new one in the dashboard gets taught here.
func expandGrafanaMacros(sql string, from, to time.Time) (string, error) {
	var errs []string
	ts := func(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339) + "'" }
	out := grafanaMacro.ReplaceAllStringFunc(sql, func(m string) string {
		sub := grafanaMacro.FindStringSubmatch(m)
		name, rawArgs := sub[1], sub[2]
		var args []string
		for _, a := range strings.Split(rawArgs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				args = append(args, a)
			}
		}
		need := func(n int) bool {
			if len(args) < n {
				errs = append(errs, fmt.Sprintf("%s needs %d argument(s)", m, n))
				return false
			}
			return true
		}
		switch name {
		case "time":
			if need(1) {
				return args[0] + ` AS "time"`
			}
		case "timeFilter":
			if need(1) {
				return fmt.Sprintf("%s BETWEEN %s AND %s", args[0], ts(from), ts(to))
			}
		case "timeFrom":
			return ts(from)
		case "timeTo":
			return ts(to)
		case "timeGroup", "timeGroupAlias":
			if !need(2) {
				return m
			}
			d, err := grafanaInterval(strings.Trim(args[1], `'"`))
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", m, err))
				return m
			}
			s := fmt.Sprintf("floor(extract(epoch from %s)/%d)*%d", args[0], d, d)
			if name == "timeGroupAlias" {
				s += ` AS "time"`
			}
			return s
		default:
			errs = append(errs, "unknown macro "+m)
		}
		return m
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if strings.Contains(out, "$") && regexp.MustCompile(`\$[A-Za-z{]`).MatchString(out) {
		return "", fmt.Errorf("a template variable is left in %q", out)
	}
	return out, nil
}

// grafanaInterval parses an interval like 5m, 1h or 1d into seconds.
func grafanaInterval(s string) (int64, error) {
	if strings.HasSuffix(s, "d") {
		d, err := time.ParseDuration(strings.TrimSuffix(s, "d") + "h")
		return int64(d.Seconds()) * 24, err
	}
	d, err := time.ParseDuration(s)
	return int64(d.Seconds()), err
}

func TestExpandGrafanaMacros(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(48 * time.Hour)
	for _, c := range []struct{ in, want string }{
		{"WHERE $__timeFilter(day)", "WHERE day BETWEEN '2026-11-01T00:00:00Z' AND '2026-11-03T00:00:00Z'"},
		{"SELECT $__timeGroupAlias(c.sent_at, '1d')", `SELECT floor(extract(epoch from c.sent_at)/86400)*86400 AS "time"`},
		{"SELECT $__timeGroup(x, '5m'), $__time(y)", `SELECT floor(extract(epoch from x)/300)*300, y AS "time"`},
		{"$__timeFrom() < $__timeTo()", "'2026-11-01T00:00:00Z' < '2026-11-03T00:00:00Z'"},
	} {
		got, err := expandGrafanaMacros(c.in, from, to)
		if err != nil || got != c.want {
			t.Errorf("expandGrafanaMacros(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"$__unixEpochFilter(t)", "WHERE campaign = '$campaign'", "$__timeGroup(x)"} {
		if got, err := expandGrafanaMacros(bad, from, to); err == nil {
			t.Errorf("expandGrafanaMacros(%q) = %q, want an error", bad, got)
		}
	}
}

// seedDashboardData saves every sample bounce of classify/testdata, as
// classified, arriving over the last days, plus what the sending platform
// would write (campaign_sends), and returns the time range that covers it.
func seedDashboardData(t *testing.T, url string) (from, to time.Time) {
	t.Helper()
	ctx := t.Context()
	db, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	files, err := filepath.Glob(repoPath("classify/testdata/*.eml"))
	if err != nil || len(files) < 10 {
		t.Fatalf("sample bounces: %d files (%v), want the classify corpus", len(files), err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var msgs []store.Message
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := store.Message{
			Mailbox: "bounces@dovecot:993/INBOX", UIDValidity: 1, UID: uint32(i + 1),
			SHA256: sha256.Sum256(raw), Size: len(raw),
			InternalDate: now.Add(-time.Duration(i*7) * time.Hour), // over ~11 days
		}
		rep, err := classify.Classify(raw)
		if err != nil {
			m.ParseError = err.Error()
		} else {
			m.Report, m.MessageID = rep, rep.MessageID
		}
		msgs = append(msgs, m)
	}
	res, err := db.SaveBatch(ctx, msgs)
	if err != nil {
		t.Fatalf("SaveBatch(samples): %v", err)
	}
	if res.Bounces == 0 || res.Suppressions == 0 || res.Events == 0 {
		t.Fatalf("SaveBatch(samples) = %+v, want bounces, suppressions and events", res)
	}
	// Undo one suppression, as a person would, so that removals show too.
	var addr string
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT address FROM suppressions WHERE list_id = '' ORDER BY id LIMIT 1`).Scan(&addr); err != nil {
		t.Fatalf("no global suppression from the samples: %v", err)
	}
	if _, err := db.Unsuppress(ctx, addr, "", "test", "dashboard test"); err != nil {
		t.Fatal(err)
	}
	// The sending platform's counts, for every campaign that bounced, sent
	// a day before the first bounce; and one campaign with no bounce.
	_, err = conn.Exec(ctx, `
INSERT INTO campaign_sends (campaign_id, list_id, sent, sent_at)
SELECT campaign_id, list_id, 1000, min(occurred_at) - interval '1 day'
FROM bounces WHERE campaign_id <> '' GROUP BY campaign_id, list_id
UNION ALL SELECT 'cmp-quiet', 'news', 500, now() - interval '2 days'`)
	if err != nil {
		t.Fatal(err)
	}
	return now.Add(-30 * 24 * time.Hour), now.Add(time.Hour)
}

// readonlyLogin runs deploy/postgres/initdb/10-readonly-login.sh as the
// postgres image runs it (POSTGRES_USER on POSTGRES_DB), for a login of
// this test's own, and returns a connection as that login.
func readonlyLogin(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := t.Context()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	login := "bt_grafana_" + hex.EncodeToString(rnd[:])
	pw := "pw-" + hex.EncodeToString(rnd[:])
	pwFile := filepath.Join(t.TempDir(), "grafana_db_password")
	if err := os.WriteFile(pwFile, []byte(pw), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop role %s: %v", login, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, `DROP ROLE IF EXISTS `+pgx.Identifier{login}.Sanitize()); err != nil {
			t.Errorf("drop role %s: %v", login, err)
		}
	})
	script := repoPath("deploy/postgres/initdb/10-readonly-login.sh")
	runScript := func(env ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "bash", script)
		cmd.Env = append(os.Environ(), env...)
		return cmd.CombinedOutput()
	}
	// psql takes the connection URL as its --dbname; the URL's user wins
	// over --username.
	env := []string{"POSTGRES_USER=" + cfg.User, "POSTGRES_DB=" + url,
		"GRAFANA_DB_USER=" + login, "GRAFANA_DB_PASSWORD_FILE=" + pwFile, "PGCONNECT_TIMEOUT=10"}
	if out, err := runScript(env...); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	// Again: it must not fail where the roles exist (a restored volume).
	if out, err := runScript(env...); err != nil {
		t.Fatalf("%s (again): %v\n%s", script, err, out)
	}
	if out, err := runScript(env[0], env[1], env[2], "GRAFANA_DB_PASSWORD_FILE="+pwFile+".missing"); err == nil {
		t.Errorf("%s with a missing password file succeeded, want a refusal\n%s", script, out)
	}

	lc := cfg.Copy()
	lc.User, lc.Password = login, pw
	conn, err := pgx.ConnectConfig(ctx, lc)
	if err != nil {
		t.Fatalf("connect as %s: %v", login, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestDashboardQueries(t *testing.T) {
	t.Parallel()
	url := storetest.Migrated(t)
	from, to := seedDashboardData(t, url)
	conn := readonlyLogin(t, url)
	ctx := t.Context()

	// The login is what the datasource gets: read-only, not a superuser,
	// allowed to read through bouncer_readonly only.
	var super bool
	var ro, member string
	err := conn.QueryRow(ctx, `SELECT rolsuper, current_setting('default_transaction_read_only'),
		pg_has_role(current_user, 'bouncer_readonly', 'member')::text FROM pg_roles WHERE rolname = current_user`).Scan(&super, &ro, &member)
	if err != nil || super || ro != "on" || member != "true" {
		t.Fatalf("login: superuser %v, read-only %q, member of bouncer_readonly %q (%v); want false, on, true", super, ro, member, err)
	}
	if _, err := conn.Exec(ctx, `SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM campaign_sends`); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("DELETE as the dashboards' login = %v, want permission denied", err)
	}
	if _, err := conn.Exec(ctx, `SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`); err != nil {
		t.Fatal(err)
	}

	n := 0
	for _, q := range dashboardTargets(t) {
		if q.Datasource == nil || q.Datasource.UID != postgresDatasourceUID {
			continue
		}
		n++
		sql, err := expandGrafanaMacros(q.RawSQL, from, to)
		if err != nil {
			t.Errorf("%v: %v", q, err)
			continue
		}
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			t.Errorf("%v: %v\n%s", q, err, sql)
			continue
		}
		cols := rows.FieldDescriptions()
		var times []float64
		var first []any
		count := 0
		for rows.Next() {
			count++
			vals, err := rows.Values()
			if err != nil {
				t.Errorf("%v: row %d: %v", q, count, err)
				break
			}
			if count == 1 {
				first = vals
			}
			if q.Format == "time_series" && len(vals) > 0 {
				switch v := vals[0].(type) {
				case time.Time:
					times = append(times, float64(v.Unix()))
				case float64:
					times = append(times, v)
				default:
					t.Errorf("%v: time column is %T, want a timestamp or epoch seconds", q, vals[0])
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%v: %v\n%s", q, err, sql)
			continue
		}
		if count == 0 {
			t.Errorf("%v: no row on the seeded database\n%s", q, sql)
		}
		// A single-row table is a stat: on this data none of its numbers is 0.
		if count == 1 && q.Format == "table" {
			for i, v := range first {
				if isZero(v) {
					t.Errorf("%v: %s = %v on the seeded database, want a count above 0", q, cols[i].Name, v)
				}
			}
		}
		t.Logf("%v: %d row(s), columns %v", q, count, colNames(cols))
		if q.Format == "time_series" {
			if len(cols) < 2 || cols[0].Name != "time" {
				t.Errorf("%v: time series columns %v, want \"time\" first and values after", q, colNames(cols))
			}
			// Grafana refuses long-format frames not sorted by time.
			if !slices.IsSorted(times) {
				t.Errorf("%v: rows not in time order: %v", q, times)
			}
		}
	}
	if n < 10 {
		t.Errorf("%d SQL queries in the dashboards, want the full set (at least 10)", n)
	}
}

// isZero reports whether v is a number equal to 0 (or NULL).
func isZero(v any) bool {
	switch n := v.(type) {
	case nil:
		return true
	case int64:
		return n == 0
	case int32:
		return n == 0
	case float64:
		return n == 0
	case pgtype.Numeric:
		f, err := n.Float64Value()
		return err != nil || !f.Valid || f.Float64 == 0
	}
	return false
}

func colNames(fds []pgconn.FieldDescription) []string {
	var out []string
	for _, f := range fds {
		out = append(out, f.Name)
	}
	return out
}

// readYAML decodes the repository file path into v, strictly.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Open(repoPath(path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(false)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
