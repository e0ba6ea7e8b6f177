package main

// Tests of the Helm chart (charts/ordersync) and the container image definition. They run `helm lint
// --strict` and `helm template` for every value set in charts/ordersync/ci/, decode each rendered manifest
// strictly into its Kubernetes API type (a misspelled field fails), and check the rendered configuration
// against loadConfig and Validate, so the chart stays tied to the worker's real configuration keys.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/build"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir       = "../../charts/ordersync"
	releaseName    = "rel"
	releaseNS      = "orders"
	configDir      = "/etc/ordersync"
	nonRootID      = 65532
	chartSecretTag = "ci-" // every secret value in the chart's ci value sets starts with it
)

// helm returns the helm binary: on PATH, or where `go install` puts it.
func helm(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Fatal("helm not found: run .ci/deps (go install helm.sh/helm/v3/cmd/helm@v3.22.0)")
	return ""
}

// renderChart runs `helm template` with args (value files, --set) and returns its output.
func renderChart(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", releaseName, chartDir, "--namespace", releaseNS}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm template %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// ServiceMonitor (monitoring.coreos.com/v1), the fields the chart renders.
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		NamespaceSelector *struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port              string           `json:"port"`
			Path              string           `json:"path"`
			Interval          string           `json:"interval"`
			ScrapeTimeout     string           `json:"scrapeTimeout"`
			Relabelings       []map[string]any `json:"relabelings"`
			MetricRelabelings []map[string]any `json:"metricRelabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// ScaledObject (keda.sh/v1alpha1), the fields the chart renders. Trigger metadata must be strings.
type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval"`
		CooldownPeriod  *int32 `json:"cooldownPeriod"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
			} `json:"horizontalPodAutoscalerConfig"`
		} `json:"advanced"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
}

// TriggerAuthentication (keda.sh/v1alpha1), the fields the chart renders.
type triggerAuthentication struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// release is one rendering of the chart, every manifest decoded.
type release struct {
	raw            map[string]string // kind/name → manifest text
	meta           map[string]metav1.ObjectMeta
	deployment     *appsv1.Deployment
	configMap      *corev1.ConfigMap
	secret         *corev1.Secret
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	serviceMonitor *serviceMonitor
	scaledObject   *scaledObject
	triggerAuth    *triggerAuthentication
}

// decodeStrict decodes one YAML manifest into v, failing on any field v does not have.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// parseRelease splits helm's output and decodes every manifest into its API type.
func parseRelease(t *testing.T, out string) *release {
	t.Helper()
	r := &release{raw: map[string]string{}, meta: map[string]metav1.ObjectMeta{}}
	for _, doc := range docSeparator.Split(out, -1) {
		var head struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("rendered manifest is not YAML: %v\n%s", err, doc)
		}
		if head.Kind == "" {
			continue // comments only
		}
		id := head.Kind + "/" + head.Metadata.Name
		if _, dup := r.raw[id]; dup {
			t.Fatalf("%s rendered twice", id)
		}
		r.raw[id] = doc
		r.meta[id] = head.Metadata
		var target any
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			r.deployment = new(appsv1.Deployment)
			target = r.deployment
		case "v1 ConfigMap":
			r.configMap = new(corev1.ConfigMap)
			target = r.configMap
		case "v1 Secret":
			r.secret = new(corev1.Secret)
			target = r.secret
		case "v1 Service":
			r.service = new(corev1.Service)
			target = r.service
		case "v1 ServiceAccount":
			r.serviceAccount = new(corev1.ServiceAccount)
			target = r.serviceAccount
		case "policy/v1 PodDisruptionBudget":
			r.pdb = new(policyv1.PodDisruptionBudget)
			target = r.pdb
		case "autoscaling/v2 HorizontalPodAutoscaler":
			r.hpa = new(autoscalingv2.HorizontalPodAutoscaler)
			target = r.hpa
		case "monitoring.coreos.com/v1 ServiceMonitor":
			r.serviceMonitor = new(serviceMonitor)
			target = r.serviceMonitor
		case "keda.sh/v1alpha1 ScaledObject":
			r.scaledObject = new(scaledObject)
			target = r.scaledObject
		case "keda.sh/v1alpha1 TriggerAuthentication":
			r.triggerAuth = new(triggerAuthentication)
			target = r.triggerAuth
		default:
			t.Fatalf("unexpected manifest %s %s", head.APIVersion, head.Kind)
		}
		if err := decodeStrict([]byte(doc), target); err != nil {
			t.Fatalf("%s does not decode strictly into its API type: %v\n%s", id, err, doc)
		}
	}
	for _, m := range []struct {
		name    string
		missing bool
	}{
		{"Deployment", r.deployment == nil},
		{"ConfigMap", r.configMap == nil},
		{"Service", r.service == nil},
	} {
		if m.missing {
			t.Fatalf("no %s rendered", m.name)
		}
	}
	return r
}

