package chart

// Tests of the chart's operator kit: the Grafana dashboard ConfigMap and the PrometheusRule, with
// their own small helm helpers. The PromQL in both is parsed by tools/promql (its own module); the
// worker's TestOperatorMetricsExported checks that every metric they use is exported.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	kitChartDir = "../../charts/ordersync"
	kitNS       = "orders"
)

// kitBaseArgs are the values every rendering needs (the chart requires credentials).
var kitBaseArgs = []string{"--set-string", "secret.appKey=12345678", "--set", "secret.appSecret=kit-secret"}

func kitHelm(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatal("helm not found: run .ci/deps (go install helm.sh/helm/v3/cmd/helm@v3.22.0)")
	}
	return p
}

// kitRender runs helm template with the base values and args and returns the manifests by kind.
func kitRender(t *testing.T, args ...string) map[string][]map[string]any {
	t.Helper()
	cmd := exec.Command(kitHelm(t), append(append([]string{"template", "rel", kitChartDir, "--namespace", kitNS}, kitBaseArgs...), args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr.String())
	}
	byKind := map[string][]map[string]any{}
	for _, doc := range strings.Split(out.String(), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("rendered manifest is not YAML: %v\n%s", err, doc)
		}
		if kind, _ := m["kind"].(string); kind != "" {
			byKind[kind] = append(byKind[kind], m)
		}
	}
	return byKind
}

