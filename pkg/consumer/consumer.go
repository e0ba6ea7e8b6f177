package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Processor handles one consumed message and returns the records to publish for it (its outcome
// and, where one is due, a dead letter). The consumer publishes them and then marks the message
// finished. Process must be safe for concurrent use; it is never called concurrently for two
// messages with the same key on the same partition.
//
// An error means the message could not be processed now — a dependency is down — and is retried
// after a backoff while the message keeps its in-flight slot; an error made with [Defer] is
// retried after the given delay without holding a slot. Process must honour ctx: when it is
// cancelled (a revoke or shutdown ran out of time) it should give up promptly and return ctx's
// error; the message then stays uncommitted and is delivered again to the partition's next owner.
type Processor interface {
	Process(ctx context.Context, m kafka.Message) ([]kafka.Message, error)
}

// ProcessorFunc adapts a function to [Processor].
type ProcessorFunc func(ctx context.Context, m kafka.Message) ([]kafka.Message, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, m kafka.Message) ([]kafka.Message, error) {
	return f(ctx, m)
}

// Defer wraps err so the consumer retries the message after d without holding an in-flight slot
// while it waits (for example while the platform bans the app key for minutes). The message keeps
// its key and its offset: later messages of the key wait, and nothing is committed past it.
func Defer(d time.Duration, err error) error { return &deferError{after: d, err: err} }

type deferError struct {
	after time.Duration
	err   error
}

func (e *deferError) Error() string { return fmt.Sprintf("deferred %s: %v", e.after, e.err) }
func (e *deferError) Unwrap() error { return e.err }

// Config configures a [Consumer]. Zero values take the documented defaults.
type Config struct {
	Brokers []string // required
	GroupID string   // required
	Topics  []string // required: the channel topics to consume
	Writer  *kafka.Writer
	// Dialer connects the group coordinator and the fetchers (TLS, SASL, client id).
	// Default: kafka.DefaultDialer.
	Dialer *kafka.Dialer
	// StartOffset applies to partitions the group never committed: kafka.FirstOffset (default)
	// or kafka.LastOffset.
	StartOffset int64
	// MinBytes, MaxBytes and MaxWait tune fetching. Defaults: 1 byte, 10 MiB, 250ms.
	MinBytes int
	MaxBytes int
	MaxWait  time.Duration
	// CommitInterval is how often finished offsets are committed. Default: 1s.
	CommitInterval time.Duration
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval are the group's. Defaults: 30s, 30s, 3s.
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	// MaxInFlight bounds messages between fetch and finish across all partitions. Default: 512.
	MaxInFlight int
	// DrainTimeout bounds how long in-flight work may run on when partitions are revoked or the
	// consumer stops; what has not finished by then is abandoned uncommitted. Default: 10s.
	DrainTimeout time.Duration
	// Logger receives operational logs. Default: slog.Default().
	Logger *slog.Logger
	// RedactKey rewrites a message key before it is recorded as a span attribute (keys may be
	// phone numbers or other personal data). Default: keys are recorded as they are.
	RedactKey func(key string) string
	// TracerProvider, MeterProvider and Propagator instrument the consumer. Defaults: no-ops.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

func (c *Config) setDefaults() {
	if c.Dialer == nil {
		c.Dialer = kafka.DefaultDialer
	}
	if c.StartOffset == 0 {
		c.StartOffset = kafka.FirstOffset
	}
	if c.MinBytes == 0 {
		c.MinBytes = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 10 << 20
	}
	if c.MaxWait == 0 {
		c.MaxWait = 250 * time.Millisecond
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 30 * time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 30 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 3 * time.Second
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 512
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RedactKey == nil {
		c.RedactKey = func(k string) string { return k }
	}
	if c.TracerProvider == nil {
		c.TracerProvider = tracenoop.NewTracerProvider()
	}
	if c.MeterProvider == nil {
		c.MeterProvider = noop.NewMeterProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.NewCompositeTextMapPropagator()
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("consumer: no brokers")
	case c.GroupID == "":
		return errors.New("consumer: no group id")
	case len(c.Topics) == 0:
		return errors.New("consumer: no topics")
	case c.Writer == nil:
		return errors.New("consumer: no writer")
	case c.MaxInFlight < 0:
		return errors.New("consumer: max in flight must not be negative")
	case c.StartOffset != 0 && c.StartOffset != kafka.FirstOffset && c.StartOffset != kafka.LastOffset:
		return errors.New("consumer: start offset must be kafka.FirstOffset or kafka.LastOffset")
	}
	return nil
}

// Consumer consumes Config.Topics in a consumer group. Create it with [New] and call
// [Consumer.Run] once.
type Consumer struct {
	cfg    Config
	proc   Processor
	log    *slog.Logger
	tracer trace.Tracer
	slots  chan struct{} // an in-flight message holds one element
	m      *instruments

	mu    sync.Mutex
	parts map[partitionID]*partition // partitions of the current generation

	joined   atomic.Bool
	draining atomic.Bool
}

type partitionID struct {
	topic string
	id    int
}

// New validates cfg and returns a consumer.
func New(cfg Config, proc Processor) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if proc == nil {
		return nil, errors.New("consumer: nil processor")
	}
	cfg.setDefaults()
	c := &Consumer{
		cfg:    cfg,
		proc:   proc,
		log:    cfg.Logger,
		tracer: cfg.TracerProvider.Tracer("github.com/ordersync/ordersync/pkg/consumer"),
		slots:  make(chan struct{}, cfg.MaxInFlight),
		parts:  make(map[partitionID]*partition),
	}
	m, err := newInstruments(cfg.MeterProvider.Meter("github.com/ordersync/ordersync/pkg/consumer"), c)
	if err != nil {
		return nil, fmt.Errorf("consumer: metrics: %w", err)
	}
	c.m = m
	return c, nil
}

// Ready reports whether the consumer has joined its group and is not shutting down.
func (c *Consumer) Ready() bool { return c.joined.Load() && !c.draining.Load() }

// Run consumes until ctx is cancelled, then stops fetching, lets in-flight work finish within
// DrainTimeout, commits what finished, leaves the group and returns nil. It returns an error only
// if the group cannot be created.
func (c *Consumer) Run(ctx context.Context) error {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.GroupID,
		Brokers:           c.cfg.Brokers,
		Dialer:            c.cfg.Dialer,
		Topics:            c.cfg.Topics,
		StartOffset:       c.cfg.StartOffset,
		SessionTimeout:    c.cfg.SessionTimeout,
		RebalanceTimeout:  c.cfg.RebalanceTimeout,
		HeartbeatInterval: c.cfg.HeartbeatInterval,
		JoinGroupBackoff:  time.Second,
		// Commits must survive a long stop: never expire them before the broker's default.
		RetentionTime:         7 * 24 * time.Hour,
		WatchPartitionChanges: true,
		ErrorLogger:           kafka.LoggerFunc(func(f string, a ...any) { c.log.Debug(fmt.Sprintf(f, a...), "component", "kafka") }),
	})
	if err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}
	// Work keeps its own context so that a cancelled ctx stops fetching but lets in-flight
	// messages finish within DrainTimeout; each partition cancels its work when time is up.
	work := context.WithoutCancel(ctx)
	for {
		gen, err := cg.Next(ctx)
		switch {
		case ctx.Err() != nil:
			c.draining.Store(true)
			// Close ends the current generation, waits for its partitions to drain and commit,
			// and leaves the group.
			cg.Close()
			c.joined.Store(false)
			return nil
		case errors.Is(err, kafka.ErrGroupClosed):
			return nil
		case err != nil:
			c.log.Warn("consumer group", "group", c.cfg.GroupID, "err", err)
			continue
		}
		c.joined.Store(true)
		c.startGeneration(work, gen)
	}
}