// chartValues is the part of a ci value file the tests read directly.
type chartValues struct {
	Secret struct {
		ExistingSecret string            `json:"existingSecret"`
		AppKey         string            `json:"appKey"`
		AppSecret      string            `json:"appSecret"`
		Sessions       map[string]string `json:"sessions"`
		SASLUser       string            `json:"kafkaSaslUsername"`
		SASLPassword   string            `json:"kafkaSaslPassword"`
		RedisPassword  string            `json:"redisPassword"`
	} `json:"secret"`
}

// secretValues lists the secret values set in a value file.
func (v chartValues) secretValues() []string {
	s := v.Secret
	out := slices.Collect(maps.Values(s.Sessions))
	for _, x := range []string{s.AppSecret, s.SASLPassword, s.RedisPassword} {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

func TestChartValueSets(t *testing.T) {
	tests := []struct {
		file         string
		wantReplicas *int32 // nil when an autoscaler owns the replica count
		wantPort     int32
		wantGrace    int64
		wantSecret   bool // the chart renders its own Secret
		wantHPA      bool
		wantMonitor  bool
		wantTopics   []string // KEDA trigger topics; nil = no ScaledObject
		wantKEDAMax  int32
		wantAuth     []string // TriggerAuthentication parameters
	}{
		{
			file:         "default-values.yaml",
			wantReplicas: ptr[int32](2), wantPort: 8080, wantGrace: 45, wantSecret: true,
		},
		{
			file:         "external-credentials-values.yaml",
			wantReplicas: ptr[int32](2), wantPort: 9090, wantGrace: 75,
		},
		{
			file:       "keda-tls-sasl-values.yaml",
			wantPort:   8080,
			wantGrace:  45,
			wantSecret: true,
			wantTopics: []string{
				"orders.diantao-tripartite", "orders.mos-haiding", "orders.tmall-aliauto", "pos.omni-saas.orders",
			},
			wantKEDAMax: 12,
			wantAuth:    []string{"username", "password", "ca", "cert", "key"},
		},
		{
			file:     "hpa-servicemonitor-values.yaml",
			wantPort: 8080, wantGrace: 105, wantSecret: true, wantHPA: true, wantMonitor: true,
		},
	}
	sets, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tested []string
	for _, tt := range tests {
		tested = append(tested, filepath.Join(chartDir, "ci", tt.file))
	}
	sort.Strings(tested)
	if diff := cmp.Diff(sets, tested); diff != "" {
		t.Errorf("value sets in ci/ and in this test differ (-ci +test):\n%s", diff)
	}

	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			valuesFile := filepath.Join(chartDir, "ci", tt.file)
			lint, err := exec.Command(helm(t), "lint", "--strict", chartDir, "-f", valuesFile).CombinedOutput()
			if err != nil {
				t.Fatalf("helm lint --strict -f %s: %v\n%s", tt.file, err, lint)
			}
			out, err := renderChart(t, "-f", valuesFile)
			if err != nil {
				t.Fatal(err)
			}
			r := parseRelease(t, out)
			var values chartValues
			data, err := os.ReadFile(valuesFile)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(data, &values); err != nil {
				t.Fatal(err)
			}

			cfg := checkConfigMap(t, r, values)
			checkLabels(t, r)
			checkPodSecurity(t, r)
			checkProbesAndPorts(t, r, cfg, tt.wantPort)
			checkNoSecretsOutsideSecret(t, r, values)
			checkRunnableConfig(t, r, values)
			checkEnv(t, r)

			d := r.deployment
			if got := d.Spec.Template.Spec.TerminationGracePeriodSeconds; got == nil || *got != tt.wantGrace {
				t.Errorf("terminationGracePeriodSeconds = %v, want %d", deref(got), tt.wantGrace)
			}
			if got := d.Spec.Template.Spec.TerminationGracePeriodSeconds; got == nil || float64(*got) <= cfg.Worker.ShutdownTimeout.Seconds() {
				t.Errorf("terminationGracePeriodSeconds = %v, want > worker.shutdown_timeout %v", deref(got), cfg.Worker.ShutdownTimeout)
			}
			if diff := cmp.Diff(tt.wantReplicas, d.Spec.Replicas); diff != "" {
				t.Errorf("spec.replicas mismatch (-want +got):\n%s", diff)
			}
			if got := r.secret != nil; got != tt.wantSecret {
				t.Errorf("chart Secret rendered = %v, want %v", got, tt.wantSecret)
			}
			for _, key := range []string{"checksum/config", "checksum/secret"} {
				if d.Spec.Template.Annotations[key] == "" {
					t.Errorf("pod template has no %s annotation", key)
				}
			}
			if r.hpa != nil && r.scaledObject != nil {
				t.Error("both an HPA and a KEDA ScaledObject are rendered; KEDA's webhook rejects that")
			}
			if got := r.hpa != nil; got != tt.wantHPA {
				t.Errorf("HPA rendered = %v, want %v", got, tt.wantHPA)
			}
			if r.hpa != nil {
				checkScaleTarget(t, "HPA", r.hpa.Spec.ScaleTargetRef.APIVersion, r.hpa.Spec.ScaleTargetRef.Kind, r.hpa.Spec.ScaleTargetRef.Name, d.Name)
			}
			if got := r.serviceMonitor != nil; got != tt.wantMonitor {
				t.Errorf("ServiceMonitor rendered = %v, want %v", got, tt.wantMonitor)
			}
			if r.serviceMonitor != nil {
				checkServiceMonitor(t, r)
			}
			if got := r.scaledObject != nil; got != (tt.wantTopics != nil) {
				t.Fatalf("ScaledObject rendered = %v, want %v", got, tt.wantTopics != nil)
			}
			if r.scaledObject != nil {
				checkScaledObject(t, r, cfg, tt.wantTopics, tt.wantKEDAMax, tt.wantAuth)
			} else if r.triggerAuth != nil {
				t.Error("TriggerAuthentication rendered without a ScaledObject")
			}
			if r.pdb == nil {
				t.Error("no PodDisruptionBudget rendered")
			} else if !isSubset(r.pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("PDB selector %v does not select the pods %v", r.pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
			}
		})
	}
}