// strictDecode re-encodes v and decodes it into out, failing on unknown fields.
func strictDecode(v any, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

func TestOperatorKitLint(t *testing.T) {
	args := append([]string{"lint", "--strict", kitChartDir}, kitBaseArgs...)
	args = append(args, "--set", "grafanaDashboard.enabled=true", "--set", "prometheusRule.enabled=true")
	if out, err := exec.Command(kitHelm(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("helm lint --strict with the dashboard and rules: %v\n%s", err, out)
	}
}

func TestOperatorKitOffByDefault(t *testing.T) {
	r := kitRender(t)
	if n := len(r["PrometheusRule"]); n != 0 {
		t.Errorf("%d PrometheusRule(s) rendered by default, want none", n)
	}
	for _, cm := range r["ConfigMap"] {
		if data, _ := cm["data"].(map[string]any); data["ordersync.json"] != nil {
			t.Error("the dashboard ConfigMap is rendered by default")
		}
	}
}

// grafanaDashboard is the part of Grafana's dashboard JSON model (schemaVersion 39, Grafana 10.4 and
// 11) that the chart's dashboard uses; decoding is strict, so a misspelled field fails.
type grafanaDashboard struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	Description   string   `json:"description"`
	Tags          []string `json:"tags"`
	SchemaVersion int      `json:"schemaVersion"`
	Version       int      `json:"version"`
	Editable      bool     `json:"editable"`
	GraphTooltip  int      `json:"graphTooltip"`
	Timezone      string   `json:"timezone"`
	Refresh       string   `json:"refresh"`
	Time          struct{ From, To string }
	Templating    struct {
		List []struct {
			Type       string          `json:"type"`
			Name       string          `json:"name"`
			Label      string          `json:"label"`
			Query      json.RawMessage `json:"query"`
			Datasource *grafanaDS      `json:"datasource"`
			Definition string          `json:"definition"`
			Refresh    int             `json:"refresh"`
			IncludeAll bool            `json:"includeAll"`
			Multi      bool            `json:"multi"`
			AllValue   string          `json:"allValue"`
			Current    map[string]any  `json:"current"`
			Hide       int             `json:"hide"`
			Sort       int             `json:"sort"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []any `json:"list"`
	} `json:"annotations"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID          int        `json:"id"`
	Type        string     `json:"type"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Collapsed   bool       `json:"collapsed"`
	Datasource  *grafanaDS `json:"datasource"`
	GridPos     struct {
		X int `json:"x"`
		Y int `json:"y"`
		W int `json:"w"`
		H int `json:"h"`
	} `json:"gridPos"`
	Targets []struct {
		RefID        string     `json:"refId"`
		Datasource   *grafanaDS `json:"datasource"`
		Expr         string     `json:"expr"`
		LegendFormat string     `json:"legendFormat"`
		Range        bool       `json:"range"`
	} `json:"targets"`
	FieldConfig *struct {
		Defaults struct {
			Unit     string `json:"unit"`
			Mappings []struct {
				Type    string `json:"type"`
				Options map[string]struct {
					Text  string `json:"text"`
					Color string `json:"color"`
				} `json:"options"`
			} `json:"mappings"`
		} `json:"defaults"`
		Overrides []any `json:"overrides"`
	} `json:"fieldConfig"`
	Options map[string]any `json:"options"`
	Panels  []any          `json:"panels"`
}

// The panel types a schemaVersion 39 dashboard may use here (core panels of Grafana 10.4/11).
var grafanaPanelTypes = []string{"row", "timeseries", "stat", "state-timeline", "gauge", "table", "bargauge"}

func TestOperatorKitDashboard(t *testing.T) {
	r := kitRender(t, "--set", "grafanaDashboard.enabled=true",
		"--set", "grafanaDashboard.annotations.grafana_folder=Orders", "--set", "grafanaDashboard.namespace=monitoring")
	var cm map[string]any
	for _, c := range r["ConfigMap"] {
		if data, _ := c["data"].(map[string]any); data["ordersync.json"] != nil {
			cm = c
		}
	}
	if cm == nil {
		t.Fatal("no dashboard ConfigMap rendered")
	}
	var meta struct {
		Metadata struct {
			Name        string            `json:"name"`
			Namespace   string            `json:"namespace"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := strictDecode(map[string]any{"metadata": cm["metadata"], "data": cm["data"]}, &meta); err != nil {
		t.Fatal(err)
	}
	m := meta.Metadata
	if m.Name != "rel-ordersync-dashboard" || m.Namespace != "monitoring" || m.Labels["grafana_dashboard"] != "1" ||
		m.Annotations["grafana_folder"] != "Orders" || m.Labels["app.kubernetes.io/instance"] != "rel" {
		t.Errorf("ConfigMap metadata %+v: want rel-ordersync-dashboard in monitoring, label grafana_dashboard=1, the folder annotation and the chart's labels", m)
	}
	file, err := os.ReadFile(filepath.Join(kitChartDir, "dashboards", "ordersync.json"))
	if err != nil {
		t.Fatal(err)
	}
	text := meta.Data["ordersync.json"]
	if text != strings.TrimSuffix(string(file), "\n") {
		t.Error("the ConfigMap's ordersync.json is not dashboards/ordersync.json")
	}
	checkDashboard(t, []byte(text))
}

// checkDashboard checks the dashboard's structure against its declared schema version.
func checkDashboard(t *testing.T, text []byte) {
	var d grafanaDashboard
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.SchemaVersion != 39 {
		t.Errorf("schemaVersion %d, want 39 (the version these checks describe)", d.SchemaVersion)
	}
	if d.UID == "" || len(d.UID) > 40 || d.Title == "" {
		t.Errorf("uid %q, title %q: want a uid of 1-40 characters and a title", d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "datasource" && string(v.Query) != `"prometheus"` {
			t.Errorf("variable %s: query %s, want \"prometheus\"", v.Name, v.Query)
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s: its data source must be ${datasource}", v.Name)
		}
	}
	if vars["datasource"] != "datasource" {
		t.Fatalf("no datasource variable of type datasource: %v", vars)
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]int{}
	var titles []string
	for _, p := range d.Panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 || ids[p.ID] {
			t.Errorf("%s: id must be positive and unique", where)
		}
		ids[p.ID] = true
		if !slices.Contains(grafanaPanelTypes, p.Type) {
			t.Errorf("%s: type %q is not a panel type of schema version 39", where, p.Type)
		}
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 || g.Y < 0 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", where, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("%s overlaps panel %d at (%d,%d)", where, other, x, y)
				}
				used[cell{x, y}] = p.ID
			}
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 || g.W != 24 || g.H != 1 {
				t.Errorf("%s: a row is 24×1 without targets", where)
			}
			continue
		}
		titles = append(titles, p.Title)
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want {prometheus ${datasource}}", where, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId %q empty or repeated", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || *tg.Datasource != *p.Datasource {
				t.Errorf("%s target %s: datasource %+v, want the panel's", where, tg.RefID, tg.Datasource)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s target %s: empty expr", where, tg.RefID)
			}
			for _, v := range regexp.MustCompile(`\$\{?([a-z_]+)`).FindAllStringSubmatch(tg.Expr, -1) {
				if !strings.HasPrefix(v[1], "__") && vars[v[1]] == "" {
					t.Errorf("%s target %s: uses $%s, which is no variable", where, tg.RefID, v[1])
				}
			}
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{"Outcomes per second by channel and status", "Consumer lag per topic", "Commit lag per topic",
		"Gateway latency p50 / p99 per method", "Gateway errors per second per method", "Retries per second per method",
		"Flow-control bans per method", "Intake paused, by reason", "Gateway circuit state", "Events in flight"} {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel %q", want)
		}
	}
}