// startGeneration starts a fetch loop per assigned partition and a committer, all bound to gen.
func (c *Consumer) startGeneration(work context.Context, gen *kafka.Generation) {
	var parts []*partition
	var drained sync.WaitGroup
	c.mu.Lock()
	clear(c.parts)
	for topic, assigned := range gen.Assignments {
		for _, a := range assigned {
			p := newPartition(c, topic, a.ID, a.Offset)
			parts = append(parts, p)
			c.parts[partitionID{topic, a.ID}] = p
		}
	}
	c.mu.Unlock()
	c.log.Info("partitions assigned", "group", c.cfg.GroupID, "generation", gen.ID, "member", gen.MemberID, "partitions", len(parts))

	for _, p := range parts {
		drained.Add(1)
		gen.Start(func(gctx context.Context) {
			defer drained.Done()
			p.run(gctx, work)
		})
	}
	gen.Start(func(gctx context.Context) {
		t := time.NewTicker(c.cfg.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c.commit(gen, parts)
			case <-gctx.Done():
				drained.Wait()
				c.commit(gen, parts)
				c.mu.Lock()
				for _, p := range parts {
					if c.parts[partitionID{p.topic, p.id}] == p {
						delete(c.parts, partitionID{p.topic, p.id})
					}
				}
				c.mu.Unlock()
				c.log.Info("partitions revoked", "group", c.cfg.GroupID, "generation", gen.ID, "partitions", len(parts))
				return
			}
		}
	})
}

// commit commits every partition whose finished prefix advanced.
func (c *Consumer) commit(gen *kafka.Generation, parts []*partition) {
	offsets := make(map[string]map[int]int64)
	var moved []*partition
	for _, p := range parts {
		off := p.offsets.committable()
		if off < 0 || off <= p.committed.Load() {
			continue
		}
		if offsets[p.topic] == nil {
			offsets[p.topic] = make(map[int]int64)
		}
		offsets[p.topic][p.id] = off
		moved = append(moved, p)
	}
	if len(moved) == 0 {
		return
	}
	if err := gen.CommitOffsets(offsets); err != nil {
		c.log.Warn("commit offsets", "group", c.cfg.GroupID, "generation", gen.ID, "err", err)
		return
	}
	for _, p := range moved {
		p.committed.Store(offsets[p.topic][p.id])
	}
}

// acquire takes an in-flight slot, waiting while all are taken.
func (c *Consumer) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		c.m.inFlight.Add(context.Background(), 1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Consumer) release() {
	<-c.slots
	c.m.inFlight.Add(context.Background(), -1)
}
