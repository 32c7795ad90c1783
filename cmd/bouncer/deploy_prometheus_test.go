package main

// Tests of deploy/prometheus: the alert rules are parsed and validated by
// Prometheus's own rule parser (model/rulefmt: YAML structure, PromQL,
// annotation templates), and every metric and label the rules and the
// dashboard's Prometheus panels use is one the worker registers.

import (
	"go/ast"
	goparser "go/parser"
	"go/token"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// workerMetrics maps each metric the worker registers to its labels, read
// from the worker package's source: every prometheus.NewX(prometheus.XOpts{
// Name: "..."}, []string{labels...}) call (histograms add their _bucket,
// _sum and _count series).
func workerMetrics(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(repoPath("worker/*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("worker sources: %v", err)
	}
	out := map[string][]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := goparser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
				return true
			}
			opts, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			var name string
			for _, el := range opts.Elts {
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
						if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							name, _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			if name == "" {
				return true
			}
			labels := []string{}
			if len(call.Args) > 1 {
				if lst, ok := call.Args[1].(*ast.CompositeLit); ok {
					for _, el := range lst.Elts {
						if lit, ok := el.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							l, _ := strconv.Unquote(lit.Value)
							labels = append(labels, l)
						}
					}
				}
			}
			out[name] = labels
			if strings.HasPrefix(sel.Sel.Name, "NewHistogram") {
				out[name+"_bucket"] = append(slices.Clone(labels), "le")
				out[name+"_sum"], out[name+"_count"] = labels, labels
			}
			return true
		})
	}
	// What the rules rely on, so that a parser that finds nothing fails.
	for _, m := range []string{"bouncer_recipients_total", "bouncer_outbox_lag_seconds", "bouncer_imap_reconnects_total"} {
		if _, ok := out[m]; !ok {
			t.Fatalf("worker sources: no metric %s found (found %v)", m, out)
		}
	}
	return out
}

// Labels Prometheus adds to every scraped series (target labels and the
// static labels of deploy/prometheus/prometheus.yml).
var targetLabels = []string{"job", "instance", "env"}

// checkPromQL parses expr and checks its metrics and labels against the
// worker's, reporting problems with where.
func checkPromQL(t *testing.T, where, expr string, metrics map[string][]string) (names []string) {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	e, err := p.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return nil
	}
	known := func(metric, label string) bool {
		return slices.Contains(targetLabels, label) || slices.Contains(metrics[metric], label)
	}
	var selectorNames []string
	parser.Inspect(e, func(node parser.Node, path []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		selectorNames = append(selectorNames, name)
		if name == "up" {
			return nil
		}
		if _, ok := metrics[name]; !ok {
			t.Errorf("%s: metric %q is not one the worker registers", where, name)
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != model.MetricNameLabel && !known(name, m.Name) {
				t.Errorf("%s: %s has no label %q (it has %v)", where, name, m.Name, metrics[name])
			}
		}
		// by (...) of the aggregations around it.
		for _, n := range path {
			if agg, ok := n.(*parser.AggregateExpr); ok && !agg.Without {
				for _, l := range agg.Grouping {
					if !known(name, l) {
						t.Errorf("%s: sum by (%s) over %s, which has no such label (%v)", where, l, name, metrics[name])
					}
				}
			}
		}
		return nil
	})
	return selectorNames
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	path := repoPath("deploy/prometheus/alerts.yml")
	groups, errs := rulefmt.ParseFile(path, false, model.LegacyValidation, parser.NewParser(parser.Options{}),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Errorf("rulefmt: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	metrics := workerMetrics(t)
	alerts := map[string]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a recording rule %q; this file is for alerts", g.Name, r.Record)
				continue
			}
			alerts[r.Alert] = r.Expr
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: wants a summary and a description", r.Alert)
			}
			if r.For == 0 {
				t.Errorf("alert %s: no `for:`; a single bad scrape would page", r.Alert)
			}
			checkPromQL(t, "alert "+r.Alert, r.Expr, metrics)
		}
	}

	// What issue 5 asks to be alerted on, by the metric that tells it.
	uses := func(alert, substr string) bool { return strings.Contains(alerts[alert], substr) }
	if !uses("SendingSetupBroken", "bouncer_recipients_total") {
		t.Errorf("SendingSetupBroken does not watch bouncer_recipients_total")
	}
	for _, cat := range []string{"relay_denied", "auth_required", "blocked"} {
		if !uses("SendingSetupBroken", cat) || !uses("SendingSetupFailureSpike", cat) {
			t.Errorf("the sending-setup alerts do not watch category %s", cat)
		}
	}
	for alert, metric := range map[string]string{
		"BouncerOutboxLagGrowing":   "bouncer_outbox_lag_seconds",
		"BouncerDown":               `up{job="bouncer"}`,
		"BouncerStalled":            "bouncer_imap_reconnects_total",
		"BouncerIMAPReconnectStorm": "bouncer_imap_reconnects_total",
		"BouncerMailboxNotReady":    "bouncer_mailbox_ready",
	} {
		if !uses(alert, metric) {
			t.Errorf("alert %s: missing, or does not use %s (expr %q)", alert, metric, alerts[alert])
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string          `yaml:"targets"`
				Labels  map[string]string `yaml:"labels"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "deploy/prometheus/prometheus.yml", &cfg)
	if !slices.Equal(cfg.RuleFiles, []string{"alerts.yml"}) {
		t.Errorf("rule_files = %q, want [alerts.yml] (beside it in /etc/prometheus)", cfg.RuleFiles)
	}
	found := false
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for l := range st.Labels {
				if !slices.Contains(targetLabels, l) {
					t.Errorf("scrape job %s: label %s is not in targetLabels", sc.JobName, l)
				}
			}
		}
		if sc.JobName == "bouncer" {
			found = true
			if sc.MetricsPath != "/metrics" || len(sc.StaticConfigs) != 1 || !slices.Equal(sc.StaticConfigs[0].Targets, []string{"bouncer:8080"}) {
				t.Errorf("scrape job bouncer = %+v, want bouncer:8080/metrics", sc)
			}
		}
	}
	if !found {
		t.Errorf("no scrape job named bouncer (the alerts select job=\"bouncer\")")
	}

	// The dashboard's Prometheus panels use the worker's metrics too.
	n := 0
	for _, q := range dashboardTargets(t) {
		if q.Datasource != nil && q.Datasource.UID == prometheusDatasourceUID {
			n++
			if names := checkPromQL(t, q.String(), q.Expr, workerMetrics(t)); len(names) == 0 {
				t.Errorf("%v: selects no metric", q)
			}
		}
	}
	if n == 0 {
		t.Errorf("the dashboard has no Prometheus panel (outbox lag, reconnects)")
	}
}
