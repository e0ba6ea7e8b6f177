package config

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

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
				c.Channels["omni-saas"] = Channel{Enabled: true, Topic: "file.omni"}
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
				c.Channels["omni-saas"] = Channel{Enabled: true, Topic: "env.omni"}
				c.Channels["diantao-tripartite"] = Channel{Enabled: false, Topic: "orders.diantao-tripartite"}
				c.Channels["tmall-aliauto"] = Channel{Enabled: true, Topic: "orders.tmall-aliauto", GatewayURL: "http://sim:18080/router/rest"}
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
				c.Channels["omni-saas"] = Channel{Enabled: true, Topic: "file.omni"}
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
				c.Channels["omni-saas"] = Channel{Enabled: true, Topic: "file.omni"}
			}),
		},
		{
			name:    "the last duplicate wins and other variables are ignored",
			environ: []string{"ORDERSYNC_LOG_LEVEL=warn", "PATH=/bin", "ORDERSYNC_LOG_LEVEL=error", "NOT_ORDERSYNC_X=1", "ORDERSYNC"},
			want: with(func(c *Config) {
				c.Kafka.GroupID, c.Kafka.ClientID = "from-file", "from-file"
				c.Channels["omni-saas"] = Channel{Enabled: true, Topic: "file.omni"}
				c.Log.Level = "error"
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "ordersync.yaml", file)
			got, err := Load(path, tt.environ)
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Load() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("without a file", func(t *testing.T) {
		got, err := Load("", []string{"ORDERSYNC_REDIS_ADDRS=r:6379"})
		if err != nil {
			t.Fatal(err)
		}
		want := with(func(c *Config) { c.Redis.Addrs = []string{"r:6379"} })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Load(\"\") mismatch (-want +got):\n%s", diff)
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
			_, err := Load("", tt.environ)
			if err == nil {
				t.Fatalf("Load() = nil error, want %q", tt.want)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load() = %v, want an error containing %q", err, want)
				}
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
}

func TestEnvCoversEveryKey(t *testing.T) {
	cfg := Default()
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
			t.Errorf("no configuration variable %s (the README's configuration table names it)", name)
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

// Environ renders a configuration that Load reads back unchanged: the tests and the chaos soak
// configure child workers with it.
func TestEnvironRoundTrip(t *testing.T) {
	want := with(func(c *Config) {
		c.Kafka.Brokers = []string{"k1:9092", "k2:9092"}
		c.Kafka.SASL = KafkaSASL{Mechanism: "scram-sha-512", Username: "u", Password: testSASLPass}
		c.Top.AppSecret = testAppSecret
		c.Top.Retry.Multiplier = 1.5
		c.Worker.Lease = 45 * time.Second
		c.setTopic("omni-saas", "pos.omni")
		c.enable("icbu-trade", false)
	})
	got, err := Load("", Environ(want))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load(Environ(cfg)) differs (-want +got):\n%s", diff)
	}
}
