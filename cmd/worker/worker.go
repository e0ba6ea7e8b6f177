package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"golang.org/x/sync/errgroup"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/internal/telemetry"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/pipeline"
	"github.com/ordersync/ordersync/pkg/topapi"
)

// reasonCredentials is the pause reason of refused credentials (see pipeline.PauseReasons).
const reasonCredentials = "credentials"

// gatewaysOf is the pipeline's gateways: top.gateway_url, and one per distinct gateway_url of
// the enabled channels, sharing client's app key, secret, rate limits and bans.
func gatewaysOf(cfg config.Config, client *topapi.Client) ([]pipeline.Gateway, error) {
	gws := []pipeline.Gateway{{Name: gatewayName(cfg.Top.GatewayURL), Caller: client}}
	byURL := map[string]int{}
	ids := make([]string, 0, len(cfg.Channels))
	for id := range cfg.Channels {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ch := cfg.Channels[id]
		if !ch.Enabled || ch.GatewayURL == "" || ch.GatewayURL == cfg.Top.GatewayURL {
			continue
		}
		if i, ok := byURL[ch.GatewayURL]; ok {
			gws[i].Channels = append(gws[i].Channels, id)
			continue
		}
		c, err := client.WithGateway(ch.GatewayURL)
		if err != nil {
			return nil, fmt.Errorf("channels.%s.gateway_url: %w", id, err)
		}
		byURL[ch.GatewayURL] = len(gws)
		gws = append(gws, pipeline.Gateway{Name: gatewayName(ch.GatewayURL), Caller: c, Channels: []string{id}})
	}
	// Two gateways on one host are told apart by their path.
	seen := map[string]int{}
	for _, gw := range gws {
		seen[gw.Name]++
	}
	for i := range gws {
		if seen[gws[i].Name] > 1 {
			u, _ := url.Parse(urlOf(cfg, gws[i]))
			gws[i].Name = u.Host + u.Path
		}
	}
	return gws, nil
}

func urlOf(cfg config.Config, gw pipeline.Gateway) string {
	if gw.Channels == nil {
		return cfg.Top.GatewayURL
	}
	return cfg.Channels[gw.Channels[0]].GatewayURL
}

// gatewayName is a gateway URL's host, its name in logs, pauses and metrics.
func gatewayName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	return u.Host
}

func breakerOf(b config.Breaker) pipeline.Breaker {
	return pipeline.Breaker{
		Disabled:            !b.Enabled,
		ConsecutiveFailures: uint32(b.ConsecutiveFailures),
		FailureRatio:        b.FailureRatio,
		MinRequests:         uint32(b.MinRequests),
		Window:              b.Window,
		OpenFor:             b.OpenFor,
		MaxOpenFor:          b.MaxOpenFor,
	}
}

// hooks lets dev mode and tests observe the running worker.
type hooks struct {
	// ready is called once the HTTP listener is up, with its address.
	ready func(httpAddr string)
	// telemetry overrides the OpenTelemetry setup options (tests inject span exporters).
	telemetry *telemetry.Options
	// emulatedRedis skips the Redis start-up checks: dev mode's in-process Redis (miniredis)
	// reports no server version or memory policy.
	emulatedRedis bool
	// processor replaces the pipeline as the consumer's processor (the benchmark's pass-through
	// ceiling); it gets the pipeline it replaces.
	processor func(cfg config.Config, p consumer.Processor) consumer.Processor
}

// testHooks are the hooks of `worker run`: nil, except in a worker the tests start as a child
// process.
var testHooks *hooks