// checkConfigMap loads the rendered ordersync.yaml with loadConfig (strict) and returns it.
func checkConfigMap(t *testing.T, r *release, values chartValues) Config {
	t.Helper()
	text, ok := r.configMap.Data["ordersync.yaml"]
	if !ok || len(r.configMap.Data) != 1 || len(r.configMap.BinaryData) != 0 {
		t.Fatalf("ConfigMap data keys = %v, want only ordersync.yaml", slices.Collect(maps.Keys(r.configMap.Data)))
	}
	path := writeFile(t, "ordersync.yaml", text)
	cfg, err := loadConfig(path, nil)
	if err != nil {
		t.Fatalf("the rendered ordersync.yaml does not load: %v\n%s", err, text)
	}
	if cfg.Top.AppKey != "" || cfg.Top.AppSecret != "" || cfg.Top.AppSecretFile != "" || cfg.Kafka.SASL.Username != "" ||
		cfg.Kafka.SASL.Password != "" || cfg.Redis.Password != "" {
		t.Errorf("the rendered ordersync.yaml sets a credential:\n%s", text)
	}
	wantSessions := ""
	if values.Secret.ExistingSecret != "" || len(values.Secret.Sessions) > 0 {
		wantSessions = configDir + "/secrets/sessions.yaml"
	}
	if got := cfg.Top.SessionsFile; got != wantSessions {
		t.Errorf("top.sessions_file = %q, want %q", got, wantSessions)
	}
	return cfg
}

var wantLabels = []string{
	"helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
	"app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by",
}

func checkLabels(t *testing.T, r *release) {
	t.Helper()
	for id, meta := range r.meta {
		for _, l := range wantLabels {
			if meta.Labels[l] == "" {
				t.Errorf("%s has no label %s", id, l)
			}
		}
		if got, want := meta.Labels["app.kubernetes.io/instance"], releaseName; got != want {
			t.Errorf("%s: app.kubernetes.io/instance = %q, want %q", id, got, want)
		}
		if meta.Labels["app.kubernetes.io/name"] != "ordersync" {
			t.Errorf("%s: app.kubernetes.io/name = %q, want ordersync", id, meta.Labels["app.kubernetes.io/name"])
		}
		if !strings.HasPrefix(id, "ServiceMonitor/") && meta.Namespace != releaseNS {
			t.Errorf("%s is in namespace %q, want %q", id, meta.Namespace, releaseNS)
		}
	}
	d := r.deployment
	wantSelector := map[string]string{"app.kubernetes.io/name": "ordersync", "app.kubernetes.io/instance": releaseName}
	if diff := cmp.Diff(wantSelector, d.Spec.Selector.MatchLabels); diff != "" {
		t.Errorf("Deployment selector mismatch (-want +got):\n%s", diff)
	}
	pod := d.Spec.Template.Labels
	if !isSubset(d.Spec.Selector.MatchLabels, pod) {
		t.Errorf("Deployment selector %v is not a subset of the pod labels %v", d.Spec.Selector.MatchLabels, pod)
	}
	if !isSubset(r.service.Spec.Selector, pod) {
		t.Errorf("Service selector %v does not select the pods %v", r.service.Spec.Selector, pod)
	}
	for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
		if c.TopologyKey != "kubernetes.io/hostname" || c.LabelSelector == nil || !isSubset(c.LabelSelector.MatchLabels, pod) {
			t.Errorf("topology spread %+v does not spread these pods across nodes", c)
		}
	}
	if len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
		t.Error("no topologySpreadConstraints")
	}
}

