package chart

// The configuration the chart gives the worker: the ConfigMap holds no credential, and the pod's files
// and environment pass `worker run --check` of the real binary.

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// configDir is where the chart mounts the configuration volume.
const configDir = "/etc/ordersync"

// credentialKeys are the configuration keys that hold or point at a credential: the chart passes them
// through the environment from a Secret, never through the ConfigMap.
var credentialKeys = []string{
	"top.app_key", "top.app_secret", "top.app_secret_file", "kafka.sasl.username", "kafka.sasl.password", "redis.password",
}

// fileKeys are the configuration keys that name a file; in the pod each must be under configDir.
var fileKeys = []string{
	"kafka.tls.ca_file", "kafka.tls.cert_file", "kafka.tls.key_file", "redis.tls.ca_file", "top.sessions_file", "top.app_secret_file",
}

// checkConfigMap checks the rendered ordersync.yaml: the only key of the ConfigMap, only keys the worker
// knows, no credential, and the sessions file where the chart mounts it.
func checkConfigMap(t *testing.T, r *release, values chartValues) {
	t.Helper()
	text, ok := r.configMap.Data["ordersync.yaml"]
	if !ok || len(r.configMap.Data) != 1 || len(r.configMap.BinaryData) != 0 {
		t.Fatalf("ConfigMap data keys = %v, want only ordersync.yaml", slices.Collect(maps.Keys(r.configMap.Data)))
	}
	file, err := parseSettings(t, text)
	if err != nil {
		t.Fatalf("the rendered ordersync.yaml: %v\n%s", err, text)
	}
	for _, key := range credentialKeys {
		if file.str(t, key) != "" {
			t.Errorf("the rendered ordersync.yaml sets the credential %s:\n%s", key, text)
		}
	}
	wantSessions := ""
	if values.Secret.ExistingSecret != "" || len(values.Secret.Sessions) > 0 {
		wantSessions = configDir + "/secrets/sessions.yaml"
	}
	if got := file.str(t, "top.sessions_file"); got != wantSessions {
		t.Errorf("top.sessions_file = %q, want %q", got, wantSessions)
	}
}

// checkReport is what `worker run --check` prints for a configuration that passes.
var checkReport = regexp.MustCompile(`^configuration OK \((\d+) channel\(s\) enabled, (\d+) seller session\(s\)\)\n$`)

