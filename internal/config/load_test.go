package config

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultConfig(t *testing.T) {
	cfg := Default()
	if err := cfg.validate(false); err != nil {
		t.Fatalf("Default().validate(false) = %v, want nil", err)
	}
	err := cfg.Validate()
	for _, want := range []string{"top.app_key: required", "top.app_secret: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Default().Validate() = %v, want an error containing %q", err, want)
		}
	}
	cfg.Top.AppKey, cfg.Top.AppSecret = "12345678", testAppSecret
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() with credentials = %v, want nil", err)
	}
	got := cfg.ChannelTopics()
	want := map[string]string{
		"tmall-aliauto":      "orders.tmall-aliauto",
		"omni-saas":          "orders.omni-saas",
		"icbu-trade":         "orders.icbu-trade",
		"mos-haiding":        "orders.mos-haiding",
		"diantao-tripartite": "orders.diantao-tripartite",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ChannelTopics() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadConfigYAML(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Config
	}{
		{name: "empty file", yaml: "", want: Default()},
		{name: "comments only", yaml: "# nothing\n", want: Default()},
		{name: "empty mapping", yaml: "{}\n", want: Default()},
		{
			name: "scalars, durations and lists",
			yaml: `
kafka:
  brokers: [b1:9092, b2:9092]
  group_id: g
  max_wait: 500ms
  commit_interval: 0
  tls: {enabled: true, insecure_skip_verify: true}
redis:
  addrs: [r1:6379, r2:6379, r3:6379]
  db: 0
top:
  qps: 2.5
  burst: 5
  retryable_sub_codes: [isv.busy]
  retry: {multiplier: 3, max_elapsed_time: 2m}
worker:
  max_in_flight: 64
  retention: 72h
log: {level: debug, format: text}
`,
			want: with(func(c *Config) {
				c.Kafka.Brokers = []string{"b1:9092", "b2:9092"}
				c.Kafka.GroupID = "g"
				c.Kafka.MaxWait = 500 * time.Millisecond
				c.Kafka.CommitInterval = 0
				c.Kafka.TLS.Enabled, c.Kafka.TLS.InsecureSkipVerify = true, true
				c.Redis.Addrs = []string{"r1:6379", "r2:6379", "r3:6379"}
				c.Top.QPS, c.Top.Burst = 2.5, 5
				c.Top.RetryableSubCodes = []string{"isv.busy"}
				c.Top.Retry.Multiplier = 3
				c.Top.Retry.MaxElapsedTime = 2 * time.Minute
				c.Worker.MaxInFlight = 64
				c.Worker.Retention = 72 * time.Hour
				c.Log.Level, c.Log.Format = "debug", "text"
			}),
		},
		{
			name: "a channel entry changes only the fields it names",
			yaml: "channels:\n  omni-saas: {topic: pos.omni}\n  icbu-trade: {enabled: false}\n",
			want: with(func(c *Config) {
				c.Channels["omni-saas"] = Channel{Enabled: true, Topic: "pos.omni"}
				c.Channels["icbu-trade"] = Channel{Enabled: false, Topic: "orders.icbu-trade"}
			}),
		},
		{
			name: "null keeps the default",
			yaml: "kafka:\n  brokers:\n  group_id: ~\ntop:\n",
			want: Default(),
		},
		{
			name: "empty list",
			yaml: "top:\n  retryable_sub_codes: []\n",
			want: Default(),
		},
		{
			name: "numbers and booleans as strings stay text",
			yaml: "top:\n  app_key: 12345678\n  default_seller: true\n",
			want: with(func(c *Config) { c.Top.AppKey, c.Top.DefaultSeller = "12345678", "true" }),
		},
		{
			name: "aliases",
			yaml: "kafka:\n  brokers: &b [k:9092]\nredis:\n  addrs: *b\n",
			want: with(func(c *Config) { c.Kafka.Brokers, c.Redis.Addrs = []string{"k:9092"}, []string{"k:9092"} }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "ordersync.yaml", tt.yaml)
			got, err := Load(path, nil)
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Load() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigYAMLErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{name: "unknown top-level key", yaml: "kafka: {}\nkafak: {}\n", want: "kafak (line 2): unknown key"},
		{name: "unknown nested key", yaml: "kafka:\n  tls:\n    enabeld: true\n", want: "kafka.tls.enabeld (line 3): unknown key"},
		{name: "unknown channel field", yaml: "channels:\n  omni-saas:\n    topik: x\n", want: "channels.omni-saas.topik (line 3): unknown key"},
		{name: "duplicate key", yaml: "log:\n  level: info\n  level: debug\n", want: "log.level (line 3): duplicate key"},
		{name: "string for an integer", yaml: "worker:\n  max_in_flight: lots\n", want: "worker.max_in_flight (line 2): must be an integer"},
		{name: "float for an integer", yaml: "worker:\n  max_in_flight: 1.5\n", want: "worker.max_in_flight (line 2): must be an integer"},
		{name: "duration without unit", yaml: "kafka:\n  max_wait: 250\n", want: `kafka.max_wait (line 2): invalid duration "250"`},
		{name: "duration mapping", yaml: "kafka:\n  max_wait: {ms: 250}\n", want: "kafka.max_wait (line 2): must be a duration"},
		{name: "bool as word", yaml: "kafka:\n  tls:\n    enabled: maybe\n", want: "kafka.tls.enabled (line 3): must be true or false"},
		{name: "scalar for a list", yaml: "kafka:\n  brokers: b1:9092,b2:9092\n", want: "kafka.brokers (line 2): must be a list of strings"},
		{name: "list item not a string", yaml: "redis:\n  addrs: [[a]]\n", want: "redis.addrs[0] (line 2): must be a string"},
		{name: "scalar for a section", yaml: "kafka: localhost:9092\n", want: "kafka (line 1): must be a mapping"},
		{name: "number for a float that is text", yaml: "top:\n  qps: fast\n", want: "top.qps (line 2): must be a number"},
		{name: "two documents", yaml: "log: {level: info}\n---\nlog: {level: debug}\n", want: "more than one YAML document"},
		{name: "not YAML", yaml: "kafka: [\n", want: "yaml:"},
		{name: "anchor under an unknown key", yaml: "x: &b [k:9092]\nkafka:\n  brokers: *b\n", want: "x (line 1): unknown key"},
		{name: "secret of the wrong type is not echoed", yaml: "top:\n  app_secret: [" + testAppSecret + "]\n", want: "top.app_secret (line 2): must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "ordersync.yaml", tt.yaml)
			_, err := Load(path, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load() = %v, want an error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("Load() = %v, want the file name in the error", err)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Error("Load(missing file) = nil error")
	}
}

func TestAppSecretFile(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "app-secret")
	if err := os.WriteFile(secretFile, []byte(testAppSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("read and trimmed", func(t *testing.T) {
		cfg, err := Load("", []string{"ORDERSYNC_TOP_APP_SECRET_FILE=" + secretFile})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(cfg.Top.AppSecret), testAppSecret; got != want {
			t.Errorf("AppSecret = %q, want %q", got, want)
		}
	})
	errTests := []struct {
		name    string
		environ []string
		want    string
	}{
		{name: "both set", environ: []string{"ORDERSYNC_TOP_APP_SECRET_FILE=" + secretFile, "ORDERSYNC_TOP_APP_SECRET=" + testAppSecret}, want: "top.app_secret_file: set together with top.app_secret"},
		{name: "missing", environ: []string{"ORDERSYNC_TOP_APP_SECRET_FILE=" + filepath.Join(dir, "nope")}, want: "top.app_secret_file: open"},
		{name: "empty", environ: []string{"ORDERSYNC_TOP_APP_SECRET_FILE=" + emptyFile}, want: "top.app_secret_file: " + emptyFile + " is empty"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("", tt.environ)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load() = %v, want an error containing %q", err, tt.want)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
}

// The documented example configuration is the defaults: it loads strictly, documents every key, and
// validates once the credentials come from the environment (as `worker run --check` does in CI).
func TestExampleConfig(t *testing.T) {
	const path = "../../configs/ordersync.yaml"
	got, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load(%s) = %v", path, err)
	}
	if diff := cmp.Diff(Default(), got); diff != "" {
		t.Errorf("%s differs from Default() (-want +got):\n%s", path, diff)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys, gotKeys := yamlKeyPaths(t, []byte(Default().String())), yamlKeyPaths(t, data)
	sort.Strings(wantKeys)
	sort.Strings(gotKeys)
	if diff := cmp.Diff(wantKeys, gotKeys); diff != "" {
		t.Errorf("%s does not list every key (-want +got):\n%s", path, diff)
	}
	withCreds, err := Load(path, []string{"ORDERSYNC_TOP_APP_KEY=12345678", "ORDERSYNC_TOP_APP_SECRET=" + testAppSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := withCreds.Validate(); err != nil {
		t.Errorf("Validate() of %s with credentials = %v", path, err)
	}

	sessions, err := LoadSessions("../../configs/sessions.example.yaml")
	if err != nil {
		t.Fatalf("LoadSessions(sessions.example.yaml) = %v", err)
	}
	if len(sessions) == 0 {
		t.Error("sessions.example.yaml has no sessions")
	}
}

func TestConfigAllowEviction(t *testing.T) {
	if Default().Redis.AllowEviction {
		t.Error("redis.allow_eviction defaults to true, want false")
	}
	tests := []struct {
		name    string
		yaml    string
		environ []string
		want    bool
		wantErr string
	}{
		{name: "default", yaml: "redis:\n  addrs: [r:6379]\n"},
		{name: "file", yaml: "redis:\n  allow_eviction: true\n", want: true},
		{name: "environment over file", yaml: "redis:\n  allow_eviction: true\n", environ: []string{"ORDERSYNC_REDIS_ALLOW_EVICTION=false"}},
		{name: "environment", environ: []string{"ORDERSYNC_REDIS_ALLOW_EVICTION=true"}, want: true},
		{name: "not a boolean", yaml: "redis:\n  allow_eviction: sometimes\n", wantErr: "redis.allow_eviction (line 2): must be true or false"},
		{name: "not a boolean in the environment", environ: []string{"ORDERSYNC_REDIS_ALLOW_EVICTION=sometimes"}, wantErr: "ORDERSYNC_REDIS_ALLOW_EVICTION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeFile(t, "ordersync.yaml", tt.yaml), tt.environ)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadConfig: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if cfg.Redis.AllowEviction != tt.want {
				t.Errorf("redis.allow_eviction = %v, want %v", cfg.Redis.AllowEviction, tt.want)
			}
			if err := cfg.validate(false); err != nil {
				t.Errorf("validate: %v", err)
			}
		})
	}
}