func checkPodSecurity(t *testing.T, r *release) {
	t.Helper()
	spec := r.deployment.Spec.Template.Spec
	psc := spec.SecurityContext
	if psc == nil || !deref(psc.RunAsNonRoot) || deref(psc.RunAsUser) != nonRootID || deref(psc.RunAsGroup) != nonRootID ||
		deref(psc.FSGroup) != nonRootID || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %s, want non-root 65532:65532, fsGroup 65532, seccomp RuntimeDefault", toJSON(psc))
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || !deref(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		deref(sc.Privileged) || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext = %s, want read-only root, no privilege escalation, drop ALL", toJSON(sc))
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("pod automountServiceAccountToken is not false")
	}
	if sa := r.serviceAccount; sa != nil {
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Error("ServiceAccount automountServiceAccountToken is not false")
		}
		if sa.Name != spec.ServiceAccountName {
			t.Errorf("pod runs as ServiceAccount %q, chart created %q", spec.ServiceAccountName, sa.Name)
		}
	}
	tmp := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/tmp" {
			for _, v := range spec.Volumes {
				tmp = tmp || (v.Name == m.Name && v.EmptyDir != nil)
			}
		}
	}
	if !tmp {
		t.Error("/tmp is not an emptyDir (needed with a read-only root file system)")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %s, want CPU requests and a memory limit", toJSON(c.Resources))
	}
}

func checkProbesAndPorts(t *testing.T, r *release, cfg Config, wantPort int32) {
	t.Helper()
	c := r.deployment.Spec.Template.Spec.Containers[0]
	if got, want := c.Args, []string{"run", "--config", configDir + "/ordersync.yaml"}; !slices.Equal(got, want) {
		t.Errorf("args = %q, want %q", got, want)
	}
	var port int32
	for _, p := range c.Ports {
		if p.Name == "http" {
			port = p.ContainerPort
		}
	}
	if port != wantPort {
		t.Errorf("container port http = %d, want %d", port, wantPort)
	}
	if want := fmt.Sprintf(":%d", port); cfg.HTTP.Addr != want {
		t.Errorf("http.addr = %q, but the container port is %d", cfg.HTTP.Addr, port)
	}
	probes := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"startup", c.StartupProbe, "/healthz"},
	}
	for _, p := range probes {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe is missing or not HTTP", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.StrVal != "http" {
			t.Errorf("%s probe = %s %s, want %s on port http", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}
	svc := r.service.Spec
	if len(svc.Ports) != 1 || svc.Ports[0].Name != "http" || svc.Ports[0].TargetPort.StrVal != "http" || svc.Ports[0].Port != wantPort {
		t.Errorf("Service ports = %s, want http → targetPort http on %d", toJSON(svc.Ports), wantPort)
	}
}

// checkNoSecretsOutsideSecret: no secret value of the value set appears in any manifest but the Secret.
func checkNoSecretsOutsideSecret(t *testing.T, r *release, values chartValues) {
	t.Helper()
	secrets := values.secretValues()
	for _, s := range secrets {
		if !strings.HasPrefix(s, chartSecretTag) {
			t.Fatalf("secret value %q in a ci value set should start with %q so this test can tell", s, chartSecretTag)
		}
	}
	for id, doc := range r.raw {
		if strings.HasPrefix(id, "Secret/") {
			continue
		}
		for _, s := range secrets {
			if strings.Contains(doc, s) {
				t.Errorf("%s contains the secret value %q", id, s)
			}
		}
		if strings.HasPrefix(id, "ConfigMap/") && strings.Contains(doc, chartSecretTag) {
			t.Errorf("%s contains a value from the Secret:\n%s", id, doc)
		}
	}
}