// serve runs the worker until ctx is cancelled, then shuts down in order within
// worker.shutdown_timeout: stop fetching → drain in-flight events → flush the producer → commit →
// close Redis, HTTP and telemetry.
func serve(ctx context.Context, cfg config.Config, sessions map[string]string, logOut io.Writer, h *hooks) error {
	if h == nil {
		h = &hooks{}
	}
	log := telemetry.NewLogger(logOut, cfg.Log.Format, logLevel(cfg.Log.Level))
	topts := telemetry.Options{ServiceVersion: version}
	if h.telemetry != nil {
		topts = *h.telemetry
		topts.ServiceVersion = version
	}
	if topts.Logger == nil {
		// Failed exports and dropped spans go to our JSON log, not the standard library's.
		topts.Logger = log
	}
	tel, err := telemetry.Setup(ctx, topts)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	// Everything below is closed with a context that outlives ctx by the shutdown timeout.
	shutdownCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), cfg.Worker.ShutdownTimeout)
	}
	defer func() {
		sctx, cancel := shutdownCtx()
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("telemetry shutdown", "err", err)
		}
	}()
	tp, mp := tel.TracerProvider(), tel.MeterProvider()

	// go-redis logs dial failures on its own; route them into our log instead of stderr.
	redis.SetLogger(redisLogger{log})
	rdb, err := newRedis(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if cfg.Worker.ClientTelemetry {
		if err := telemetry.InstrumentRedis(rdb, tp, mp); err != nil {
			return fmt.Errorf("instrument redis: %w", err)
		}
	}
	store, err := dedupe.New(rdb, dedupe.Config{Prefix: cfg.Redis.KeyPrefix, ClaimRetention: cfg.Worker.Retention, AutoPipeline: cfg.Redis.AutoPipeline})
	if err != nil {
		return err
	}

	registry, err := dispatch.NewRegistry(cfg.ChannelTopics())
	if err != nil {
		return err
	}
	httpClient := &http.Client{Transport: topapi.NewTransport()}
	if cfg.Worker.ClientTelemetry {
		httpClient.Transport = telemetry.HTTPTransport(httpClient.Transport, tp, mp)
	}
	client, err := topapi.New(topapi.Config{
		Gateway:           cfg.Top.GatewayURL,
		AppKey:            cfg.Top.AppKey,
		AppSecret:         string(cfg.Top.AppSecret),
		SignMethod:        cfg.Top.SignMethod,
		PartnerID:         "ordersync-" + version,
		Timeout:           cfg.Top.Timeout,
		HTTPClient:        httpClient,
		QPS:               cfg.Top.QPS,
		Burst:             cfg.Top.Burst,
		MaxBanWait:        cfg.Top.MaxBanWait,
		RetryableSubCodes: cfg.Top.RetryableSubCodes,
	})
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	gateways, err := gatewaysOf(cfg, client)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	pipe, err := pipeline.New(pipeline.Config{
		Registry:        registry,
		Dedupe:          store,
		Gateways:        gateways,
		AppKey:          cfg.Top.AppKey,
		Breaker:         breakerOf(cfg.Top.Breaker),
		Sessions:        pipeline.NewSessions(sessions),
		DefaultSeller:   cfg.Top.DefaultSeller,
		ResultsTopic:    cfg.Kafka.ResultsTopic,
		Owner:           fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()),
		Lease:           cfg.Worker.Lease,
		Retention:       cfg.Worker.Retention,
		MaxMessageBytes: cfg.Worker.MaxMessageBytes,
		MaxRecordBytes:  cfg.Kafka.MaxRecordBytes,
		StoreTimeout:    config.StoreTimeout,
		Retry: pipeline.Retry{
			InitialInterval:     cfg.Top.Retry.InitialInterval,
			Multiplier:          cfg.Top.Retry.Multiplier,
			MaxInterval:         cfg.Top.Retry.MaxInterval,
			RandomizationFactor: cfg.Top.Retry.RandomizationFactor,
			MaxElapsedTime:      cfg.Top.Retry.MaxElapsedTime,
		},
		LogSuccesses:   cfg.Log.Outcomes == "all",
		Logger:         log,
		TracerProvider: tp,
		MeterProvider:  mp,
	})
	if err != nil {
		return err
	}

	dialer, transport, err := kafkaClients(cfg.Kafka)
	if err != nil {
		return err
	}
	writer := &kafka.Writer{
		Addr:     kafka.TCP(cfg.Kafka.Brokers...),
		Balancer: &kafka.Murmur2Balancer{}, // same partition for a key as the Java client
		// Every outcome must be on all in-sync replicas before its offset can be committed.
		RequiredAcks: kafka.RequireAll,
		// Concurrent events are batched together; the 1s default would add a second to each.
		BatchTimeout: 2 * time.Millisecond,
		BatchSize:    32, // kafka-go allocates room for a whole batch up front: small batches are the common case
		BatchBytes:   int64(cfg.Kafka.MaxRecordBytes),
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  3,
		Transport:    transport,
		ErrorLogger:  kafka.LoggerFunc(func(f string, a ...any) { log.Warn(fmt.Sprintf(f, a...), "component", "kafka") }),
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		// kafka-go logs every batch it writes: formatted only when it will be shown.
		writer.Logger = kafka.LoggerFunc(func(f string, a ...any) { log.Debug(fmt.Sprintf(f, a...), "component", "kafka") })
	}
	startOffset := kafka.FirstOffset
	if cfg.Kafka.StartOffset == "last" {
		startOffset = kafka.LastOffset
	}
	var proc consumer.Processor = pipe
	if h.processor != nil {
		proc = h.processor(cfg, pipe)
	}
	cons, err := consumer.New(consumer.Config{
		Brokers:           cfg.Kafka.Brokers,
		GroupID:           cfg.Kafka.GroupID,
		Topics:            registry.Topics(),
		Writer:            writer,
		DeadLetterTopic:   cfg.Kafka.DLQTopic,
		MaxRecordBytes:    cfg.Kafka.MaxRecordBytes,
		PauseReasons:      pipeline.PauseReasons,
		Dialer:            dialer,
		Transport:         transport,
		ProbeInterval:     cfg.Worker.ProbeInterval,
		MaxProbeInterval:  cfg.Worker.MaxProbeInterval,
		StartOffset:       startOffset,
		MinBytes:          cfg.Kafka.MinBytes,
		MaxBytes:          cfg.Kafka.MaxBytes,
		MaxWait:           cfg.Kafka.MaxWait,
		CommitInterval:    cfg.Kafka.CommitInterval,
		SessionTimeout:    cfg.Kafka.SessionTimeout,
		RebalanceTimeout:  cfg.Kafka.RebalanceTimeout,
		HeartbeatInterval: cfg.Kafka.HeartbeatInterval,
		MaxInFlight:       cfg.Worker.MaxInFlight,
		RedactKey:         telemetry.MaskPhone,
		DrainTimeout:      cfg.DrainTimeout(),
		Logger:            log,
		TracerProvider:    tp,
		MeterProvider:     mp,
		Propagator:        tel.Propagator(),
	}, proc)
	if err != nil {
		return err
	}

	health := &health{consumer: cons, redis: rdb, dialer: dialer, brokers: cfg.Kafka.Brokers}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", health.live)
	mux.HandleFunc("GET /readyz", health.ready)
	mux.Handle("GET /metrics", tel.MetricsHandler())
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	log.Info("ordersync starting", "version", version, "brokers", strings.Join(cfg.Kafka.Brokers, ","), "group", cfg.Kafka.GroupID,
		"topics", strings.Join(registry.Topics(), ","), "results", cfg.Kafka.ResultsTopic, "dlq", cfg.Kafka.DLQTopic,
		"redis", strings.Join(cfg.Redis.Addrs, ","), "gateway", cfg.Top.GatewayURL, "http", ln.Addr().String(),
		"max_in_flight", cfg.Worker.MaxInFlight)
	if revoke := cfg.Worker.ShutdownTimeout - config.CloseTimeout; revoke > min(cfg.Kafka.SessionTimeout, cfg.Kafka.RebalanceTimeout) {
		// kafka-go stops heartbeating while a generation ends: a revoke longer than the session
		// gets the member expelled, its last commit refused and its finished events redelivered.
		log.Warn("a revoke may outlast the group session: events finished during a long revoke may be processed again (their outcomes repeated, no call repeated); raise kafka.session_timeout and kafka.rebalance_timeout above worker.shutdown_timeout less 2s",
			"revoke_up_to", revoke, "session_timeout", cfg.Kafka.SessionTimeout, "rebalance_timeout", cfg.Kafka.RebalanceTimeout)
	}
	if h.ready != nil {
		h.ready(ln.Addr().String())
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	// Rotated credentials and refreshed sessions (a Kubernetes Secret update) take effect without
	// a restart; an unreadable or invalid new file keeps the old values.
	if path := cfg.Top.AppSecretFile; path != "" {
		g.Go(func() error {
			watchFile(gctx, path, cfg.Top.ReloadInterval, log, func(data []byte) error {
				secret := strings.TrimSpace(string(data))
				if secret == "" {
					return fmt.Errorf("%s is empty", path)
				}
				if err := client.SetAppSecret(secret); err != nil {
					return err
				}
				log.Info("app secret reloaded", "file", path)
				cons.Probe(reasonCredentials)
				return nil
			})
			return nil
		})
	}
	if path := cfg.Top.SessionsFile; path != "" {
		g.Go(func() error {
			watchFile(gctx, path, cfg.Top.ReloadInterval, log, func([]byte) error {
				m, err := config.LoadSessions(path)
				if err == nil {
					err = cfg.Top.CheckDefaultSeller(m)
				}
				if err != nil {
					return err
				}
				pipe.Sessions().Store(m)
				log.Info("sessions reloaded", "file", path, "sellers", len(m))
				return nil
			})
			return nil
		})
	}
	g.Go(func() error {
		// The Redis start-up checks run behind the HTTP listener: while Redis is unreachable
		// /healthz answers and /readyz says why; a Redis the worker must not use stops start-up.
		var err error
		if h.emulatedRedis {
			if lerr := store.LoadScripts(gctx); lerr != nil {
				log.Warn("preload dedupe scripts", "err", lerr)
			}
		} else if err = redisPreflight(gctx, store, cfg.Redis, log); gctx.Err() != nil {
			err = nil // stopped before Redis answered
		}
		if err == nil {
			if err = kafkaPreflight(gctx, dialer, transport, cfg, log); gctx.Err() != nil {
				err = nil // stopped before the brokers answered
			}
		}
		if err == nil {
			err = cons.Run(gctx)
		}
		// The consumer has drained and committed: flush the producer, then stop HTTP.
		sctx, cancel := shutdownCtx()
		defer cancel()
		if werr := writer.Close(); werr != nil {
			log.Warn("close producer", "err", werr)
		}
		if herr := srv.Shutdown(sctx); herr != nil {
			log.Warn("http shutdown", "err", herr)
		}
		return err
	})

	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		log.Info("ordersync stopped")
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.Worker.ShutdownTimeout)
	select {
	case err := <-done:
		log.Info("ordersync stopped")
		return err
	case <-time.After(cfg.Worker.ShutdownTimeout):
		return fmt.Errorf("shutdown did not finish within worker.shutdown_timeout (%s)", cfg.Worker.ShutdownTimeout)
	}
}

