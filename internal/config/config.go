// Package config is the worker's configuration: the [Config] type with its
// defaults ([Default]), loading from one YAML file and the ORDERSYNC_*
// environment ([Load]), validation that names every bad key
// ([Config.Validate]) and the sellers' session file ([LoadSessions]).
//
// Precedence: defaults, then the file, then the environment, then
// top.app_secret_file. Every key's variable is ORDERSYNC_ followed by its
// path in upper snake case (kafka.sasl.password → ORDERSYNC_KAFKA_SASL_PASSWORD).
// Unknown keys and variables are errors; no error ever contains a secret.
//
// The packages under pkg/ take plain config structs of their own; cmd/worker
// maps a Config onto them.
package config

import (
	"time"

	"github.com/ordersync/ordersync/pkg/dispatch"
)

// envPrefix starts every environment variable that overrides a configuration key. Every variable with
// this prefix must name a key: a typo is an error, not a silently ignored setting.
const envPrefix = "ORDERSYNC_"

// minLease is the shortest worker.lease: renewed every third, a renewal must fit in a second.
const minLease = 3 * time.Second

// Config is the whole worker configuration. Field comments give the YAML key and the default; the
// environment variable for a key is ORDERSYNC_ followed by its path in upper snake case
// (kafka.sasl.password → ORDERSYNC_KAFKA_SASL_PASSWORD; channels.omni-saas.topic →
// ORDERSYNC_CHANNELS_OMNI_SAAS_TOPIC). A Config is a value: copy it freely; it is not modified after
// loading, so concurrent reads are safe.
type Config struct {
	Kafka  Kafka  `yaml:"kafka"`
	Redis  Redis  `yaml:"redis"`
	Top    Top    `yaml:"top"`
	Worker Worker `yaml:"worker"`
	// Channels by channel id (dispatch.ChannelIDs). Every channel is present and enabled by default with its
	// default topic; a file or the environment changes single fields of a channel, so a channel left out
	// of the file keeps its defaults. Set enabled: false to stop consuming a channel.
	Channels map[string]Channel `yaml:"channels"`
	HTTP     HTTP               `yaml:"http"`
	Log      Log                `yaml:"log"`
}

// Kafka is the `kafka` section.
type Kafka struct {
	Brokers           []string      `yaml:"brokers"`            // default [localhost:9092]
	GroupID           string        `yaml:"group_id"`           // default ordersync
	ClientID          string        `yaml:"client_id"`          // default ordersync
	ResultsTopic      string        `yaml:"results_topic"`      // default orders.results
	DLQTopic          string        `yaml:"dlq_topic"`          // default orders.dlq
	StartOffset       string        `yaml:"start_offset"`       // first|last; default first
	MinBytes          int           `yaml:"min_bytes"`          // default 1
	MaxBytes          int           `yaml:"max_bytes"`          // default 1048576 (1 MiB) per partition fetch
	MaxWait           time.Duration `yaml:"max_wait"`           // default 250ms
	CommitInterval    time.Duration `yaml:"commit_interval"`    // default 1s
	SessionTimeout    time.Duration `yaml:"session_timeout"`    // default 30s
	RebalanceTimeout  time.Duration `yaml:"rebalance_timeout"`  // default 30s
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"` // default 3s
	// MaxRecordBytes is the largest record the worker writes (an outcome or a dead letter) and the
	// producer's batch limit; at least 16384. Larger dead letters are reduced and larger responses
	// cut. Must not exceed the results and DLQ topics' max.message.bytes (checked at start-up).
	MaxRecordBytes int       `yaml:"max_record_bytes"` // default 1048576 (1 MiB)
	TLS            KafkaTLS  `yaml:"tls"`
	SASL           KafkaSASL `yaml:"sasl"`
}

// KafkaTLS is `kafka.tls`. CAFile "" means the system roots; CertFile and KeyFile go together (mutual TLS).
type KafkaTLS struct {
	Enabled            bool   `yaml:"enabled"` // default false
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // default false
}

// KafkaSASL is `kafka.sasl`. Mechanism "" disables SASL.
type KafkaSASL struct {
	Mechanism string `yaml:"mechanism"` // ""|plain|scram-sha-256|scram-sha-512
	Username  string `yaml:"username"`
	Password  Secret `yaml:"password"`
}

