package config

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ordersync/ordersync/pkg/dispatch"
)

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
		{name: "tls with a ca file", change: func(c *Config) {
			c.Kafka.TLS = KafkaTLS{Enabled: true, CAFile: ca, CertFile: ca, KeyFile: ca}
		}},
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
		{name: "unknown channel", change: func(c *Config) { c.Channels["tmall-trade"] = Channel{Enabled: true, Topic: "x"} }, want: "channels.tmall-trade: unknown channel"},
		{name: "no channel enabled", change: func(c *Config) {
			for _, id := range dispatch.ChannelIDs() {
				c.enable(id, false)
			}
		}, want: "channels: at least one channel must be enabled"},
		{name: "one channel enabled", change: func(c *Config) {
			for _, id := range dispatch.ChannelIDs()[1:] {
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
		cfg := Default()
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