// checkRunnableConfig starts the worker's configuration the way the pod does: ordersync.yaml from the
// projected volume, ORDERSYNC_* variables resolved from the Secret (the chart's, or a stand-in for
// existingSecret), files materialised from the volume's items. The result must pass Validate, and the
// sessions file must load: every variable, key and path the chart wires exists in the worker.
func checkRunnableConfig(t *testing.T, r *release, values chartValues) {
	t.Helper()
	spec := r.deployment.Spec.Template.Spec
	c := spec.Containers[0]
	secretData := func(name, key string) (string, bool) {
		if r.secret != nil && r.secret.Name == name {
			v, ok := r.secret.Data[key]
			return string(v), ok
		}
		if name == values.Secret.ExistingSecret && strings.Contains(key, "sessions") {
			return "seller-from-existing-secret: external-session-key\n", true
		}
		return "external-" + name + "-" + key, true // a Secret the operator manages
	}
	var environ []string
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			environ = append(environ, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := secretData(ref.Name, ref.Key)
			if !ok {
				if !deref(ref.Optional) {
					t.Errorf("env %s references %s/%s, which the chart's Secret does not have", e.Name, ref.Name, ref.Key)
				}
				continue
			}
			environ = append(environ, e.Name+"="+v)
		case e.ValueFrom.FieldRef != nil:
			environ = append(environ, e.Name+"=from-"+e.ValueFrom.FieldRef.FieldPath)
		}
	}

	// Materialise the projected volume mounted at configDir.
	root := t.TempDir()
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.MountPath != configDir {
			continue
		}
		mounted = true
		for _, v := range spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			if v.Projected == nil {
				t.Fatalf("volume %s at %s is not projected", v.Name, configDir)
			}
			for _, src := range v.Projected.Sources {
				switch {
				case src.ConfigMap != nil:
					if src.ConfigMap.Name != r.configMap.Name {
						t.Errorf("config volume uses ConfigMap %q, chart renders %q", src.ConfigMap.Name, r.configMap.Name)
					}
					for _, it := range src.ConfigMap.Items {
						materialise(t, root, it.Path, r.configMap.Data[it.Key])
					}
				case src.Secret != nil:
					for _, it := range src.Secret.Items {
						v, ok := secretData(src.Secret.Name, it.Key)
						if !ok {
							t.Errorf("volume item %s references %s/%s, which does not exist", it.Path, src.Secret.Name, it.Key)
						}
						materialise(t, root, it.Path, v)
					}
				default:
					t.Errorf("unexpected projected source %s", toJSON(src))
				}
			}
		}
	}
	if !mounted {
		t.Fatalf("nothing is mounted at %s", configDir)
	}
	cfg, err := loadConfig(filepath.Join(root, "ordersync.yaml"), environ)
	if err != nil {
		t.Fatalf("loadConfig with the pod's environment: %v", err)
	}
	for _, p := range []*string{&cfg.Kafka.TLS.CAFile, &cfg.Kafka.TLS.CertFile, &cfg.Kafka.TLS.KeyFile, &cfg.Redis.TLS.CAFile, &cfg.Top.SessionsFile} {
		if *p != "" {
			if !strings.HasPrefix(*p, configDir+"/") {
				t.Errorf("%s is outside the mounted %s", *p, configDir)
			}
			*p = root + strings.TrimPrefix(*p, configDir)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the pod's configuration does not validate: %v", err)
	}
	if cfg.Top.SessionsFile != "" {
		sessions, err := loadSessions(cfg.Top.SessionsFile)
		if err != nil {
			t.Errorf("the mounted sessions file: %v", err)
		} else if values.Secret.ExistingSecret == "" {
			if diff := cmp.Diff(values.Secret.Sessions, sessions); diff != "" {
				t.Errorf("mounted sessions mismatch (-values +mounted):\n%s", diff)
			}
		}
	}
}

// checkEnv: credentials only through secretKeyRef, and the OTEL_* variables the SDK reads.
func checkEnv(t *testing.T, r *release) {
	t.Helper()
	env := map[string]corev1.EnvVar{}
	var order []string
	for _, e := range r.deployment.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
		order = append(order, e.Name)
	}
	for _, name := range []string{"ORDERSYNC_TOP_APP_KEY", "ORDERSYNC_TOP_APP_SECRET", "ORDERSYNC_KAFKA_SASL_USERNAME", "ORDERSYNC_KAFKA_SASL_PASSWORD", "ORDERSYNC_REDIS_PASSWORD"} {
		e, ok := env[name]
		if ok && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("%s is not taken from a Secret: %s", name, toJSON(e))
		}
		if !ok && (name == "ORDERSYNC_TOP_APP_KEY" || name == "ORDERSYNC_TOP_APP_SECRET") {
			t.Errorf("no %s", name)
		}
	}
	if e := env["K8S_POD_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("K8S_POD_NAME = %s, want the downward API metadata.name", toJSON(e))
	}
	attrs := env["OTEL_RESOURCE_ATTRIBUTES"].Value
	if !strings.Contains(attrs, "k8s.pod.name=$(K8S_POD_NAME)") || slices.Index(order, "K8S_POD_NAME") > slices.Index(order, "OTEL_RESOURCE_ATTRIBUTES") {
		t.Errorf("OTEL_RESOURCE_ATTRIBUTES = %q, want k8s.pod.name=$(K8S_POD_NAME) with K8S_POD_NAME defined before it", attrs)
	}
	for _, name := range []string{"OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"} {
		if env[name].Value == "" {
			t.Errorf("%s is not set", name)
		}
	}
	if endpoint := env["OTEL_EXPORTER_OTLP_ENDPOINT"].Value; endpoint != "" && env["OTEL_EXPORTER_OTLP_PROTOCOL"].Value == "" {
		t.Error("OTEL_EXPORTER_OTLP_ENDPOINT without OTEL_EXPORTER_OTLP_PROTOCOL")
	} else if endpoint == "" && env["OTEL_TRACES_EXPORTER"].Value != "none" {
		t.Errorf("no OTLP endpoint, but OTEL_TRACES_EXPORTER = %q, want none", env["OTEL_TRACES_EXPORTER"].Value)
	}
}

