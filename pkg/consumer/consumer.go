package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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

// Config configures a [Consumer]. Zero values take the documented defaults.
type Config struct {
	Brokers []string // required
	GroupID string   // required
	Topics  []string // required: the channel topics to consume
	// Writer publishes the processor's records and the dead letters. Required.
	Writer *kafka.Writer
	// DeadLetterTopic receives the messages whose Result names a dead-letter reason. Required.
	DeadLetterTopic string
	// MaxRecordBytes is the largest record published (RecordSize); it should equal the Writer's
	// BatchBytes and not exceed the topics' max.message.bytes. Larger dead letters are reduced and
	// larger results replaced by their fallback. Default: 1 MiB; at least MinRecordBytes.
	MaxRecordBytes int
	// Dialer connects the group coordinator (TLS, SASL, client id). Default: kafka.DefaultDialer.
	Dialer *kafka.Dialer
	// Transport carries fetches and offset lookups (TLS, SASL, client id). Default:
	// kafka.DefaultTransport.
	Transport kafka.RoundTripper
	// StartOffset applies to partitions the group never committed: kafka.FirstOffset (default)
	// or kafka.LastOffset.
	StartOffset int64
	// MinBytes, MaxBytes and MaxWait tune fetching; MaxBytes bounds one partition's fetch
	// response (the broker returns at least one record batch even if it is larger). Defaults:
	// 1 byte, 1 MiB, 250ms.
	MinBytes int
	MaxBytes int
	MaxWait  time.Duration
	// CommitInterval is how often finished offsets are committed. Default: 1s.
	CommitInterval time.Duration
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval are the group's. Defaults: 30s, 30s, 3s.
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	// MaxInFlight bounds messages between fetch and finish across all partitions, parked or not.
	// Default: 512.
	MaxInFlight int
	// DrainTimeout bounds how long in-flight work may run on when partitions are revoked or the
	// consumer stops; what has not finished by then is abandoned uncommitted. Default: 10s.
	DrainTimeout time.Duration
	// ProbeInterval is the first wait before probing a pause that gave no end time; it doubles
	// with every failed probe up to MaxProbeInterval. Defaults: 5s, 1m.
	ProbeInterval    time.Duration
	MaxProbeInterval time.Duration
	// RampStep is the time between waves of parked messages resuming after a pause (1, 2, 4, ...
	// messages per wave). Default: 250ms.
	RampStep time.Duration
	// PauseReasons are the Pause.Reason values the processor uses; the paused gauge reports each
	// (0 or 1) from the start, with the consumer's own "unwritable".
	PauseReasons []string
	// LagInterval is how often the partitions' high watermarks are asked of the brokers, so that
	// lag keeps growing while fetching stands still. Default: 5s.
	LagInterval time.Duration
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
	if c.Transport == nil {
		c.Transport = kafka.DefaultTransport
	}
	if c.StartOffset == 0 {
		c.StartOffset = kafka.FirstOffset
	}
	if c.MinBytes == 0 {
		c.MinBytes = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 20
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
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = 1 << 20
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = 5 * time.Second
	}
	if c.MaxProbeInterval == 0 {
		c.MaxProbeInterval = time.Minute
	}
	if c.RampStep == 0 {
		c.RampStep = 250 * time.Millisecond
	}
	if c.LagInterval == 0 {
		c.LagInterval = 5 * time.Second
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
	case c.DeadLetterTopic == "":
		return errors.New("consumer: no dead-letter topic")
	case c.MaxInFlight < 0:
		return errors.New("consumer: max in flight must not be negative")
	case c.MaxRecordBytes != 0 && c.MaxRecordBytes < MinRecordBytes:
		return fmt.Errorf("consumer: max record bytes must be at least %d", MinRecordBytes)
	case c.MaxBytes < 0 || c.MinBytes < 0 || c.MaxBytes > 0 && c.MinBytes > c.MaxBytes:
		return errors.New("consumer: fetch bytes must satisfy 0 ≤ min ≤ max")
	case c.StartOffset != 0 && c.StartOffset != kafka.FirstOffset && c.StartOffset != kafka.LastOffset:
		return errors.New("consumer: start offset must be kafka.FirstOffset or kafka.LastOffset")
	case c.ProbeInterval < 0 || c.MaxProbeInterval < 0 || c.RampStep < 0 || c.LagInterval < 0:
		return errors.New("consumer: probe, ramp and lag intervals must not be negative")
	}
	return nil
}

// Consumer consumes Config.Topics in a consumer group. Create it with [New] and call
// [Consumer.Run] once. Its methods are safe for concurrent use.
type Consumer struct {
	cfg    Config
	proc   Processor
	log    *slog.Logger
	tracer trace.Tracer
	addr   net.Addr
	slots  chan struct{} // a fetched, unfinished message holds one element
	m      *instruments
	gates  *gates
	pool   *workers

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
		addr:   kafka.TCP(cfg.Brokers...),
		slots:  make(chan struct{}, cfg.MaxInFlight),
		parts:  make(map[partitionID]*partition),
		pool:   newWorkers(),
	}
	c.gates = newGates(c)
	for _, r := range append(cfg.PauseReasons, "unwritable") {
		c.gates.reasons[r] = true
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

// Paused describes the pauses that hold processing back, sorted by scope; nil when none.
func (c *Consumer) Paused() []PauseState { return c.gates.states() }

// Probe brings forward to now the probe of every pause with the given reason that is waiting
// for its probe time — for example after new credentials were loaded.
func (c *Consumer) Probe(reason string) { c.gates.probeNow(reason) }

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
	defer c.gates.stop()
	defer c.pool.close() // after every generation has drained: no task runs any more
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

// startGeneration starts a fetch loop per assigned partition, a committer and a lag poller, all
// bound to gen.
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
	gen.Start(func(gctx context.Context) { c.pollLag(gctx, parts) })
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

// pollLag asks the brokers for the partitions' high watermarks every LagInterval, so that the lag
// gauges grow while fetching stands still (a pause, a full in-flight bound, a slow key).
func (c *Consumer) pollLag(gctx context.Context, parts []*partition) {
	if len(parts) == 0 {
		return
	}
	req := make(map[string][]kafka.OffsetRequest)
	for _, p := range parts {
		req[p.topic] = append(req[p.topic], kafka.LastOffsetOf(p.id))
	}
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-gctx.Done():
			return
		case <-t.C:
		}
		offs, err := listOffsets(gctx, c.cfg.Transport, c.addr, req)
		if err != nil {
			if gctx.Err() == nil {
				c.log.Debug("list offsets for lag", "err", err)
			}
			continue
		}
		for _, p := range parts {
			if po, ok := offs[p.topic][p.id]; ok && po.Error == nil && po.LastOffset >= 0 {
				p.hwm.Store(po.LastOffset)
			}
		}
	}
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

// waitSlot waits until a slot is free, without taking it; false when ctx ends first.
func (c *Consumer) waitSlot(ctx context.Context) bool {
	select {
	case c.slots <- struct{}{}:
		<-c.slots
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *Consumer) release() {
	<-c.slots
	c.m.inFlight.Add(context.Background(), -1)
}