// redisLogger adapts slog to go-redis's internal logger.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...), "component", "redis")
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// kafkaClients builds the dialer (consumer group and fetchers) and the transport (producer)
// with the configured TLS and SASL.
func kafkaClients(c config.Kafka) (*kafka.Dialer, *kafka.Transport, error) {
	dialer := &kafka.Dialer{ClientID: c.ClientID, Timeout: 10 * time.Second, DualStack: true}
	transport := &kafka.Transport{ClientID: c.ClientID, DialTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	if c.TLS.Enabled {
		cfg, err := tlsConfig(c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile, c.TLS.InsecureSkipVerify)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka.tls: %w", err)
		}
		dialer.TLS, transport.TLS = cfg, cfg
	}
	if c.SASL.Mechanism != "" {
		mech, err := saslMechanism(c.SASL)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka.sasl: %w", err)
		}
		dialer.SASLMechanism, transport.SASL = mech, mech
	}
	return dialer, transport, nil
}

func saslMechanism(c config.KafkaSASL) (sasl.Mechanism, error) {
	switch c.Mechanism {
	case "plain":
		return plain.Mechanism{Username: c.Username, Password: string(c.Password)}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, c.Username, string(c.Password))
	case "scram-sha-512":
		return scram.Mechanism(scram.SHA512, c.Username, string(c.Password))
	}
	return nil, fmt.Errorf("unknown mechanism %q", c.Mechanism)
}

func tlsConfig(caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // opt-in via config
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
