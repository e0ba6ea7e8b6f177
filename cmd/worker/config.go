package main

// Configuration of the worker (DESIGN.md §8): defaults, then one YAML file, then ORDERSYNC_* environment
// variables, then secret files. Everything that parses files or the environment lives here; the packages
// under pkg/ take plain config structs.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ordersync/ordersync/pkg/consumer"
)

// envPrefix starts every environment variable that overrides a configuration key. Every variable with
// this prefix must name a key: a typo is an error, not a silently ignored setting.
const envPrefix = "ORDERSYNC_"

// minLease is the shortest worker.lease: renewed every third, a renewal must fit in a second.
const minLease = 3 * time.Second

// redacted is what a non-empty secret prints as.
const redacted = "[REDACTED]"

// channelIDs are the channels the worker knows (DESIGN.md §2), in the order the design lists them.
// A channel id in the configuration that is not one of these fails Validate.
var channelIDs = []string{"tmall-aliauto", "omni-saas", "icbu-trade", "mos-haiding", "diantao-tripartite"}

// secret is a string that never prints: fmt (every verb), slog, encoding/json and YAML all show
// "[REDACTED]" for a non-empty value and "" for an empty one. Use string(s) where the value is needed.
type secret string

// Format implements fmt.Formatter for every verb, so %v, %s, %q, %#v and %x never reveal the value.
func (s secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	io.WriteString(f, s.String())
}