// prometheusRule is the part of monitoring.coreos.com/v1 PrometheusRule the chart renders.
type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

func renderRule(t *testing.T, args ...string) prometheusRule {
	t.Helper()
	r := kitRender(t, append([]string{"--set", "prometheusRule.enabled=true"}, args...)...)
	if len(r["PrometheusRule"]) != 1 {
		t.Fatalf("%d PrometheusRule(s), want 1", len(r["PrometheusRule"]))
	}
	var pr prometheusRule
	if err := strictDecode(r["PrometheusRule"][0], &pr); err != nil {
		t.Fatal(err)
	}
	return pr
}

func TestOperatorKitRules(t *testing.T) {
	promDuration := regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	wantAlerts := []string{"OrdersyncConsumerLagHigh", "OrdersyncCommitLagStuck", "OrdersyncGatewayLatencyHigh",
		"OrdersyncFailureRatioHigh", "OrdersyncIntakePaused"}

	pr := renderRule(t, "--set", "prometheusRule.labels.release=prometheus")
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Metadata.Namespace != kitNS || pr.Metadata.Labels["release"] != "prometheus" {
		t.Errorf("PrometheusRule %s in %s, labels %v", pr.APIVersion, pr.Metadata.Namespace, pr.Metadata.Labels)
	}
	var alerts []string
	defaultSel := `namespace="orders", job="rel-ordersync"`
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if !promDuration.MatchString(r.For) {
				t.Errorf("%s: for %q is not a Prometheus duration", r.Alert, r.For)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a severity label, a summary and a description", r.Alert)
			}
			if !strings.Contains(r.Expr, defaultSel) {
				t.Errorf("%s: expr %q is not limited to the release (%s)", r.Alert, r.Expr, defaultSel)
			}
			if strings.Contains(r.Expr, "{{") {
				t.Errorf("%s: unrendered template in %q", r.Alert, r.Expr)
			}
		}
	}
	if !slices.Equal(alerts, wantAlerts) {
		t.Errorf("alerts %v, want %v", alerts, wantAlerts)
	}
	paused := pr.Spec.Groups[0].Rules[4]
	if !strings.Contains(paused.Expr, "ordersync_intake_paused") || paused.Labels["severity"] != "critical" || paused.For != "5m" {
		t.Errorf("the paused-worker alert: %+v", paused)
	}

	// Thresholds, durations and the selector come from values.
	pr = renderRule(t, "--set", "prometheusRule.consumerLag.threshold=5000", "--set", "prometheusRule.paused.for=15m",
		"--set-json", "prometheusRule.gatewayLatency.p99Seconds=2.5", "--set", `prometheusRule.selector=cluster="eu"`)
	rules := pr.Spec.Groups[0].Rules
	if !strings.HasSuffix(rules[0].Expr, "> 5000") || rules[4].For != "15m" || !strings.HasSuffix(rules[2].Expr, "> 2.5") {
		t.Errorf("values not applied: %q, %q, %q", rules[0].Expr, rules[4].For, rules[2].Expr)
	}
	for _, r := range rules {
		if !strings.Contains(r.Expr, `{cluster="eu"`) || strings.Contains(r.Expr, "job=") {
			t.Errorf("%s: expr %q does not use the selector value alone", r.Alert, r.Expr)
		}
	}
}

func TestOperatorKitRejectsBadValues(t *testing.T) {
	for _, c := range []struct{ name, set string }{
		{"a Go duration Prometheus does not read", "prometheusRule.consumerLag.for=1m30.5s"},
		{"a ratio over 1", "prometheusRule.failureRatio.threshold=2"},
		{"an unknown key", "grafanaDashboard.folder=x"},
	} {
		args := append([]string{"template", "rel", kitChartDir}, kitBaseArgs...)
		out, err := exec.Command(kitHelm(t), append(args, "--set", "prometheusRule.enabled=true", "--set", c.set)...).CombinedOutput()
		if err == nil {
			t.Errorf("%s (%s): rendered", c.name, c.set)
		} else if !strings.Contains(string(out), "schema") {
			t.Errorf("%s: failed, but not by the values schema:\n%s", c.name, out)
		}
	}
}