func materialise(t *testing.T, root, path, content string) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func checkScaleTarget(t *testing.T, what, apiVersion, kind, name, deployment string) {
	t.Helper()
	if apiVersion != "apps/v1" || kind != "Deployment" || name != deployment {
		t.Errorf("%s targets %s %s %s, want apps/v1 Deployment %s", what, apiVersion, kind, name, deployment)
	}
}

func checkServiceMonitor(t *testing.T, r *release) {
	t.Helper()
	sm := r.serviceMonitor
	if !isSubset(sm.Spec.Selector.MatchLabels, r.service.Labels) {
		t.Errorf("ServiceMonitor selector %v does not select the Service labels %v", sm.Spec.Selector.MatchLabels, r.service.Labels)
	}
	if sm.Metadata.Namespace != releaseNS && (sm.Spec.NamespaceSelector == nil || !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, releaseNS)) {
		t.Errorf("ServiceMonitor in %s does not select namespace %s", sm.Metadata.Namespace, releaseNS)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints = %s, want /metrics on port http", toJSON(sm.Spec.Endpoints))
	}
}

func checkScaledObject(t *testing.T, r *release, cfg Config, wantTopics []string, wantMax int32, wantAuth []string) {
	t.Helper()
	so := r.scaledObject
	checkScaleTarget(t, "ScaledObject", so.Spec.ScaleTargetRef.APIVersion, so.Spec.ScaleTargetRef.Kind, so.Spec.ScaleTargetRef.Name, r.deployment.Name)
	if got := deref(so.Spec.MaxReplicaCount); got != wantMax {
		t.Errorf("maxReplicaCount = %d, want %d", got, wantMax)
	}
	if got := deref(so.Spec.MinReplicaCount); got < 1 || got > deref(so.Spec.MaxReplicaCount) {
		t.Errorf("minReplicaCount = %d, want 1..maxReplicaCount", got)
	}
	var topics []string
	for _, tr := range so.Spec.Triggers {
		md := tr.Metadata
		topics = append(topics, md["topic"])
		if tr.Type != "kafka" {
			t.Errorf("trigger %s has type %q, want kafka", tr.Name, tr.Type)
		}
		if got, want := md["bootstrapServers"], strings.Join(cfg.Kafka.Brokers, ","); got != want {
			t.Errorf("trigger %s bootstrapServers = %q, want %q", tr.Name, got, want)
		}
		if got, want := md["consumerGroup"], cfg.Kafka.GroupID; got != want {
			t.Errorf("trigger %s consumerGroup = %q, want %q", tr.Name, got, want)
		}
		if md["lagThreshold"] == "" || md["allowIdleConsumers"] != "false" {
			t.Errorf("trigger %s metadata = %v, want a lagThreshold and allowIdleConsumers false", tr.Name, md)
		}
		if want := map[string]string{"first": "earliest", "last": "latest"}[cfg.Kafka.StartOffset]; md["offsetResetPolicy"] != want {
			t.Errorf("trigger %s offsetResetPolicy = %q, want %q (kafka.start_offset %s)", tr.Name, md["offsetResetPolicy"], want, cfg.Kafka.StartOffset)
		}
		if cfg.Kafka.TLS.Enabled != (md["tls"] == "enable") {
			t.Errorf("trigger %s tls = %q, kafka.tls.enabled = %v", tr.Name, md["tls"], cfg.Kafka.TLS.Enabled)
		}
		if (cfg.Kafka.SASL.Mechanism == "") != (md["sasl"] == "") {
			t.Errorf("trigger %s sasl = %q, kafka.sasl.mechanism = %q", tr.Name, md["sasl"], cfg.Kafka.SASL.Mechanism)
		}
		if (tr.AuthenticationRef != nil) != (r.triggerAuth != nil) || (tr.AuthenticationRef != nil && tr.AuthenticationRef.Name != r.triggerAuth.Metadata.Name) {
			t.Errorf("trigger %s authenticationRef does not name the rendered TriggerAuthentication", tr.Name)
		}
	}
	sort.Strings(topics)
	enabled := slices.Sorted(maps.Values(cfg.ChannelTopics()))
	if diff := cmp.Diff(enabled, topics); diff != "" {
		t.Errorf("ScaledObject topics differ from the enabled channels' topics (-channels +triggers):\n%s", diff)
	}
	if diff := cmp.Diff(wantTopics, topics); diff != "" {
		t.Errorf("ScaledObject topics mismatch (-want +got):\n%s", diff)
	}
	var params []string
	if r.triggerAuth != nil {
		for _, ref := range r.triggerAuth.Spec.SecretTargetRef {
			params = append(params, ref.Parameter)
			if ref.Name == "" || ref.Key == "" {
				t.Errorf("TriggerAuthentication parameter %s has no Secret name or key", ref.Parameter)
			}
			if r.secret != nil && ref.Name == r.secret.Name {
				if _, ok := r.secret.Data[ref.Key]; !ok {
					t.Errorf("TriggerAuthentication parameter %s references key %s the Secret does not have", ref.Parameter, ref.Key)
				}
			}
		}
	}
	if diff := cmp.Diff(wantAuth, params); diff != "" {
		t.Errorf("TriggerAuthentication parameters mismatch (-want +got):\n%s", diff)
	}
}