// String returns "[REDACTED]" for a non-empty secret and "" for an empty one.
func (s secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// LogValue implements slog.LogValuer.
func (s secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON implements json.Marshaler.
func (s secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML implements yaml.Marshaler.
func (s secret) MarshalYAML() (any, error) { return s.String(), nil }

// Config is the whole worker configuration. Field comments give the YAML key and the default; the
// environment variable for a key is ORDERSYNC_ followed by its path in upper snake case
// (kafka.sasl.password → ORDERSYNC_KAFKA_SASL_PASSWORD; channels.omni-saas.topic →
// ORDERSYNC_CHANNELS_OMNI_SAAS_TOPIC). A Config is a value: copy it freely; it is not modified after
// loading, so concurrent reads are safe.
type Config struct {
	Kafka  KafkaConfig  `yaml:"kafka"`
	Redis  RedisConfig  `yaml:"redis"`
	Top    TopConfig    `yaml:"top"`
	Worker WorkerConfig `yaml:"worker"`
	// Channels by channel id (DESIGN.md §2). Every channel is present and enabled by default with its
	// default topic; a file or the environment changes single fields of a channel, so a channel left out
	// of the file keeps its defaults. Set enabled: false to stop consuming a channel.
	Channels map[string]ChannelConfig `yaml:"channels"`
	HTTP     HTTPConfig               `yaml:"http"`
	Log      LogConfig                `yaml:"log"`
}

// KafkaConfig is the `kafka` section.
type KafkaConfig struct {
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
	Password  secret `yaml:"password"`
}

// RedisConfig is the `redis` section. One address is a single node or one node of a Redis Cluster,
// several are a Redis Cluster, and with MasterName the addresses are Sentinels (see newRedis).
type RedisConfig struct {
	Addrs       []string      `yaml:"addrs"` // default [localhost:6379]
	MasterName  string        `yaml:"master_name"`
	Username    string        `yaml:"username"`
	Password    secret        `yaml:"password"`
	DB          int           `yaml:"db"`           // default 0; must be 0 with Cluster
	KeyPrefix   string        `yaml:"key_prefix"`   // default "ordersync:dedupe:"
	DialTimeout time.Duration `yaml:"dial_timeout"` // default 5s
	TLS         RedisTLS      `yaml:"tls"`
	// AllowEviction starts the worker on a Redis whose maxmemory-policy is not noeviction, which can evict
	// dedupe records before their retention ends (an evicted record lets an event reach the platform
	// twice). Default false: such a Redis is refused at start-up.
	AllowEviction bool `yaml:"allow_eviction"`
}

// RedisTLS is `redis.tls`. CAFile "" means the system roots.
type RedisTLS struct {
	Enabled bool   `yaml:"enabled"`
	CAFile  string `yaml:"ca_file"`
}

// TopConfig is the `top` section: the Alibaba open platform gateway.
type TopConfig struct {
	GatewayURL string `yaml:"gateway_url"` // default https://eco.taobao.com/router/rest
	AppKey     string `yaml:"app_key"`
	AppSecret  secret `yaml:"app_secret"`
	// AppSecretFile, when set, is read at load time into AppSecret (surrounding white space trimmed).
	// Setting both app_secret and app_secret_file is an error.
	AppSecretFile string `yaml:"app_secret_file"`
	SignMethod    string `yaml:"sign_method"` // md5|hmac|hmac-sha256; default hmac-sha256
	// SessionsFile is a YAML map seller → session key, read with loadSessions.
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

// Retry is `top.retry`: exponential backoff with jitter (DESIGN.md §7).
type Retry struct {
	InitialInterval     time.Duration `yaml:"initial_interval"`     // default 200ms
	Multiplier          float64       `yaml:"multiplier"`           // default 2
	MaxInterval         time.Duration `yaml:"max_interval"`         // default 30s
	RandomizationFactor float64       `yaml:"randomization_factor"` // default 0.5
	MaxElapsedTime      time.Duration `yaml:"max_elapsed_time"`     // default 5m
}

// WorkerConfig is the `worker` section.
type WorkerConfig struct {
	MaxInFlight     int           `yaml:"max_in_flight"`     // default 512
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`  // default 30s
	Lease           time.Duration `yaml:"lease"`             // dedupe claim lease; default 30s
	Retention       time.Duration `yaml:"retention"`         // completed outcomes kept; default 168h
	MaxMessageBytes int           `yaml:"max_message_bytes"` // default 1048576 (1 MiB)
	// ProbeInterval is the first wait before a paused intake without an end time (refused
	// credentials) is probed again; it doubles up to MaxProbeInterval while probes fail.
	ProbeInterval    time.Duration `yaml:"probe_interval"`     // default 5s
	MaxProbeInterval time.Duration `yaml:"max_probe_interval"` // default 1m
}

// ChannelConfig is one entry of `channels`.
type ChannelConfig struct {
	Enabled bool   `yaml:"enabled"` // default true
	Topic   string `yaml:"topic"`   // default orders.<channel id>
	// GatewayURL overrides top.gateway_url for this channel; "" = top.gateway_url.
	GatewayURL string `yaml:"gateway_url"`
}

// HTTPConfig is the `http` section: /healthz, /readyz and /metrics.
type HTTPConfig struct {
	Addr string `yaml:"addr"` // default ":8080"
}

// LogConfig is the `log` section.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug|info|warn|error; default info
	Format string `yaml:"format"` // json|text; default json
}

// defaultConfig returns the configuration used when neither the file nor the environment sets a key.
func defaultConfig() Config {
	channels := make(map[string]ChannelConfig, len(channelIDs))
	for _, id := range channelIDs {
		channels[id] = ChannelConfig{Enabled: true, Topic: "orders." + id}
	}
	return Config{
		Kafka: KafkaConfig{
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
		Redis: RedisConfig{
			Addrs:       []string{"localhost:6379"},
			KeyPrefix:   "ordersync:dedupe:",
			DialTimeout: 5 * time.Second,
		},
		Top: TopConfig{
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
		Worker: WorkerConfig{
			MaxInFlight:      512,
			ShutdownTimeout:  30 * time.Second,
			Lease:            30 * time.Second,
			Retention:        168 * time.Hour,
			MaxMessageBytes:  1 << 20,
			ProbeInterval:    5 * time.Second,
			MaxProbeInterval: time.Minute,
		},
		Channels: channels,
		HTTP:     HTTPConfig{Addr: ":8080"},
		Log:      LogConfig{Level: "info", Format: "json"},
	}
}

// loadConfig builds the configuration: defaultConfig, then the YAML file at path (skipped when path is
// ""), then the ORDERSYNC_* variables in environ (os.Environ() format), then top.app_secret_file.
// Unknown keys and variables are errors that name them; errors never contain a secret. loadConfig does
// not call Validate.
func loadConfig(path string, environ []string) (Config, error) {
	cfg := defaultConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := decodeYAML(data, &cfg); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return Config{}, err
	}
	if cfg.Top.AppSecretFile != "" {
		if cfg.Top.AppSecret != "" {
			return Config{}, errors.New("top.app_secret_file: set together with top.app_secret; use one")
		}
		b, err := os.ReadFile(cfg.Top.AppSecretFile)
		if err != nil {
			return Config{}, fmt.Errorf("top.app_secret_file: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return Config{}, fmt.Errorf("top.app_secret_file: %s is empty", cfg.Top.AppSecretFile)
		}
		cfg.Top.AppSecret = secret(s)
	}
	return cfg, nil
}

// decodeYAML merges one YAML document into cfg. A null value keeps the default; a mapping under
// channels changes only the fields it names.
func decodeYAML(data []byte, cfg *Config) error {
	// The document is decoded as a node tree and walked against Config (decodeNode) rather than with
	// Decoder.KnownFields: the walk names the full key path and line of an unknown or mistyped key, and
	// merges channels field by field where yaml.v3 would replace a map entry with its zero value.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: all defaults
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return decodeNode("", doc.Content[0], reflect.ValueOf(cfg).Elem())
}

var (
	yamlErrLine  = regexp.MustCompile(`line [0-9]+`)
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[secret]()
)

// decodeNode decodes n into v, which is addressable. path is the dotted key path for errors.
func decodeNode(path string, n *yaml.Node, v reflect.Value) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	at := func(format string, args ...any) error {
		return fmt.Errorf("%s (line %d): %s", path, n.Line, fmt.Sprintf(format, args...))
	}
	switch {
	case v.Type() == durationType:
		if n.Kind != yaml.ScalarNode {
			return at("must be a duration such as \"250ms\" or \"30s\"")
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			return at("invalid duration %q (use Go syntax such as \"250ms\" or \"30s\")", n.Value)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return at("must be a mapping")
		}
		seen := make(map[string]bool)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := joinPath(path, k.Value)
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("%s (line %d): keys must be plain strings", path, k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("%s (line %d): duplicate key", key, k.Line)
			}
			seen[k.Value] = true
			idx, ok := fieldByKey(v.Type(), k.Value)
			if !ok {
				return fmt.Errorf("%s (line %d): unknown key", key, k.Line)
			}
			if err := decodeNode(key, val, v.Field(idx)); err != nil {
				return err
			}
		}
	case v.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return at("must be a mapping")
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := make(map[string]bool)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := joinPath(path, k.Value)
			if k.Kind != yaml.ScalarNode || k.Value == "" {
				return fmt.Errorf("%s (line %d): keys must be non-empty strings", path, k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("%s (line %d): duplicate key", key, k.Line)
			}
			seen[k.Value] = true
			mk := reflect.ValueOf(k.Value)
			elem := reflect.New(v.Type().Elem()).Elem()
			if old := v.MapIndex(mk); old.IsValid() {
				elem.Set(old)
			}
			if err := decodeNode(key, val, elem); err != nil {
				return err
			}
			v.SetMapIndex(mk, elem)
		}
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		if n.Kind != yaml.SequenceNode {
			return at("must be a list of strings")
		}
		out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		for i, item := range n.Content {
			if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
				return fmt.Errorf("%s[%d] (line %d): must be a string", path, i, item.Line)
			}
			out = reflect.Append(out, reflect.ValueOf(item.Value).Convert(v.Type().Elem()))
		}
		if out.Len() == 0 {
			out = reflect.Zero(v.Type())
		}
		v.Set(out)
	case v.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			return at("must be a string")
		}
		v.SetString(n.Value)
	case v.Kind() == reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			return at("must be true or false")
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			return at("must be an integer")
		}
		v.SetInt(i)
	case v.Kind() == reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			return at("must be a number")
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("%s: unsupported configuration type %s", path, v.Type()) // a bug in Config
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldByKey returns the index of the field of struct type t whose yaml tag is key.
func fieldByKey(t reflect.Type, key string) (int, bool) {
	for i := range t.NumField() {
		if tagName(t.Field(i)) == key {
			return i, true
		}
	}
	return 0, false
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// envName is the environment variable for a key path: ORDERSYNC_ + upper snake case.
func envName(path []string) string {
	r := strings.NewReplacer("-", "_", ".", "_")
	return envPrefix + strings.ToUpper(r.Replace(strings.Join(path, "_")))
}

// envKeys maps every environment variable that can set a key of cfg to the key's path. Channel
// variables exist for every channel id present in cfg.Channels.
func envKeys(cfg *Config) (map[string][]string, error) {
	keys := make(map[string][]string)
	var walk func(path []string, t reflect.Type)
	walk = func(path []string, t reflect.Type) {
		if t.Kind() == reflect.Struct && t != durationType {
			for i := range t.NumField() {
				walk(append(slices.Clone(path), tagName(t.Field(i))), t.Field(i).Type)
			}
			return
		}
		if t.Kind() == reflect.Map {
			return // channels: below
		}
		keys[envName(path)] = path
	}
	walk(nil, reflect.TypeFor[Config]())
	ids := make([]string, 0, len(cfg.Channels))
	for id := range cfg.Channels {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	chType := reflect.TypeFor[ChannelConfig]()
	for _, id := range ids {
		for i := range chType.NumField() {
			path := []string{"channels", id, tagName(chType.Field(i))}
			name := envName(path)
			if prev, ok := keys[name]; ok {
				return nil, fmt.Errorf("channels.%s: channel id collides with %s in variable %s", id, strings.Join(prev[:2], "."), name)
			}
			keys[name] = path
		}
	}
	return keys, nil
}

// applyEnv applies the ORDERSYNC_* variables of environ to cfg. Every error is reported, sorted by name.
func applyEnv(cfg *Config, environ []string) error {
	vars := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, envPrefix) {
			vars[name] = value // the last one wins, as in the process environment
		}
	}
	if len(vars) == 0 {
		return nil
	}
	keys, err := envKeys(cfg)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		path, ok := keys[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown configuration variable", name))
			continue
		}
		if err := setPath(reflect.ValueOf(cfg).Elem(), path, vars[name]); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", name, strings.Join(path, "."), err))
		}
	}
	return errors.Join(errs...)
}

// setPath sets the key at path below v from its environment representation.
func setPath(v reflect.Value, path []string, raw string) error {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() != durationType {
			idx, _ := fieldByKey(v.Type(), path[0])
			return setPath(v.Field(idx), path[1:], raw)
		}
	case reflect.Map:
		mk := reflect.ValueOf(path[0])
		elem := reflect.New(v.Type().Elem()).Elem()
		elem.Set(v.MapIndex(mk))
		if err := setPath(elem, path[1:], raw); err != nil {
			return err
		}
		v.SetMapIndex(mk, elem)
		return nil
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("invalid duration %q", raw)
		}
		v.SetInt(int64(d))
	case v.Type() == secretType:
		v.SetString(raw)
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Slice:
		var out []string
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		v.Set(reflect.ValueOf(out))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", raw)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		i, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || v.OverflowInt(i) {
			return fmt.Errorf("must be an integer, got %q", raw)
		}
		v.SetInt(i)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("must be a number, got %q", raw)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("unsupported configuration type %s", v.Type()) // a bug in Config
	}
	return nil
}

// String renders the configuration as YAML with every secret shown as "[REDACTED]". The output loads
// with loadConfig.
func (c Config) String() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("config: %v", err)
	}
	return string(b)
}

// ChannelTopics returns channel id → topic for the enabled channels (the argument of
// dispatch.NewRegistry).
func (c Config) ChannelTopics() map[string]string {
	topics := make(map[string]string)
	for id, ch := range c.Channels {
		if ch.Enabled {
			topics[id] = ch.Topic
		}
	}
	return topics
}

// Validate checks the configuration for `worker run`: every rule of validate plus the TOP credentials
// (top.app_key and top.app_secret). Every problem is reported, one line each, starting with the key.
func (c Config) Validate() error { return c.validate(true) }

// validate checks every key. requireSecrets=false skips the TOP credentials, for commands that never
// call the gateway (replay) or that provide them themselves (dev).
func (c Config) validate(requireSecrets bool) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be > 0")
		}
	}
	file := func(key, path string) {
		if path == "" {
			return
		}
		st, err := os.Stat(path)
		switch {
		case err != nil:
			bad(key, "%v", err)
		case st.IsDir():
			bad(key, "%s is a directory", path)
		}
	}

	// kafka
	k := c.Kafka
	if len(k.Brokers) == 0 {
		bad("kafka.brokers", "at least one broker required")
	}
	for i, b := range k.Brokers {
		if err := checkHostPort(b, true); err != nil {
			bad(fmt.Sprintf("kafka.brokers[%d]", i), "%v", err)
		}
	}
	if k.GroupID == "" {
		bad("kafka.group_id", "required")
	}
	if k.ClientID == "" {
		bad("kafka.client_id", "required")
	}
	if err := checkTopic(k.ResultsTopic); err != nil {
		bad("kafka.results_topic", "%v", err)
	}
	if err := checkTopic(k.DLQTopic); err != nil {
		bad("kafka.dlq_topic", "%v", err)
	}
	if k.ResultsTopic != "" && k.ResultsTopic == k.DLQTopic {
		bad("kafka.dlq_topic", "must differ from kafka.results_topic")
	}
	if k.StartOffset != "first" && k.StartOffset != "last" {
		bad("kafka.start_offset", "must be first or last")
	}
	if k.MinBytes < 1 {
		bad("kafka.min_bytes", "must be ≥ 1")
	}
	if k.MaxBytes < k.MinBytes {
		bad("kafka.max_bytes", "must be ≥ kafka.min_bytes")
	}
	positive("kafka.max_wait", k.MaxWait)
	if k.CommitInterval <= 0 {
		bad("kafka.commit_interval", "must be > 0")
	}
	positive("kafka.session_timeout", k.SessionTimeout)
	positive("kafka.rebalance_timeout", k.RebalanceTimeout)
	positive("kafka.heartbeat_interval", k.HeartbeatInterval)
	if k.HeartbeatInterval >= k.SessionTimeout && k.SessionTimeout > 0 {
		bad("kafka.heartbeat_interval", "must be shorter than kafka.session_timeout")
	}
	if k.MaxRecordBytes < consumer.MinRecordBytes {
		bad("kafka.max_record_bytes", "must be ≥ %d (room for a reduced dead letter)", consumer.MinRecordBytes)
	}
	if k.TLS.Enabled {
		file("kafka.tls.ca_file", k.TLS.CAFile)
		file("kafka.tls.cert_file", k.TLS.CertFile)
		file("kafka.tls.key_file", k.TLS.KeyFile)
		if (k.TLS.CertFile == "") != (k.TLS.KeyFile == "") {
			bad("kafka.tls.cert_file", "kafka.tls.cert_file and kafka.tls.key_file go together")
		}
	} else if k.TLS.CAFile != "" || k.TLS.CertFile != "" || k.TLS.KeyFile != "" || k.TLS.InsecureSkipVerify {
		bad("kafka.tls.enabled", "must be true when other kafka.tls keys are set")
	}
	switch k.SASL.Mechanism {
	case "":
		if k.SASL.Username != "" || k.SASL.Password != "" {
			bad("kafka.sasl.mechanism", "required when kafka.sasl.username or kafka.sasl.password is set")
		}
	case "plain", "scram-sha-256", "scram-sha-512":
		if k.SASL.Username == "" {
			bad("kafka.sasl.username", "required with kafka.sasl.mechanism")
		}
		if k.SASL.Password == "" {
			bad("kafka.sasl.password", "required with kafka.sasl.mechanism")
		}
	default:
		bad("kafka.sasl.mechanism", "must be plain, scram-sha-256 or scram-sha-512 (or empty for no SASL)")
	}

	// redis
	r := c.Redis
	if len(r.Addrs) == 0 {
		bad("redis.addrs", "at least one address required")
	}
	for i, a := range r.Addrs {
		if err := checkHostPort(a, true); err != nil {
			bad(fmt.Sprintf("redis.addrs[%d]", i), "%v", err)
		}
	}
	if r.DB < 0 {
		bad("redis.db", "must be ≥ 0")
	}
	if r.DB != 0 && r.MasterName == "" && len(r.Addrs) > 1 {
		bad("redis.db", "must be 0 with Redis Cluster (several redis.addrs without redis.master_name)")
	}
	if r.KeyPrefix == "" {
		bad("redis.key_prefix", "required")
	}
	positive("redis.dial_timeout", r.DialTimeout)
	if r.TLS.Enabled {
		file("redis.tls.ca_file", r.TLS.CAFile)
	} else if r.TLS.CAFile != "" {
		bad("redis.tls.enabled", "must be true when redis.tls.ca_file is set")
	}

	// top
	t := c.Top
	if err := checkURL(t.GatewayURL); err != nil {
		bad("top.gateway_url", "%v", err)
	}
	if requireSecrets {
		if t.AppKey == "" {
			bad("top.app_key", "required (set ORDERSYNC_TOP_APP_KEY)")
		}
		if t.AppSecret == "" {
			bad("top.app_secret", "required (set ORDERSYNC_TOP_APP_SECRET or top.app_secret_file)")
		}
	}
	switch t.SignMethod {
	case "md5", "hmac", "hmac-sha256":
	default:
		bad("top.sign_method", "must be md5, hmac or hmac-sha256")
	}
	file("top.sessions_file", t.SessionsFile)
	if t.DefaultSeller != "" && t.SessionsFile == "" {
		bad("top.default_seller", "needs top.sessions_file")
	}
	positive("top.timeout", t.Timeout)
	if t.QPS < 0 || math.IsNaN(t.QPS) || math.IsInf(t.QPS, 0) {
		bad("top.qps", "must be ≥ 0 (0 = unlimited)")
	}
	if t.Burst < 0 {
		bad("top.burst", "must be ≥ 0")
	}
	if t.MaxBanWait < 0 {
		bad("top.max_ban_wait", "must be ≥ 0")
	}
	for i, code := range t.RetryableSubCodes {
		if !strings.HasPrefix(code, "isv.") || len(code) == len("isv.") || strings.ContainsAny(code, " \t") {
			bad(fmt.Sprintf("top.retryable_sub_codes[%d]", i), "must be an isv.* sub-code (isp.* are always retried)")
		}
	}
	rt := t.Retry
	positive("top.retry.initial_interval", rt.InitialInterval)
	if !(rt.Multiplier >= 1) || math.IsInf(rt.Multiplier, 0) {
		bad("top.retry.multiplier", "must be a number ≥ 1")
	}
	if rt.MaxInterval < rt.InitialInterval {
		bad("top.retry.max_interval", "must be ≥ top.retry.initial_interval")
	}
	if !(rt.RandomizationFactor >= 0 && rt.RandomizationFactor <= 1) {
		bad("top.retry.randomization_factor", "must be between 0 and 1")
	}
	positive("top.retry.max_elapsed_time", rt.MaxElapsedTime)
	positive("top.reload_interval", t.ReloadInterval)
	if b := t.Breaker; b.Enabled {
		if b.ConsecutiveFailures < 1 {
			bad("top.breaker.consecutive_failures", "must be ≥ 1")
		}
		if !(b.FailureRatio > 0 && b.FailureRatio <= 1) {
			bad("top.breaker.failure_ratio", "must be in (0, 1]")
		}
		if b.MinRequests < 1 {
			bad("top.breaker.min_requests", "must be ≥ 1")
		}
		positive("top.breaker.window", b.Window)
		positive("top.breaker.open_for", b.OpenFor)
		if b.MaxOpenFor < b.OpenFor {
			bad("top.breaker.max_open_for", "must be ≥ top.breaker.open_for")
		}
	}

	// worker
	w := c.Worker
	if w.MaxInFlight < 1 {
		bad("worker.max_in_flight", "must be ≥ 1")
	}
	positive("worker.shutdown_timeout", w.ShutdownTimeout)
	if least := t.Timeout + storeTimeout + closeTimeout + time.Second; w.ShutdownTimeout > 0 && t.Timeout > 0 && w.ShutdownTimeout < least {
		// A call sent just before the drain ends runs to top.timeout, its answer is stored, then
		// the producer flushes: all within the shutdown.
		bad("worker.shutdown_timeout", "must be ≥ top.timeout + 8s (%s), so an answer in transit at shutdown is stored", least)
	}
	if w.Lease < minLease {
		// Renewed every third of it: a shorter lease can expire while a renewal is still on its way.
		bad("worker.lease", "must be ≥ %s (the lease is renewed every third of it)", minLease)
	}
	positive("worker.probe_interval", w.ProbeInterval)
	if w.MaxProbeInterval < w.ProbeInterval {
		bad("worker.max_probe_interval", "must be ≥ worker.probe_interval")
	}
	positive("worker.retention", w.Retention)
	if w.Retention > 0 && w.Retention < w.Lease {
		bad("worker.retention", "must be ≥ worker.lease")
	}
	if w.MaxMessageBytes < 1 {
		bad("worker.max_message_bytes", "must be ≥ 1")
	}

	// channels
	ids := make([]string, 0, len(c.Channels))
	for id := range c.Channels {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	topicOwner := map[string]string{k.ResultsTopic: "kafka.results_topic", k.DLQTopic: "kafka.dlq_topic"}
	enabled := 0
	for _, id := range ids {
		ch := c.Channels[id]
		key := "channels." + id
		if !slices.Contains(channelIDs, id) {
			bad(key, "unknown channel (known: %s)", strings.Join(channelIDs, ", "))
			continue
		}
		if ch.GatewayURL != "" {
			if err := checkURL(ch.GatewayURL); err != nil {
				bad(key+".gateway_url", "%v", err)
			}
		}
		if !ch.Enabled {
			continue
		}
		enabled++
		if err := checkTopic(ch.Topic); err != nil {
			bad(key+".topic", "%v", err)
			continue
		}
		if owner, ok := topicOwner[ch.Topic]; ok {
			bad(key+".topic", "%s is already used by %s", ch.Topic, owner)
			continue
		}
		topicOwner[ch.Topic] = key + ".topic"
	}
	if enabled == 0 {
		bad("channels", "at least one channel must be enabled")
	}

	// http, log
	if err := checkHostPort(c.HTTP.Addr, false); err != nil {
		bad("http.addr", "%v", err)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error")
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format", "must be json or text")
	}
	return errors.Join(errs...)
}

// checkHostPort accepts host:port with a numeric port, and :port unless requireHost.
func checkHostPort(addr string, requireHost bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || (requireHost && host == "") {
		return fmt.Errorf("must be host:port, got %q", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid port in %q", addr)
	}
	return nil
}

// checkTopic applies Kafka's topic name rules.
func checkTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("required")
	case len(topic) > 249:
		return errors.New("longer than 249 characters")
	case topic == "." || topic == "..":
		return fmt.Errorf("%q is not a valid topic name", topic)
	}
	for _, r := range topic {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q: topic names use only letters, digits, '.', '_' and '-'", topic)
		}
	}
	return nil
}

// checkURL accepts an absolute http or https URL.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an http(s) URL, got %q", raw)
	}
	return nil
}

// loadSessions reads a sessions file: a YAML mapping of seller → session key. Errors name the file,
// the line and the seller, never a session key.
func loadSessions(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("sessions %s: no sessions", path)
		}
		// Only the line: the parser's own words are not repeated, in case they ever quote the file.
		if line := yamlErrLine.FindString(err.Error()); line != "" {
			return nil, fmt.Errorf("sessions %s (%s): invalid YAML", path, line)
		}
		return nil, fmt.Errorf("sessions %s: invalid YAML", path)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("sessions %s: more than one YAML document", path)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("sessions %s (line %d): must be a mapping of seller to session key", path, root.Line)
	}
	sessions := make(map[string]string, len(root.Content)/2)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value == "" || k.ShortTag() == "!!null" {
			return nil, fmt.Errorf("sessions %s (line %d): sellers must be non-empty strings", path, k.Line)
		}
		if _, dup := sessions[k.Value]; dup {
			return nil, fmt.Errorf("sessions %s (line %d): seller %q listed twice", path, k.Line, k.Value)
		}
		if v.Kind != yaml.ScalarNode || v.Value == "" || v.ShortTag() == "!!null" {
			return nil, fmt.Errorf("sessions %s (line %d): seller %q: session key must be a non-empty string", path, v.Line, k.Value)
		}
		sessions[k.Value] = v.Value
	}
	if len(sessions) == 0 {
		return nil, fmt.Errorf("sessions %s: no sessions", path)
	}
	return sessions, nil
}
