package chart

// Every value set in charts/ordersync/ci/: helm lint, helm template, and the rendered release checked
// object by object and against the pod's configuration.

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	nonRootID      = 65532
	chartSecretTag = "ci-" // every secret value in the chart's ci value sets starts with it
)

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
	Config struct {
		Top struct {
			DefaultSeller string `json:"default_seller"`
		} `json:"top"`
	} `json:"config"`
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

			checkConfigMap(t, r, values)
			checkLabels(t, r)
			checkPodSecurity(t, r)
			checkNoSecretsOutsideSecret(t, r, values)
			pod := checkRunnableConfig(t, r, values)
			checkProbesAndPorts(t, r, pod, tt.wantPort)
			checkEnv(t, r)

			d := r.deployment
			if got := d.Spec.Template.Spec.TerminationGracePeriodSeconds; got == nil || *got != tt.wantGrace {
				t.Errorf("terminationGracePeriodSeconds = %v, want %d", deref(got), tt.wantGrace)
			}
			if got, shutdown := d.Spec.Template.Spec.TerminationGracePeriodSeconds, pod.duration(t, "worker.shutdown_timeout"); got == nil || float64(*got) <= shutdown.Seconds() {
				t.Errorf("terminationGracePeriodSeconds = %v, want > worker.shutdown_timeout %v", deref(got), shutdown)
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
				checkScaledObject(t, r, pod, tt.wantTopics, tt.wantKEDAMax, tt.wantAuth)
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

func checkProbesAndPorts(t *testing.T, r *release, pod settings, wantPort int32) {
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
	if addr, want := pod.str(t, "http.addr"), fmt.Sprintf(":%d", port); addr != want {
		t.Errorf("http.addr = %q, but the container port is %d", addr, port)
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

// checkEnv: credentials only through secretKeyRef, and the OTEL_* variables the SDK reads.
func checkEnv(t *testing.T, r *release) {
	t.Helper()
	env := map[string]corev1.EnvVar{}
	var order []string
	for _, e := range r.deployment.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
		order = append(order, e.Name)
	}
	for _, name := range []string{"ORDERSYNC_TOP_APP_KEY", "ORDERSYNC_KAFKA_SASL_USERNAME", "ORDERSYNC_KAFKA_SASL_PASSWORD", "ORDERSYNC_REDIS_PASSWORD"} {
		e, ok := env[name]
		if ok && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("%s is not taken from a Secret: %s", name, toJSON(e))
		}
		if !ok && name == "ORDERSYNC_TOP_APP_KEY" {
			t.Errorf("no %s", name)
		}
	}
	// The app secret comes as a file of the mounted Secret, so that a rotation reaches the running
	// worker; never as a variable.
	if e, ok := env["ORDERSYNC_TOP_APP_SECRET"]; ok {
		t.Errorf("ORDERSYNC_TOP_APP_SECRET is set (%s); want the secret as a mounted file", toJSON(e))
	}
	if e := env["ORDERSYNC_TOP_APP_SECRET_FILE"]; e.Value != configDir+"/secrets/app-secret" {
		t.Errorf("ORDERSYNC_TOP_APP_SECRET_FILE = %s, want %s/secrets/app-secret", toJSON(e), configDir)
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

func checkScaledObject(t *testing.T, r *release, pod settings, wantTopics []string, wantMax int32, wantAuth []string) {
	t.Helper()
	so := r.scaledObject
	checkScaleTarget(t, "ScaledObject", so.Spec.ScaleTargetRef.APIVersion, so.Spec.ScaleTargetRef.Kind, so.Spec.ScaleTargetRef.Name, r.deployment.Name)
	if got := deref(so.Spec.MaxReplicaCount); got != wantMax {
		t.Errorf("maxReplicaCount = %d, want %d", got, wantMax)
	}
	if got := deref(so.Spec.MinReplicaCount); got < 1 || got > deref(so.Spec.MaxReplicaCount) {
		t.Errorf("minReplicaCount = %d, want 1..maxReplicaCount", got)
	}
	brokers, groupID := strings.Join(pod.list(t, "kafka.brokers"), ","), pod.str(t, "kafka.group_id")
	startOffset, tls, mechanism := pod.str(t, "kafka.start_offset"), pod.flag(t, "kafka.tls.enabled"), pod.str(t, "kafka.sasl.mechanism")
	var topics []string
	for _, tr := range so.Spec.Triggers {
		md := tr.Metadata
		topics = append(topics, md["topic"])
		if tr.Type != "kafka" {
			t.Errorf("trigger %s has type %q, want kafka", tr.Name, tr.Type)
		}
		if got, want := md["bootstrapServers"], brokers; got != want {
			t.Errorf("trigger %s bootstrapServers = %q, want %q", tr.Name, got, want)
		}
		if got, want := md["consumerGroup"], groupID; got != want {
			t.Errorf("trigger %s consumerGroup = %q, want %q", tr.Name, got, want)
		}
		if md["lagThreshold"] == "" || md["allowIdleConsumers"] != "false" {
			t.Errorf("trigger %s metadata = %v, want a lagThreshold and allowIdleConsumers false", tr.Name, md)
		}
		if want := map[string]string{"first": "earliest", "last": "latest"}[startOffset]; md["offsetResetPolicy"] != want {
			t.Errorf("trigger %s offsetResetPolicy = %q, want %q (kafka.start_offset %s)", tr.Name, md["offsetResetPolicy"], want, startOffset)
		}
		if tls != (md["tls"] == "enable") {
			t.Errorf("trigger %s tls = %q, kafka.tls.enabled = %v", tr.Name, md["tls"], tls)
		}
		if (mechanism == "") != (md["sasl"] == "") {
			t.Errorf("trigger %s sasl = %q, kafka.sasl.mechanism = %q", tr.Name, md["sasl"], mechanism)
		}
		if (tr.AuthenticationRef != nil) != (r.triggerAuth != nil) || (tr.AuthenticationRef != nil && tr.AuthenticationRef.Name != r.triggerAuth.Metadata.Name) {
			t.Errorf("trigger %s authenticationRef does not name the rendered TriggerAuthentication", tr.Name)
		}
	}
	sort.Strings(topics)
	enabled := slices.Sorted(maps.Values(pod.channelTopics(t)))
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