// The chart's config defaults are the worker's defaults: only the addresses (Kubernetes service names
// instead of localhost) and the chart-managed sessions file differ.
func TestChartConfigDefaults(t *testing.T) {
	out, err := renderChart(t, "-f", filepath.Join(chartDir, "ci", "default-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := parseRelease(t, out)
	got, err := loadConfig(writeFile(t, "ordersync.yaml", r.configMap.Data["ordersync.yaml"]), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := with(func(c *Config) {
		c.Kafka.Brokers = []string{"kafka:9092"}
		c.Redis.Addrs = []string{"redis:6379"}
		c.Top.SessionsFile = configDir + "/secrets/sessions.yaml"
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chart config defaults differ from defaultConfig() (-worker +chart):\n%s", diff)
	}
}

// Bad values fail `helm template` (and so `helm install`) with a message naming what to fix.
func TestChartRejectsBadValues(t *testing.T) {
	base := filepath.Join(chartDir, "ci", "default-values.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "string where a number belongs", args: []string{"--set", "replicaCount=two"}, want: "at '/replicaCount': got string, want integer"},
		{name: "quoted number", args: []string{"--set-string", "config.worker.max_in_flight=64"}, want: "at '/config/worker/max_in_flight': got string, want integer"},
		{name: "number where a string belongs", args: []string{"--set", "secret.appKey=12345678"}, want: "at '/secret/appKey': got number, want string"},
		{name: "unknown top-level key", args: []string{"--set", "replicasCount=2"}, want: "additional properties 'replicasCount' not allowed"},
		{name: "unknown config key", args: []string{"--set", "config.kafka.broker=k:9092"}, want: "additional properties 'broker' not allowed"},
		{name: "unknown channel", args: []string{"--set", "config.channels.tmall-trade.enabled=true"}, want: "additional properties 'tmall-trade' not allowed"},
		{name: "secret in the config", args: []string{"--set", "config.top.app_secret=x"}, want: "additional properties 'app_secret' not allowed"},
		{name: "password in the config", args: []string{"--set", "config.redis.password=x"}, want: "additional properties 'password' not allowed"},
		{name: "bad enum", args: []string{"--set", "config.kafka.sasl.mechanism=SCRAM-SHA-512"}, want: "/config/kafka/sasl/mechanism"},
		{name: "bad duration", args: []string{"--set", "config.kafka.max_wait=250"}, want: "/config/kafka/max_wait"},
		{name: "bad broker", args: []string{"--set", "config.kafka.brokers={kafka}"}, want: "/config/kafka/brokers/0"},
		{name: "http addr on one interface", args: []string{"--set", "config.http.addr=127.0.0.1:8080"}, want: "/config/http/addr"},
		{name: "HPA and KEDA", args: []string{"--set", "autoscaling.enabled=true", "--set", "keda.enabled=true"}, want: "autoscaling.enabled and keda.enabled are both true"},
		{name: "grace period not above shutdown", args: []string{"--set", "terminationGracePeriodSeconds=30"}, want: "terminationGracePeriodSeconds (30) must be greater than config.worker.shutdown_timeout (30s = 30s)"},
		{name: "grace period vs longer shutdown", args: []string{"--set", "config.worker.shutdown_timeout=2m", "--set", "terminationGracePeriodSeconds=90"}, want: "terminationGracePeriodSeconds (90) must be greater than config.worker.shutdown_timeout (2m = 120s)"},
		{name: "no app secret", args: []string{"--set", "secret.appSecret="}, want: "secret.appSecret is required"},
		{name: "SASL without credentials", args: []string{"--set", "config.kafka.sasl.mechanism=plain"}, want: "secret.kafkaSaslUsername and secret.kafkaSaslPassword are required"},
		{name: "TLS secret without TLS", args: []string{"--set", "kafkaTLS.secretName=tls"}, want: "kafkaTLS.secretName is set but config.kafka.tls.enabled is false"},
		{name: "client cert without key", args: []string{"--set", "config.kafka.tls.enabled=true", "--set", "kafkaTLS.secretName=tls", "--set", "kafkaTLS.certKey=tls.crt"}, want: "kafkaTLS.certKey and kafkaTLS.keyKey go together"},
		{name: "PDB with both bounds", args: []string{"--set", "pdb.minAvailable=1"}, want: "pdb.minAvailable and pdb.maxUnavailable are both set"},
		{name: "KEDA minimum above the partition cap", args: []string{"--set", "keda.enabled=true", "--set", "keda.partitions=2", "--set", "keda.minReplicaCount=3"}, want: "keda.minReplicaCount (3) exceeds the replica cap min(keda.maxReplicaCount, keda.partitions) = 2"},
		{name: "KEDA minimum zero", args: []string{"--set", "keda.enabled=true", "--set", "keda.minReplicaCount=0"}, want: "/keda/minReplicaCount"},
		{name: "no channel enabled", args: []string{
			"--set", "config.channels.tmall-aliauto.enabled=false", "--set", "config.channels.omni-saas.enabled=false",
			"--set", "config.channels.icbu-trade.enabled=false", "--set", "config.channels.mos-haiding.enabled=false",
			"--set", "config.channels.diantao-tripartite.enabled=false",
		}, want: "config.channels: at least one channel must be enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderChart(t, append([]string{"-f", base}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("helm template = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("helm lint --strict fails too", func(t *testing.T) {
		out, err := exec.Command(helm(t), "lint", "--strict", chartDir, "-f", base, "--set", "replicaCount=two").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "got string, want integer") {
			t.Fatalf("helm lint = %v, want it to fail on the schema:\n%s", err, out)
		}
	})
}

// A change of the configuration or of the chart's Secret changes the pod template, so pods roll.
func TestChartChecksumsRollPods(t *testing.T) {
	base := filepath.Join(chartDir, "ci", "default-values.yaml")
	annotations := func(args ...string) map[string]string {
		out, err := renderChart(t, append([]string{"-f", base}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return parseRelease(t, out).deployment.Spec.Template.Annotations
	}
	before := annotations()
	tests := []struct {
		name    string
		args    []string
		changed string
	}{
		{name: "config", args: []string{"--set", "config.log.level=debug"}, changed: "checksum/config"},
		{name: "secret", args: []string{"--set", "secret.appSecret=ci-rotated-Ym3Qs8"}, changed: "checksum/secret"},
		{name: "sessions", args: []string{"--set", "secret.sessions.shop-z=ci-session-Gh2Wd6"}, changed: "checksum/secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := annotations(tt.args...)
			for _, key := range []string{"checksum/config", "checksum/secret"} {
				if changed := before[key] != after[key]; changed != (key == tt.changed) {
					t.Errorf("%s changed = %v after %v", key, changed, tt.args)
				}
			}
		})
	}
}

// yamllint on the chart's plain YAML (templates are checked by helm lint).
func TestYamllintChart(t *testing.T) {
	yamllint(t, chartDir+"/Chart.yaml", chartDir+"/values.yaml", chartDir+"/ci/")
}

// The schema is valid JSON with $schema, and closed: every object says additionalProperties.
func TestChartSchemaIsClosed(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	if schema["$schema"] == nil {
		t.Error("values.schema.json has no $schema")
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"]; ok {
				if _, closed := v["additionalProperties"]; !closed {
					t.Errorf("%s: object with properties but no additionalProperties", path)
				}
				for k, p := range props.(map[string]any) {
					walk(path+"/"+k, p)
				}
			}
			for _, k := range []string{"items", "additionalProperties", "oneOf"} {
				if sub, ok := v[k]; ok {
					walk(path+"/"+k, sub)
				}
			}
		case []any:
			for i, sub := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), sub)
			}
		}
	}
	walk("", schema)
	for name, def := range schema["$defs"].(map[string]any) {
		walk("$defs/"+name, def)
	}
}

// The image is built as issue 7 says, and the Makefile's static target builds the same binary.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{
		"FROM --platform=$BUILDPLATFORM golang:1.26",
		"CGO_ENABLED=0",
		"-trimpath",
		`-ldflags "-s -w -X main.version=${VERSION}"`,
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"USER 65532:65532",
		`ENTRYPOINT ["/worker"]`,
		`CMD ["run"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile does not contain %q", want)
		}
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LDFLAGS   := -s -w -X main.version=$(VERSION)", "static:", "CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'", "image:"} {
		if !strings.Contains(string(mk), want) {
			t.Errorf("Makefile does not contain %q", want)
		}
	}
}

func isSubset(sub, super map[string]string) bool {
	if len(sub) == 0 {
		return false
	}
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
