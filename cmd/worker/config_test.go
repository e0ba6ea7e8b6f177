package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// Distinctive secret values: no error, log line or rendering may ever contain them.
const (
	testAppSecret   = "app-secret-Zq81xWv"
	testSASLPass    = "sasl-pass-Kp27yRt"
	testRedisPass   = "redis-pass-Mh63uLs"
	testSessionKey  = "session-key-Jd94nQe"
	testSessionKey2 = "session-key-Bv50cXo"
)

var secretValues = []string{testAppSecret, testSASLPass, testRedisPass, testSessionKey, testSessionKey2}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range secretValues {
		if strings.Contains(s, v) {
			t.Errorf("%s contains the secret %q:\n%s", what, v, s)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := defaultConfig()
	if err := cfg.validate(false); err != nil {
		t.Fatalf("defaultConfig().validate(false) = %v, want nil", err)
	}
	err := cfg.Validate()
	for _, want := range []string{"top.app_key: required", "top.app_secret: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("defaultConfig().Validate() = %v, want an error containing %q", err, want)
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

// with returns defaultConfig changed by f.
func with(f func(c *Config)) Config {
	c := defaultConfig()
	f(&c)
	return c
}

func TestLoadConfigYAML(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Config
	}{
		{name: "empty file", yaml: "", want: defaultConfig()},
		{name: "comments only", yaml: "# nothing\n", want: defaultConfig()},
		{name: "empty mapping", yaml: "{}\n", want: defaultConfig()},
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
				c.Log = LogConfig{Level: "debug", Format: "text"}
			}),
		},
		{
			name: "a channel entry changes only the fields it names",
			yaml: "channels:\n  omni-saas: {topic: pos.omni}\n  icbu-trade: {enabled: false}\n",
			want: with(func(c *Config) {
				c.Channels["omni-saas"] = ChannelConfig{Enabled: true, Topic: "pos.omni"}
				c.Channels["icbu-trade"] = ChannelConfig{Enabled: false, Topic: "orders.icbu-trade"}
			}),
		},
		{
			name: "null keeps the default",
			yaml: "kafka:\n  brokers:\n  group_id: ~\ntop:\n",
			want: defaultConfig(),
		},
		{
			name: "empty list",
			yaml: "top:\n  retryable_sub_codes: []\n",
			want: defaultConfig(),
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
			got, err := loadConfig(path, nil)
			if err != nil {
				t.Fatalf("loadConfig() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("loadConfig() mismatch (-want +got):\n%s", diff)
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
			_, err := loadConfig(path, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadConfig() = %v, want an error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("loadConfig() = %v, want the file name in the error", err)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
	if _, err := loadConfig(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Error("loadConfig(missing file) = nil error")
	}
}

func TestLoadConfigEnv(t *testing.T) {
	file := "kafka:\n  group_id: from-file\n  client_id: from-file\nchannels:\n  omni-saas: {topic: file.omni}\n"
	tests := []struct {
		name    string
		environ []string
		want    Config
	}{
		{
			name: "file over defaults",
			want: with(func(c *Config) {
				c.Kafka.GroupID, c.Kafka.ClientID = "from-file", "from-file"
				c.Channels["omni-saas"] = ChannelConfig{Enabled: true, Topic: "file.omni"}
			}),
		},
		{
			name: "environment over file",
			environ: []string{
				"ORDERSYNC_KAFKA_GROUP_ID=from-env",
				"ORDERSYNC_CHANNELS_OMNI_SAAS_TOPIC=env.omni",
				"ORDERSYNC_CHANNELS_DIANTAO_TRIPARTITE_ENABLED=false",
				"ORDERSYNC_CHANNELS_TMALL_ALIAUTO_GATEWAY_URL=http://sim:18080/router/rest",
			},
			want: with(func(c *Config) {
				c.Kafka.GroupID, c.Kafka.ClientID = "from-env", "from-file"
				c.Channels["omni-saas"] = ChannelConfig{Enabled: true, Topic: "env.omni"}
				c.Channels["diantao-tripartite"] = ChannelConfig{Enabled: false, Topic: "orders.diantao-tripartite"}
				c.Channels["tmall-aliauto"] = ChannelConfig{Enabled: true, Topic: "orders.tmall-aliauto", GatewayURL: "http://sim:18080/router/rest"}
			}),
		},
		{
			name: "every kind of value",
			environ: []string{
				"ORDERSYNC_KAFKA_BROKERS= k1:9092, k2:9092 ,",
				"ORDERSYNC_KAFKA_MAX_WAIT=1s",
				"ORDERSYNC_KAFKA_TLS_ENABLED=true",
				"ORDERSYNC_KAFKA_SASL_PASSWORD=" + testSASLPass,
				"ORDERSYNC_REDIS_DB=3",
				"ORDERSYNC_REDIS_PASSWORD=" + testRedisPass,
				"ORDERSYNC_TOP_APP_KEY=12345678",
				"ORDERSYNC_TOP_APP_SECRET=" + testAppSecret,
				"ORDERSYNC_TOP_QPS=0.5",
				"ORDERSYNC_TOP_RETRYABLE_SUB_CODES=isv.a,isv.b",
				"ORDERSYNC_TOP_RETRY_MULTIPLIER=1.5",
				"ORDERSYNC_WORKER_MAX_IN_FLIGHT=1",
				"ORDERSYNC_HTTP_ADDR=:9090",
			},
			want: with(func(c *Config) {
				c.Kafka.GroupID, c.Kafka.ClientID = "from-file", "from-file"
				c.Channels["omni-saas"] = ChannelConfig{Enabled: true, Topic: "file.omni"}
				c.Kafka.Brokers = []string{"k1:9092", "k2:9092"}
				c.Kafka.MaxWait = time.Second
				c.Kafka.TLS.Enabled = true
				c.Kafka.SASL.Password = testSASLPass
				c.Redis.DB = 3
				c.Redis.Password = testRedisPass
				c.Top.AppKey, c.Top.AppSecret = "12345678", testAppSecret
				c.Top.QPS = 0.5
				c.Top.RetryableSubCodes = []string{"isv.a", "isv.b"}
				c.Top.Retry.Multiplier = 1.5
				c.Worker.MaxInFlight = 1
				c.HTTP.Addr = ":9090"
			}),
		},
		{
			name:    "an empty value sets the key empty",
			environ: []string{"ORDERSYNC_TOP_RETRYABLE_SUB_CODES=", "ORDERSYNC_KAFKA_CLIENT_ID="},
			want: with(func(c *Config) {
				c.Kafka.GroupID, c.Kafka.ClientID = "from-file", ""
				c.Channels["omni-saas"] = ChannelConfig{Enabled: true, Topic: "file.omni"}
			}),
		},
		{
			name:    "the last duplicate wins and other variables are ignored",
			environ: []string{"ORDERSYNC_LOG_LEVEL=warn", "PATH=/bin", "ORDERSYNC_LOG_LEVEL=error", "NOT_ORDERSYNC_X=1", "ORDERSYNC"},
			want: with(func(c *Config) {
				c.Kafka.GroupID, c.Kafka.ClientID = "from-file", "from-file"
				c.Channels["omni-saas"] = ChannelConfig{Enabled: true, Topic: "file.omni"}
				c.Log.Level = "error"
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "ordersync.yaml", file)
			got, err := loadConfig(path, tt.environ)
			if err != nil {
				t.Fatalf("loadConfig() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("loadConfig() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("without a file", func(t *testing.T) {
		got, err := loadConfig("", []string{"ORDERSYNC_REDIS_ADDRS=r:6379"})
		if err != nil {
			t.Fatal(err)
		}
		want := with(func(c *Config) { c.Redis.Addrs = []string{"r:6379"} })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("loadConfig(\"\") mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestLoadConfigEnvErrors(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{name: "unknown variable", environ: []string{"ORDERSYNC_KAFKA_BROKER=x:1"}, want: []string{"ORDERSYNC_KAFKA_BROKER: unknown configuration variable"}},
		{name: "a section is not a key", environ: []string{"ORDERSYNC_KAFKA_TLS=true"}, want: []string{"ORDERSYNC_KAFKA_TLS: unknown configuration variable"}},
		{name: "unknown channel", environ: []string{"ORDERSYNC_CHANNELS_FOO_TOPIC=x"}, want: []string{"ORDERSYNC_CHANNELS_FOO_TOPIC: unknown configuration variable"}},
		{name: "bad integer", environ: []string{"ORDERSYNC_WORKER_MAX_IN_FLIGHT=many"}, want: []string{`ORDERSYNC_WORKER_MAX_IN_FLIGHT (worker.max_in_flight): must be an integer, got "many"`}},
		{name: "bad duration", environ: []string{"ORDERSYNC_WORKER_LEASE=30"}, want: []string{`ORDERSYNC_WORKER_LEASE (worker.lease): invalid duration "30"`}},
		{name: "bad bool", environ: []string{"ORDERSYNC_CHANNELS_OMNI_SAAS_ENABLED=yes please"}, want: []string{`ORDERSYNC_CHANNELS_OMNI_SAAS_ENABLED (channels.omni-saas.enabled): must be true or false`}},
		{name: "bad number", environ: []string{"ORDERSYNC_TOP_QPS=NaN"}, want: []string{`ORDERSYNC_TOP_QPS (top.qps): must be a number`}},
		{
			name:    "every error is reported",
			environ: []string{"ORDERSYNC_REDIS_DB=x", "ORDERSYNC_NOPE=1", "ORDERSYNC_TOP_APP_SECRET=" + testAppSecret},
			want:    []string{"ORDERSYNC_REDIS_DB (redis.db)", "ORDERSYNC_NOPE: unknown"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig("", tt.environ)
			if err == nil {
				t.Fatalf("loadConfig() = nil error, want %q", tt.want)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("loadConfig() = %v, want an error containing %q", err, want)
				}
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
}

func TestEnvCoversEveryKey(t *testing.T) {
	cfg := defaultConfig()
	keys, err := envKeys(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, path := range yamlKeyPaths(t, []byte(cfg.String())) {
		want = append(want, envName(strings.Split(path, ".")))
	}
	var got []string
	for name := range keys {
		got = append(got, name)
	}
	sort.Strings(want)
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("environment variables mismatch (-want +got):\n%s", diff)
	}
	for _, name := range []string{
		"ORDERSYNC_KAFKA_BROKERS", "ORDERSYNC_KAFKA_GROUP_ID", "ORDERSYNC_REDIS_ADDRS", "ORDERSYNC_TOP_GATEWAY_URL",
		"ORDERSYNC_TOP_APP_KEY", "ORDERSYNC_TOP_APP_SECRET", "ORDERSYNC_WORKER_MAX_IN_FLIGHT", "ORDERSYNC_HTTP_ADDR",
		"ORDERSYNC_KAFKA_RESULTS_TOPIC", "ORDERSYNC_KAFKA_DLQ_TOPIC", "ORDERSYNC_CHANNELS_OMNI_SAAS_TOPIC",
		"ORDERSYNC_KAFKA_SASL_PASSWORD", "ORDERSYNC_REDIS_PASSWORD", "ORDERSYNC_KAFKA_TLS_CA_FILE",
	} {
		if _, ok := keys[name]; !ok {
			t.Errorf("no configuration variable %s (DESIGN.md §8 names it)", name)
		}
	}
}

// yamlKeyPaths returns the dotted paths of every leaf of a YAML mapping.
func yamlKeyPaths(t *testing.T, data []byte) []string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	var paths []string
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		if n.Kind != yaml.MappingNode {
			paths = append(paths, prefix)
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			walk(joinPath(prefix, n.Content[i].Value), n.Content[i+1])
		}
	}
	walk("", root.Content[0])
	return paths
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
		cfg, err := loadConfig("", []string{"ORDERSYNC_TOP_APP_SECRET_FILE=" + secretFile})
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
			_, err := loadConfig("", tt.environ)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadConfig() = %v, want an error containing %q", err, tt.want)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	valid := func(c *Config) {
		c.Top.AppKey, c.Top.AppSecret = "12345678", testAppSecret
	}
	tests := []struct {
		name   string
		change func(c *Config)
		want   string // "" = valid
	}{
		{name: "defaults with credentials", change: func(c *Config) {}},
		{name: "no brokers", change: func(c *Config) { c.Kafka.Brokers = nil }, want: "kafka.brokers: at least one broker required"},
		{name: "broker without port", change: func(c *Config) { c.Kafka.Brokers = []string{"k1:9092", "k2"} }, want: `kafka.brokers[1]: must be host:port, got "k2"`},
		{name: "broker without host", change: func(c *Config) { c.Kafka.Brokers = []string{":9092"} }, want: "kafka.brokers[0]: must be host:port"},
		{name: "no group", change: func(c *Config) { c.Kafka.GroupID = "" }, want: "kafka.group_id: required"},
		{name: "no client id", change: func(c *Config) { c.Kafka.ClientID = "" }, want: "kafka.client_id: required"},
		{name: "no results topic", change: func(c *Config) { c.Kafka.ResultsTopic = "" }, want: "kafka.results_topic: required"},
		{name: "no dlq topic", change: func(c *Config) { c.Kafka.DLQTopic = "" }, want: "kafka.dlq_topic: required"},
		{name: "bad topic name", change: func(c *Config) { c.Kafka.DLQTopic = "orders dlq" }, want: "kafka.dlq_topic: \"orders dlq\": topic names use only"},
		{name: "topic too long", change: func(c *Config) { c.Kafka.ResultsTopic = strings.Repeat("t", 250) }, want: "kafka.results_topic: longer than 249"},
		{name: "results equals dlq", change: func(c *Config) { c.Kafka.DLQTopic = "orders.results" }, want: "kafka.dlq_topic: must differ from kafka.results_topic"},
		{name: "channel topic is the results topic", change: func(c *Config) { c.Kafka.ResultsTopic = "orders.omni-saas" }, want: "channels.omni-saas.topic: orders.omni-saas is already used by kafka.results_topic"},
		{name: "channel topic is the dlq topic", change: func(c *Config) { c.setTopic("icbu-trade", "orders.dlq") }, want: "channels.icbu-trade.topic: orders.dlq is already used by kafka.dlq_topic"},
		{name: "two channels on one topic", change: func(c *Config) { c.setTopic("omni-saas", "orders.all"); c.setTopic("icbu-trade", "orders.all") }, want: "channels.omni-saas.topic: orders.all is already used by channels.icbu-trade.topic"},
		{name: "disabled channel may share a topic", change: func(c *Config) { c.setTopic("omni-saas", "orders.results"); c.enable("omni-saas", false) }},
		{name: "start offset", change: func(c *Config) { c.Kafka.StartOffset = "earliest" }, want: "kafka.start_offset: must be first or last"},
		{name: "min bytes", change: func(c *Config) { c.Kafka.MinBytes = 0 }, want: "kafka.min_bytes: must be ≥ 1"},
		{name: "max bytes", change: func(c *Config) { c.Kafka.MaxBytes = 0 }, want: "kafka.max_bytes: must be ≥ kafka.min_bytes"},
		{name: "max wait", change: func(c *Config) { c.Kafka.MaxWait = 0 }, want: "kafka.max_wait: must be > 0"},
		{name: "commit interval negative", change: func(c *Config) { c.Kafka.CommitInterval = -time.Second }, want: "kafka.commit_interval: must be > 0"},
		{name: "commit interval zero", change: func(c *Config) { c.Kafka.CommitInterval = 0 }, want: "kafka.commit_interval: must be > 0"},
		{name: "session timeout", change: func(c *Config) { c.Kafka.SessionTimeout = 0 }, want: "kafka.session_timeout: must be > 0"},
		{name: "rebalance timeout", change: func(c *Config) { c.Kafka.RebalanceTimeout = -1 }, want: "kafka.rebalance_timeout: must be > 0"},
		{name: "heartbeat", change: func(c *Config) { c.Kafka.HeartbeatInterval = 0 }, want: "kafka.heartbeat_interval: must be > 0"},
		{name: "heartbeat vs session", change: func(c *Config) { c.Kafka.HeartbeatInterval = 30 * time.Second }, want: "kafka.heartbeat_interval: must be shorter than kafka.session_timeout"},
		{name: "tls with system roots", change: func(c *Config) { c.Kafka.TLS.Enabled = true }},
		{name: "tls with a ca file", change: func(c *Config) { c.Kafka.TLS = KafkaTLS{Enabled: true, CAFile: ca, CertFile: ca, KeyFile: ca} }},
		{name: "tls ca file missing", change: func(c *Config) { c.Kafka.TLS = KafkaTLS{Enabled: true, CAFile: missing} }, want: "kafka.tls.ca_file: stat " + missing},
		{name: "tls ca file is a directory", change: func(c *Config) { c.Kafka.TLS = KafkaTLS{Enabled: true, CAFile: dir} }, want: "kafka.tls.ca_file: " + dir + " is a directory"},
		{name: "tls cert without key", change: func(c *Config) { c.Kafka.TLS = KafkaTLS{Enabled: true, CertFile: ca} }, want: "kafka.tls.cert_file: kafka.tls.cert_file and kafka.tls.key_file go together"},
		{name: "tls files without tls", change: func(c *Config) { c.Kafka.TLS.CAFile = ca }, want: "kafka.tls.enabled: must be true when other kafka.tls keys are set"},
		{name: "sasl scram", change: func(c *Config) {
			c.Kafka.SASL = KafkaSASL{Mechanism: "scram-sha-512", Username: "u", Password: testSASLPass}
		}},
		{name: "sasl unknown mechanism", change: func(c *Config) {
			c.Kafka.SASL = KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "u", Password: testSASLPass}
		}, want: "kafka.sasl.mechanism: must be plain, scram-sha-256 or scram-sha-512"},
		{name: "sasl without password", change: func(c *Config) { c.Kafka.SASL = KafkaSASL{Mechanism: "plain", Username: "u"} }, want: "kafka.sasl.password: required with kafka.sasl.mechanism"},
		{name: "sasl without username", change: func(c *Config) { c.Kafka.SASL = KafkaSASL{Mechanism: "plain", Password: testSASLPass} }, want: "kafka.sasl.username: required with kafka.sasl.mechanism"},
		{name: "sasl password without mechanism", change: func(c *Config) { c.Kafka.SASL.Password = testSASLPass }, want: "kafka.sasl.mechanism: required when"},
		{name: "no redis", change: func(c *Config) { c.Redis.Addrs = nil }, want: "redis.addrs: at least one address required"},
		{name: "bad redis address", change: func(c *Config) { c.Redis.Addrs = []string{"redis"} }, want: `redis.addrs[0]: must be host:port, got "redis"`},
		{name: "redis db negative", change: func(c *Config) { c.Redis.DB = -1 }, want: "redis.db: must be ≥ 0"},
		{name: "redis db with cluster", change: func(c *Config) { c.Redis.Addrs = []string{"a:1", "b:1"}; c.Redis.DB = 2 }, want: "redis.db: must be 0 with Redis Cluster"},
		{name: "redis db with sentinel", change: func(c *Config) {
			c.Redis.Addrs = []string{"a:26379", "b:26379"}
			c.Redis.MasterName = "m"
			c.Redis.DB = 2
		}},
		{name: "redis key prefix", change: func(c *Config) { c.Redis.KeyPrefix = "" }, want: "redis.key_prefix: required"},
		{name: "redis dial timeout", change: func(c *Config) { c.Redis.DialTimeout = 0 }, want: "redis.dial_timeout: must be > 0"},
		{name: "redis tls ca missing", change: func(c *Config) { c.Redis.TLS = RedisTLS{Enabled: true, CAFile: missing} }, want: "redis.tls.ca_file: stat " + missing},
		{name: "redis tls ca without tls", change: func(c *Config) { c.Redis.TLS.CAFile = ca }, want: "redis.tls.enabled: must be true when redis.tls.ca_file is set"},
		{name: "gateway url", change: func(c *Config) { c.Top.GatewayURL = "eco.taobao.com/router/rest" }, want: "top.gateway_url: must be an http(s) URL"},
		{name: "no app key", change: func(c *Config) { c.Top.AppKey = "" }, want: "top.app_key: required"},
		{name: "no app secret", change: func(c *Config) { c.Top.AppSecret = "" }, want: "top.app_secret: required"},
		{name: "sign method", change: func(c *Config) { c.Top.SignMethod = "sha1" }, want: "top.sign_method: must be md5, hmac or hmac-sha256"},
		{name: "sessions file missing", change: func(c *Config) { c.Top.SessionsFile = missing }, want: "top.sessions_file: stat " + missing},
		{name: "default seller without sessions", change: func(c *Config) { c.Top.DefaultSeller = "shop" }, want: "top.default_seller: needs top.sessions_file"},
		{name: "top timeout", change: func(c *Config) { c.Top.Timeout = 0 }, want: "top.timeout: must be > 0"},
		{name: "qps negative", change: func(c *Config) { c.Top.QPS = -1 }, want: "top.qps: must be ≥ 0"},
		{name: "burst negative", change: func(c *Config) { c.Top.Burst = -1 }, want: "top.burst: must be ≥ 0"},
		{name: "ban wait negative", change: func(c *Config) { c.Top.MaxBanWait = -time.Second }, want: "top.max_ban_wait: must be ≥ 0"},
		{name: "retryable sub-code", change: func(c *Config) { c.Top.RetryableSubCodes = []string{"isv.ok", "isp.timeout"} }, want: "top.retryable_sub_codes[1]: must be an isv.* sub-code"},
		{name: "retry initial", change: func(c *Config) { c.Top.Retry.InitialInterval = 0 }, want: "top.retry.initial_interval: must be > 0"},
		{name: "retry multiplier", change: func(c *Config) { c.Top.Retry.Multiplier = 0.5 }, want: "top.retry.multiplier: must be a number ≥ 1"},
		{name: "retry max interval", change: func(c *Config) { c.Top.Retry.MaxInterval = time.Millisecond }, want: "top.retry.max_interval: must be ≥ top.retry.initial_interval"},
		{name: "retry randomization", change: func(c *Config) { c.Top.Retry.RandomizationFactor = 1.5 }, want: "top.retry.randomization_factor: must be between 0 and 1"},
		{name: "retry max elapsed", change: func(c *Config) { c.Top.Retry.MaxElapsedTime = 0 }, want: "top.retry.max_elapsed_time: must be > 0"},
		{name: "max in flight", change: func(c *Config) { c.Worker.MaxInFlight = 0 }, want: "worker.max_in_flight: must be ≥ 1"},
		{name: "shutdown timeout", change: func(c *Config) { c.Worker.ShutdownTimeout = 0 }, want: "worker.shutdown_timeout: must be > 0"},
		{name: "lease", change: func(c *Config) { c.Worker.Lease = 0 }, want: "worker.lease: must be ≥ 3s"},
		{name: "lease too short to renew", change: func(c *Config) { c.Worker.Lease = time.Second }, want: "worker.lease: must be ≥ 3s"},
		{name: "retry multiplier NaN", change: func(c *Config) { c.Top.Retry.Multiplier = math.NaN() }, want: "top.retry.multiplier: must be a number ≥ 1"},
		{name: "reload interval", change: func(c *Config) { c.Top.ReloadInterval = 0 }, want: "top.reload_interval: must be > 0"},
		{name: "breaker failure ratio", change: func(c *Config) { c.Top.Breaker.FailureRatio = 1.5 }, want: "top.breaker.failure_ratio: must be in (0, 1]"},
		{name: "breaker max open", change: func(c *Config) { c.Top.Breaker.MaxOpenFor = time.Second }, want: "top.breaker.max_open_for: must be ≥ top.breaker.open_for"},
		{name: "breaker off ignores its keys", change: func(c *Config) { c.Top.Breaker = Breaker{} }, want: ""},
		{name: "probe interval", change: func(c *Config) { c.Worker.MaxProbeInterval = time.Second }, want: "worker.max_probe_interval: must be ≥ worker.probe_interval"},
		{name: "shutdown shorter than a call", change: func(c *Config) { c.Worker.ShutdownTimeout = 15 * time.Second }, want: "worker.shutdown_timeout: must be ≥ top.timeout + 8s (18s)"},
		{name: "retention", change: func(c *Config) { c.Worker.Retention = 0 }, want: "worker.retention: must be > 0"},
		{name: "retention shorter than lease", change: func(c *Config) { c.Worker.Retention = time.Second }, want: "worker.retention: must be ≥ worker.lease"},
		{name: "max message bytes", change: func(c *Config) { c.Worker.MaxMessageBytes = 0 }, want: "worker.max_message_bytes: must be ≥ 1"},
		{name: "unknown channel", change: func(c *Config) { c.Channels["tmall-trade"] = ChannelConfig{Enabled: true, Topic: "x"} }, want: "channels.tmall-trade: unknown channel"},
		{name: "no channel enabled", change: func(c *Config) {
			for _, id := range channelIDs {
				c.enable(id, false)
			}
		}, want: "channels: at least one channel must be enabled"},
		{name: "one channel enabled", change: func(c *Config) {
			for _, id := range channelIDs[1:] {
				c.enable(id, false)
			}
		}},
		{name: "enabled channel without topic", change: func(c *Config) { c.setTopic("mos-haiding", "") }, want: "channels.mos-haiding.topic: required"},
		{name: "channel gateway url", change: func(c *Config) {
			ch := c.Channels["omni-saas"]
			ch.GatewayURL = "ftp://x"
			c.Channels["omni-saas"] = ch
		}, want: "channels.omni-saas.gateway_url: must be an http(s) URL"},
		{name: "http addr", change: func(c *Config) { c.HTTP.Addr = "8080" }, want: `http.addr: must be host:port, got "8080"`},
		{name: "http port", change: func(c *Config) { c.HTTP.Addr = ":http" }, want: `http.addr: invalid port in ":http"`},
		{name: "http addr with host", change: func(c *Config) { c.HTTP.Addr = "127.0.0.1:0" }},
		{name: "log level", change: func(c *Config) { c.Log.Level = "trace" }, want: "log.level: must be debug, info, warn or error"},
		{name: "log format", change: func(c *Config) { c.Log.Format = "logfmt" }, want: "log.format: must be json or text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := with(valid)
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("Validate() reported %d problems, want 1:\n%v", n, err)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
	t.Run("every problem is reported", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.Kafka.Brokers = nil
		cfg.Log.Level = "loud"
		err := cfg.Validate()
		for _, want := range []string{"kafka.brokers:", "log.level:", "top.app_key:", "top.app_secret:"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Validate() = %v, want it to contain %q", err, want)
			}
		}
	})
}

func (c *Config) setTopic(id, topic string) {
	ch := c.Channels[id]
	ch.Topic = topic
	c.Channels[id] = ch
}

func (c *Config) enable(id string, on bool) {
	ch := c.Channels[id]
	ch.Enabled = on
	c.Channels[id] = ch
}

func TestRedaction(t *testing.T) {
	cfg := defaultConfig()
	cfg.Top.AppKey = "12345678"
	cfg.Top.AppSecret = testAppSecret
	cfg.Kafka.SASL = KafkaSASL{Mechanism: "plain", Username: "u", Password: testSASLPass}
	cfg.Redis.Password = testRedisPass

	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("config", "config", cfg, "secret", cfg.Top.AppSecret, "kafka", cfg.Kafka)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("config", "config", cfg, "secret", cfg.Top.AppSecret, "kafka", cfg.Kafka)
	jsonBytes, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	yamlBytes, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	renderings := map[string]string{
		"String":          cfg.String(),
		"%v":              fmt.Sprintf("%v", cfg),
		"%+v":             fmt.Sprintf("%+v", cfg),
		"%#v":             fmt.Sprintf("%#v", cfg),
		"%+v of Top":      fmt.Sprintf("%+v", cfg.Top),
		"%#v of Kafka":    fmt.Sprintf("%#v", cfg.Kafka),
		"%v of Redis":     fmt.Sprint(cfg.Redis),
		"%s of secret":    fmt.Sprintf("%s", cfg.Top.AppSecret),
		"%q of secret":    fmt.Sprintf("%q", cfg.Top.AppSecret),
		"%x of secret":    fmt.Sprintf("%x", cfg.Top.AppSecret),
		"%d of secret":    fmt.Sprintf("%d", cfg.Top.AppSecret),
		"%10.3s":          fmt.Sprintf("%10.3s", cfg.Top.AppSecret),
		"error wrapping":  fmt.Errorf("top %v: %w", cfg.Top, os.ErrInvalid).Error(),
		"slog JSON":       jsonLog.String(),
		"slog text":       textLog.String(),
		"encoding/json":   string(jsonBytes),
		"yaml.Marshal":    string(yamlBytes),
		"channels %v map": fmt.Sprint(map[string]Config{"a": cfg}),
	}
	for name, s := range renderings {
		assertNoSecret(t, name, s)
		if !strings.Contains(s, redacted) {
			t.Errorf("%s does not show %s:\n%s", name, redacted, s)
		}
	}
	if got := fmt.Sprint(secret("")); got != "" {
		t.Errorf("an empty secret prints %q, want \"\"", got)
	}

	// String() is valid configuration: it loads back to the same values, secrets aside.
	path := writeFile(t, "dump.yaml", cfg.String())
	got, err := loadConfig(path, nil)
	if err != nil {
		t.Fatalf("loadConfig(String()) = %v", err)
	}
	want := cfg
	want.Top.AppSecret, want.Kafka.SASL.Password, want.Redis.Password = redacted, redacted, redacted
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loadConfig(String()) mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadSessions(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		path := writeFile(t, "sessions.yaml", "# seller: session key\nshop-a: "+testSessionKey+"\n\"12345\": '"+testSessionKey2+"'\n")
		got, err := loadSessions(path)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"shop-a": testSessionKey, "12345": testSessionKey2}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("loadSessions() mismatch (-want +got):\n%s", diff)
		}
	})
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{name: "empty", content: "", want: "no sessions"},
		{name: "empty mapping", content: "{}\n", want: "no sessions"},
		{name: "a list", content: "- " + testSessionKey + "\n", want: "(line 1): must be a mapping of seller to session key"},
		{name: "nested value", content: "shop-a:\n  key: " + testSessionKey + "\n", want: `(line 2): seller "shop-a": session key must be a non-empty string`},
		{name: "null value", content: "shop-a: " + testSessionKey + "\nshop-b:\n", want: `(line 2): seller "shop-b": session key must be a non-empty string`},
		{name: "duplicate seller", content: "shop-a: " + testSessionKey + "\nshop-a: " + testSessionKey2 + "\n", want: `(line 2): seller "shop-a" listed twice`},
		{name: "invalid YAML", content: "shop-a: ok\nshop-b: \"" + testSessionKey + "\n", want: "(line 2): invalid YAML"},
		{name: "invalid YAML mid-value", content: "shop-a: " + testSessionKey + ": " + testSessionKey2 + "\n", want: "invalid YAML"},
		{name: "two documents", content: "shop-a: " + testSessionKey + "\n---\nshop-b: " + testSessionKey2 + "\n", want: "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "sessions.yaml", tt.content)
			_, err := loadSessions(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadSessions() = %v, want an error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("loadSessions() = %v, want the file name in it", err)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
	if _, err := loadSessions(filepath.Join(t.TempDir(), "nope.yaml")); err == nil {
		t.Error("loadSessions(missing file) = nil error")
	}
}

// The documented example configuration is the defaults: it loads strictly, documents every key, and
// validates once the credentials come from the environment (as `worker run --check` does in CI).
func TestExampleConfig(t *testing.T) {
	const path = "../../configs/ordersync.yaml"
	got, err := loadConfig(path, nil)
	if err != nil {
		t.Fatalf("loadConfig(%s) = %v", path, err)
	}
	if diff := cmp.Diff(defaultConfig(), got); diff != "" {
		t.Errorf("%s differs from defaultConfig() (-want +got):\n%s", path, diff)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys, gotKeys := yamlKeyPaths(t, []byte(defaultConfig().String())), yamlKeyPaths(t, data)
	sort.Strings(wantKeys)
	sort.Strings(gotKeys)
	if diff := cmp.Diff(wantKeys, gotKeys); diff != "" {
		t.Errorf("%s does not list every key (-want +got):\n%s", path, diff)
	}
	withCreds, err := loadConfig(path, []string{"ORDERSYNC_TOP_APP_KEY=12345678", "ORDERSYNC_TOP_APP_SECRET=" + testAppSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := withCreds.Validate(); err != nil {
		t.Errorf("Validate() of %s with credentials = %v", path, err)
	}

	sessions, err := loadSessions("../../configs/sessions.example.yaml")
	if err != nil {
		t.Fatalf("loadSessions(sessions.example.yaml) = %v", err)
	}
	if len(sessions) == 0 {
		t.Error("sessions.example.yaml has no sessions")
	}
}

// Issue 7: the example configuration passes `worker run --config configs/ordersync.yaml --check` once the
// credentials come from the environment, and fails it, naming the keys, without them.
func TestExampleConfigCheck(t *testing.T) {
	args := []string{"run", "--config", "../../configs/ordersync.yaml", "--check"}
	var stdout, stderr bytes.Buffer
	creds := []string{"ORDERSYNC_TOP_APP_KEY=12345678", "ORDERSYNC_TOP_APP_SECRET=" + testAppSecret}
	if err := run(context.Background(), args, &stdout, &stderr, creds); err != nil {
		t.Fatalf("worker %s = %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	assertNoSecret(t, "output", stdout.String()+stderr.String())
	err := run(context.Background(), args, &stdout, &stderr, nil)
	if err == nil || !strings.Contains(err.Error(), "top.app_key: required") {
		t.Errorf("worker %s without credentials = %v, want an error naming top.app_key", strings.Join(args, " "), err)
	}
}

// A top.default_seller without a session in top.sessions_file would reject every event that names
// no seller; start-up refuses it.
func TestDefaultSellerNeedsASession(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sessions.yaml")
	if err := os.WriteFile(path, []byte("shop-a: session-a-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"ORDERSYNC_TOP_APP_KEY=12345678", "ORDERSYNC_TOP_APP_SECRET=" + testAppSecret,
		"ORDERSYNC_TOP_SESSIONS_FILE=" + path}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"run", "--check"}, &out, &out, append(env, "ORDERSYNC_TOP_DEFAULT_SELLER=shop-a")); err != nil {
		t.Fatalf("default seller with a session: %v", err)
	}
	err := run(context.Background(), []string{"run", "--check"}, &out, &out, append(env, "ORDERSYNC_TOP_DEFAULT_SELLER=shop-b"))
	if err == nil || !strings.Contains(err.Error(), `top.default_seller: seller "shop-b" has no session in `+path) {
		t.Errorf("default seller without a session: %v, want an error naming top.default_seller", err)
	}
}

// yamllint (installed by .ci/deps) checks the example configuration with the repository's .yamllint.
func TestYamllintConfigs(t *testing.T) {
	yamllint(t, "../../configs/")
}

// yamllint runs `yamllint --strict` with the repository's .yamllint on paths.
func yamllint(t *testing.T, paths ...string) {
	t.Helper()
	bin, err := exec.LookPath("yamllint")
	if err != nil {
		t.Fatal("yamllint not found: run .ci/deps (it installs Debian's yamllint package)")
	}
	args := append([]string{"--strict", "--config-file", "../../.yamllint"}, paths...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("yamllint %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Every YAML key of Config is a yaml tag: a field without one would decode under its Go name.
func TestConfigTags(t *testing.T) {
	var walk func(t2 reflect.Type)
	walk = func(t2 reflect.Type) {
		for i := range t2.NumField() {
			f := t2.Field(i)
			name := tagName(f)
			if name == "" || strings.ToLower(name) != name || strings.Contains(name, "-") {
				t.Errorf("%s.%s: yaml tag %q is not snake case", t2.Name(), f.Name, name)
			}
			ft := f.Type
			if ft.Kind() == reflect.Map {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != durationType {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeFor[Config]())
}
