package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
)

// StoreTimeout bounds storing the answer of a call that was answered; CloseTimeout bounds
// flushing the producer, committing and closing at shutdown. The drain before them gets what
// worker.shutdown_timeout leaves (Config.DrainTimeout).
const (
	StoreTimeout = 5 * time.Second
	CloseTimeout = 2 * time.Second
)

// DrainTimeout is how long in-flight events may run on after a revoke or SIGTERM: the shutdown
// timeout less a call sent just before it ends (top.timeout), storing its answer and closing.
func (c Config) DrainTimeout() time.Duration {
	return c.Worker.ShutdownTimeout - c.Top.Timeout - StoreTimeout - CloseTimeout
}

// Validate checks the configuration for `worker run`: every rule of validate plus the TOP credentials
// (top.app_key and top.app_secret). Every problem is reported, one line each, starting with the key.
func (c Config) Validate() error { return c.validate(true) }

// ValidateWithoutCredentials is Validate without the TOP credentials, for commands that never
// call the gateway (replay) or that provide them themselves (dev).
func (c Config) ValidateWithoutCredentials() error { return c.validate(false) }

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
	if least := t.Timeout + StoreTimeout + CloseTimeout + time.Second; w.ShutdownTimeout > 0 && t.Timeout > 0 && w.ShutdownTimeout < least {
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
		if !slices.Contains(dispatch.ChannelIDs(), id) {
			bad(key, "unknown channel (known: %s)", strings.Join(dispatch.ChannelIDs(), ", "))
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
	if c.Log.Outcomes != "failures" && c.Log.Outcomes != "all" {
		bad("log.outcomes", "must be failures or all")
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