// Redis is the `redis` section. One address is a single node or one node of a Redis Cluster,
// several are a Redis Cluster, and with MasterName the addresses are Sentinels (see newRedis).
type Redis struct {
	Addrs       []string      `yaml:"addrs"` // default [localhost:6379]
	MasterName  string        `yaml:"master_name"`
	Username    string        `yaml:"username"`
	Password    Secret        `yaml:"password"`
	DB          int           `yaml:"db"`           // default 0; must be 0 with Cluster
	KeyPrefix   string        `yaml:"key_prefix"`   // default "ordersync:dedupe:"
	DialTimeout time.Duration `yaml:"dial_timeout"` // default 5s
	TLS         RedisTLS      `yaml:"tls"`
	// AllowEviction starts the worker on a Redis whose maxmemory-policy is not noeviction, which can evict
	// dedupe records before their retention ends (an evicted record lets an event reach the platform
	// twice). Default false: such a Redis is refused at start-up.
	AllowEviction bool `yaml:"allow_eviction"`
	// AutoPipeline sends the dedupe commands of concurrent events together, many per round trip
	// (go-redis AutoPipeline). Default true; false sends each on its own.
	AutoPipeline bool `yaml:"auto_pipeline"`
}

// RedisTLS is `redis.tls`. CAFile "" means the system roots.
type RedisTLS struct {
	Enabled bool   `yaml:"enabled"`
	CAFile  string `yaml:"ca_file"`
}