// checkRunnableConfig checks the pod's configuration the way the pod runs it. The projected volume
// mounted at configDir is materialised under a temporary root (the ConfigMap's items, the Secrets'
// items: the chart's Secret, or stand-ins for Secrets the operator manages); the container's environment
// is resolved (secretKeyRef from those Secrets, fieldRef as placeholders); every configDir path in the
// files, the environment and the arguments is moved to the root. The worker binary then runs the
// container's arguments plus --check with exactly that environment and must pass: every variable, key
// and path the chart wires exists in the worker, and the sessions file loads. It returns the pod's
// settings: defaults, the mounted file, the environment.
func checkRunnableConfig(t *testing.T, r *release, values chartValues) settings {
	t.Helper()
	spec := r.deployment.Spec.Template.Spec
	c := spec.Containers[0]
	secretData := func(name, key string) (string, bool) {
		if r.secret != nil && r.secret.Name == name {
			v, ok := r.secret.Data[key]
			return string(v), ok
		}
		if name == values.Secret.ExistingSecret && strings.Contains(key, "sessions") {
			// The operator's sessions hold the configured default seller (the worker refuses
			// sessions without it).
			sessions := "seller-from-existing-secret: external-session-key\n"
			if s := values.Config.Top.DefaultSeller; s != "" {
				sessions += s + ": external-session-of-the-default-seller\n"
			}
			return sessions, true
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
		default:
			t.Errorf("env %s: unexpected source %s", e.Name, toJSON(e.ValueFrom))
		}
	}

	// The projected volume mounted at configDir: path below configDir → content.
	mounted := map[string]string{}
	mount := func(path, content string) {
		if _, dup := mounted[path]; dup {
			t.Errorf("%s/%s is projected twice", configDir, path)
		}
		mounted[path] = content
	}
	var found bool
	for _, m := range c.VolumeMounts {
		if m.MountPath != configDir {
			continue
		}
		found = true
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
						mount(it.Path, r.configMap.Data[it.Key])
					}
				case src.Secret != nil:
					for _, it := range src.Secret.Items {
						v, ok := secretData(src.Secret.Name, it.Key)
						if !ok {
							t.Errorf("volume item %s references %s/%s, which does not exist", it.Path, src.Secret.Name, it.Key)
						}
						mount(it.Path, v)
					}
				default:
					t.Errorf("unexpected projected source %s", toJSON(src))
				}
			}
		}
	}
	if !found {
		t.Fatalf("nothing is mounted at %s", configDir)
	}

	// The pod's settings, as the worker will see them.
	args := slices.Clone(c.Args)
	configFile, ok := flagValue(args, "--config")
	if !ok || !strings.HasPrefix(configFile, configDir+"/") {
		t.Fatalf("args %q do not name a --config file under %s", args, configDir)
	}
	text, ok := mounted[strings.TrimPrefix(configFile, configDir+"/")]
	if !ok {
		t.Fatalf("--config %s is not a mounted file", configFile)
	}
	pod, err := parseSettings(t, text)
	if err != nil {
		t.Fatalf("the mounted %s: %v", configFile, err)
	}
	if err := pod.applyEnv(environ); err != nil {
		t.Fatalf("the pod's environment: %v", err)
	}
	for _, key := range fileKeys {
		if p := pod.str(t, key); p != "" && !strings.HasPrefix(p, configDir+"/") {
			t.Errorf("%s = %s is outside the mounted %s", key, p, configDir)
		}
	}

	// Materialise under root and run the worker.
	root := t.TempDir()
	move := strings.NewReplacer(configDir+"/", root+"/")
	for path, content := range mounted {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(move.Replace(content)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{} // exactly the pod's environment, nothing of the test's
	for _, kv := range environ {
		env = append(env, move.Replace(kv))
	}
	for i := range args {
		args[i] = move.Replace(args[i])
	}
	args = append(args, "--check")
	cmd := exec.Command(worker(t), args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("worker %s with the pod's environment and files: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	report := checkReport.FindStringSubmatch(stdout.String())
	if report == nil {
		t.Fatalf("worker %s printed %q, want %s", strings.Join(args, " "), stdout.String(), checkReport)
	}
	channels, _ := strconv.Atoi(report[1])
	sessionCount, _ := strconv.Atoi(report[2])

	if got, want := channels, len(pod.channelTopics(t)); got != want {
		t.Errorf("the worker enables %d channel(s), the pod's settings %d", got, want)
	}
	var sessions map[string]string
	if p := pod.str(t, "top.sessions_file"); p != "" {
		if err := yaml.Unmarshal([]byte(mounted[strings.TrimPrefix(p, configDir+"/")]), &sessions); err != nil {
			t.Fatalf("the mounted sessions file: %v", err)
		}
		if values.Secret.ExistingSecret == "" {
			if diff := cmp.Diff(values.Secret.Sessions, sessions); diff != "" {
				t.Errorf("mounted sessions mismatch (-values +mounted):\n%s", diff)
			}
		}
	}
	if sessionCount != len(sessions) {
		t.Errorf("the worker loaded %d seller session(s), the mounted file has %d", sessionCount, len(sessions))
	}
	return pod
}

// flagValue returns the value of a "--name value" or "--name=value" argument.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// The chart's config defaults are the worker's defaults: only the addresses (Kubernetes service names
// instead of localhost) and the chart-managed sessions file differ.
func TestChartConfigDefaults(t *testing.T) {
	out, err := renderChart(t, "-f", filepath.Join(chartDir, "ci", "default-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := parseRelease(t, out)
	got, err := parseSettings(t, r.configMap.Data["ordersync.yaml"])
	if err != nil {
		t.Fatal(err)
	}
	want := defaultSettings(t)
	for key, v := range map[string]any{
		"kafka.brokers":     []any{"kafka:9092"},
		"redis.addrs":       []any{"redis:6379"},
		"top.sessions_file": configDir + "/secrets/sessions.yaml",
	} {
		parent := want.get(t, key[:strings.LastIndex(key, ".")]).(map[string]any)
		parent[key[strings.LastIndex(key, ".")+1:]] = v
	}
	if diff := cmp.Diff(normalised(want), normalised(got)); diff != "" {
		t.Errorf("chart config defaults differ from the worker's (%s) (-worker +chart):\n%s", defaultsFile, diff)
	}
}
