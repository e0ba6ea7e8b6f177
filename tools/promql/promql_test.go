package promql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

const chartDir = "../../charts/ordersync"

// helmBin is helm on PATH, or where .ci/deps's `go install` puts it.
func helmBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatal("helm not found: run .ci/deps (go install helm.sh/helm/v3/cmd/helm@v3.22.0)")
	}
	return p
}

// expression is one PromQL expression and where it comes from.
type expression struct{ where, expr string }

// chartExpressions renders the chart with the dashboard and the rules on and returns every
// PromQL expression: the dashboard's panel targets and the rules' expr.
func chartExpressions(t *testing.T) []expression {
	t.Helper()
	cmd := exec.Command(helmBin(t), "template", "rel", chartDir, "--namespace", "orders",
		"--set", "secret.appKey=k", "--set", "secret.appSecret=s",
		"--set", "grafanaDashboard.enabled=true", "--set", "prometheusRule.enabled=true")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	var exprs []expression
	var dashboards, rules int
	for _, doc := range strings.Split(out.String(), "\n---\n") {
		var m struct {
			Kind string            `json:"kind"`
			Data map[string]string `json:"data"`
			Spec struct {
				Groups []struct {
					Rules []struct {
						Alert string `json:"alert"`
						Expr  string `json:"expr"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("rendered manifest: %v\n%s", err, doc)
		}
		switch {
		case m.Kind == "PrometheusRule":
			rules++
			for _, g := range m.Spec.Groups {
				for _, r := range g.Rules {
					exprs = append(exprs, expression{"rule " + r.Alert, r.Expr})
				}
			}
		case m.Kind == "ConfigMap" && m.Data["ordersync.json"] != "":
			dashboards++
			var d struct {
				Panels []struct {
					Title   string `json:"title"`
					Targets []struct {
						RefID string `json:"refId"`
						Expr  string `json:"expr"`
					} `json:"targets"`
				} `json:"panels"`
			}
			if err := json.Unmarshal([]byte(m.Data["ordersync.json"]), &d); err != nil {
				t.Fatalf("dashboard: %v", err)
			}
			for _, p := range d.Panels {
				for _, tg := range p.Targets {
					exprs = append(exprs, expression{fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), grafanaVars.Replace(tg.Expr)})
				}
			}
		}
	}
	if dashboards != 1 || rules != 1 {
		t.Fatalf("rendered %d dashboard ConfigMap(s) and %d PrometheusRule(s), want one each", dashboards, rules)
	}
	return exprs
}

// grafanaVars replaces the Grafana interval variables with what Grafana substitutes; the
// template variables ($namespace, $job) stand inside label matcher strings and parse as they are.
var grafanaVars = strings.NewReplacer("$__rate_interval", "2m", "$__interval", "30s", "$__range", "1h")

// metricNames returns the metric names an expression selects.
func metricNames(e parser.Expr) []string {
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		names = append(names, name)
		return nil
	})
	return names
}

// TestChartPromQL parses every expression and checks metrics.txt lists exactly the metric names
// they use (the worker's end-to-end test checks that each is in /metrics).
func TestChartPromQL(t *testing.T) {
	exprs := chartExpressions(t)
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found", len(exprs))
	}
	p := parser.NewParser(parser.Options{})
	used := map[string]bool{}
	for _, e := range exprs {
		if strings.Contains(e.expr, "{{") {
			t.Errorf("%s: an unrendered template: %s", e.where, e.expr)
		}
		parsed, err := p.ParseExpr(e.expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", e.where, err, e.expr)
			continue
		}
		names := metricNames(parsed)
		if len(names) == 0 {
			t.Errorf("%s selects no metric: %s", e.where, e.expr)
		}
		for _, n := range names {
			used[n] = true
		}
	}
	var got []string
	for n := range used {
		got = append(got, n)
	}
	slices.Sort(got)
	want := readMetricsList(t)
	if !slices.Equal(got, want) {
		t.Errorf("metrics.txt lists %v;\nthe dashboard and rules use %v:\nupdate metrics.txt (one name per line)", want, got)
	}
}

// The parser is strict: a broken expression fails.
func TestParserRejects(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, bad := range []string{`sum by (a (rate(x[5m]))`, `rate(x)`, `x{a=}`, `histogram_quantile(0.99, rate(x[$__rate_interval]))`} {
		if _, err := p.ParseExpr(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func readMetricsList(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			names = append(names, line)
		}
	}
	return names
}