// Top is the `top` section: the Alibaba open platform gateway.
type Top struct {
	GatewayURL string `yaml:"gateway_url"` // default https://eco.taobao.com/router/rest
	AppKey     string `yaml:"app_key"`
	AppSecret  Secret `yaml:"app_secret"`
	// AppSecretFile, when set, is read at load time into AppSecret (surrounding white space trimmed).
	// Setting both app_secret and app_secret_file is an error.
	AppSecretFile string `yaml:"app_secret_file"`
	SignMethod    string `yaml:"sign_method"` // md5|hmac|hmac-sha256; default hmac-sha256
	// SessionsFile is a YAML map seller → session key, read with LoadSessions.
	SessionsFile  string        `yaml:"sessions_file"`
	DefaultSeller string        `yaml:"default_seller"`
	Timeout       time.Duration `yaml:"timeout"`      // per gateway call; default 10s
	QPS           float64       `yaml:"qps"`          // per (app key, method); 0 = unlimited
	Burst         int           `yaml:"burst"`        // default 0
	MaxBanWait    time.Duration `yaml:"max_ban_wait"` // default 60s; 0 = wait out no ban
	// RetryableSubCodes are isv.* sub-codes that mean "try later" for this app.
	RetryableSubCodes []string `yaml:"retryable_sub_codes"`
	Retry             Retry    `yaml:"retry"`
	// Breaker is the circuit breaker of each gateway.
	Breaker Breaker `yaml:"breaker"`
	// ReloadInterval is how often app_secret_file and sessions_file are read again; a change
	// takes effect without a restart. Default 10s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// Breaker is `top.breaker`: the circuit opens after consecutive_failures failed calls in a row,
// or when at least min_requests calls in the last window failed at failure_ratio or more; it
// stays open for open_for, doubling up to max_open_for while probes fail.
type Breaker struct {
	Enabled             bool          `yaml:"enabled"`              // default true
	ConsecutiveFailures int           `yaml:"consecutive_failures"` // default 10
	FailureRatio        float64       `yaml:"failure_ratio"`        // default 0.5
	MinRequests         int           `yaml:"min_requests"`         // default 20
	Window              time.Duration `yaml:"window"`               // default 30s
	OpenFor             time.Duration `yaml:"open_for"`             // default 5s
	MaxOpenFor          time.Duration `yaml:"max_open_for"`         // default 2m
}

// Retry is `top.retry`: exponential backoff with jitter for transient gateway errors.
type Retry struct {
	InitialInterval     time.Duration `yaml:"initial_interval"`     // default 200ms
	Multiplier          float64       `yaml:"multiplier"`           // default 2
	MaxInterval         time.Duration `yaml:"max_interval"`         // default 30s
	RandomizationFactor float64       `yaml:"randomization_factor"` // default 0.5
	MaxElapsedTime      time.Duration `yaml:"max_elapsed_time"`     // default 5m
}

// Worker is the `worker` section.
type Worker struct {
	MaxInFlight     int           `yaml:"max_in_flight"`     // default 512
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`  // default 30s
	Lease           time.Duration `yaml:"lease"`             // dedupe claim lease; default 30s
	Retention       time.Duration `yaml:"retention"`         // completed outcomes kept; default 168h
	MaxMessageBytes int           `yaml:"max_message_bytes"` // default 1048576 (1 MiB)
	// ProbeInterval is the first wait before a paused intake without an end time (refused
	// credentials) is probed again; it doubles up to MaxProbeInterval while probes fail.
	ProbeInterval    time.Duration `yaml:"probe_interval"`     // default 5s
	MaxProbeInterval time.Duration `yaml:"max_probe_interval"` // default 1m
	// ClientTelemetry adds a span and metrics per Redis command (redisotel) and per gateway HTTP
	// request (otelhttp) beneath the worker's own dedupe and top spans and metrics. Default false:
	// they double the spans of an event and cost CPU on every one.
	ClientTelemetry bool `yaml:"client_telemetry"`
}

// Channel is one entry of `channels`.
type Channel struct {
	Enabled bool   `yaml:"enabled"` // default true
	Topic   string `yaml:"topic"`   // default orders.<channel id>
	// GatewayURL overrides top.gateway_url for this channel; "" = top.gateway_url.
	GatewayURL string `yaml:"gateway_url"`
}

// HTTP is the `http` section: /healthz, /readyz and /metrics.
type HTTP struct {
	Addr string `yaml:"addr"` // default ":8080"
}

// Log is the `log` section.
type Log struct {
	Level  string `yaml:"level"`  // debug|info|warn|error; default info
	Format string `yaml:"format"` // json|text; default json
	// Outcomes says which outcomes get a log record: failures (failed and rejected) or all (every
	// outcome: one record per event). Default failures: the results topic has every outcome.
	Outcomes string `yaml:"outcomes"`
}

// Default returns the configuration used when neither the file nor the environment sets a key.
func Default() Config {
	channels := make(map[string]Channel, len(dispatch.ChannelIDs()))
	for _, id := range dispatch.ChannelIDs() {
		channels[id] = Channel{Enabled: true, Topic: "orders." + id}
	}
	return Config{
		Kafka: Kafka{
			Brokers:           []string{"localhost:9092"},
			GroupID:           "ordersync",
			ClientID:          "ordersync",
			ResultsTopic:      "orders.results",
			DLQTopic:          "orders.dlq",
			StartOffset:       "first",
			MinBytes:          1,
			MaxBytes:          1 << 20,
			MaxWait:           250 * time.Millisecond,
			CommitInterval:    time.Second,
			SessionTimeout:    30 * time.Second,
			RebalanceTimeout:  30 * time.Second,
			HeartbeatInterval: 3 * time.Second,
			MaxRecordBytes:    1 << 20,
		},
		Redis: Redis{
			Addrs:        []string{"localhost:6379"},
			KeyPrefix:    "ordersync:dedupe:",
			DialTimeout:  5 * time.Second,
			AutoPipeline: true,
		},
		Top: Top{
			GatewayURL: "https://eco.taobao.com/router/rest",
			SignMethod: "hmac-sha256",
			Timeout:    10 * time.Second,
			MaxBanWait: 60 * time.Second,
			Retry: Retry{
				InitialInterval:     200 * time.Millisecond,
				Multiplier:          2,
				MaxInterval:         30 * time.Second,
				RandomizationFactor: 0.5,
				MaxElapsedTime:      5 * time.Minute,
			},
			Breaker: Breaker{
				Enabled:             true,
				ConsecutiveFailures: 10,
				FailureRatio:        0.5,
				MinRequests:         20,
				Window:              30 * time.Second,
				OpenFor:             5 * time.Second,
				MaxOpenFor:          2 * time.Minute,
			},
			ReloadInterval: 10 * time.Second,
		},
		Worker: Worker{
			MaxInFlight:      512,
			ShutdownTimeout:  30 * time.Second,
			Lease:            30 * time.Second,
			Retention:        168 * time.Hour,
			MaxMessageBytes:  1 << 20,
			ProbeInterval:    5 * time.Second,
			MaxProbeInterval: time.Minute,
		},
		Channels: channels,
		HTTP:     HTTP{Addr: ":8080"},
		Log:      Log{Level: "info", Format: "json", Outcomes: "failures"},
	}
}
