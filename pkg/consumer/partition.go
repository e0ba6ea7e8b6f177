package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// partition is one assigned partition during one generation: its fetch loop, its key queues and
// its offset tracker.
type partition struct {
	c       *Consumer
	topic   string
	id      int
	start   int64 // offset to start fetching at (absolute, or kafka.FirstOffset/LastOffset)
	offsets *tracker

	committed atomic.Int64 // last committed offset, -1 when none
	fetchNext atomic.Int64 // one past the last fetched offset, -1 before the first fetch
	hwm       atomic.Int64 // high watermark seen with the last fetch, -1 before the first fetch

	mu   sync.Mutex
	keys map[string][]kafka.Message // messages waiting behind a busy key; present = key busy
	wg   sync.WaitGroup             // running key workers
}

func newPartition(c *Consumer, topic string, id int, start int64) *partition {
	committed := int64(-1)
	if start >= 0 {
		committed = start
	}
	p := &partition{c: c, topic: topic, id: id, start: start, offsets: newTracker(committed), keys: make(map[string][]kafka.Message)}
	p.committed.Store(committed)
	p.fetchNext.Store(-1)
	p.hwm.Store(-1)
	return p
}

// run fetches until gctx ends, then drains: in-flight work gets DrainTimeout to finish before
// its context (derived from work) is cancelled.
func (p *partition) run(gctx, work context.Context) {
	c := p.c
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        c.cfg.Brokers,
		Topic:          p.topic,
		Partition:      p.id,
		Dialer:         c.cfg.Dialer,
		MinBytes:       c.cfg.MinBytes,
		MaxBytes:       c.cfg.MaxBytes,
		MaxWait:        c.cfg.MaxWait,
		QueueCapacity:  min(c.cfg.MaxInFlight, 1000),
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		ErrorLogger:    kafka.LoggerFunc(func(f string, a ...any) { c.log.Debug(fmt.Sprintf(f, a...), "component", "kafka") }),
	})
	if err := r.SetOffset(p.start); err != nil {
		c.log.Error("set offset", "topic", p.topic, "partition", p.id, "offset", p.start, "err", err)
	}
	wctx, cancelWork := context.WithCancel(work)
	defer cancelWork()

	retry := newRetryBackoff()
	for {
		m, err := r.FetchMessage(gctx)
		if err != nil {
			if gctx.Err() != nil {
				break
			}
			c.log.Warn("fetch", "topic", p.topic, "partition", p.id, "err", err)
			if !sleep(gctx, retry.NextBackOff()) {
				break
			}
			continue
		}
		retry.Reset()
		// Take the slot only with a message in hand: an idle partition waiting in FetchMessage
		// must not hold one, or max_in_flight idle partitions would stall the worker. A message
		// dropped here because the generation ended was never tracked, so it is not committed.
		if err := c.acquire(gctx); err != nil {
			break
		}
		p.offsets.fetched(m.Offset)
		p.fetchNext.Store(m.Offset + 1)
		p.hwm.Store(m.HighWaterMark)
		c.m.consumed.Add(context.Background(), 1, c.m.topicAttrs(p.topic))
		p.dispatch(wctx, m)
	}
	_ = r.Close()

	// Revoked or stopping: let in-flight work finish within the bound, then abandon the rest.
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.DrainTimeout):
		c.log.Warn("drain timed out; abandoning unfinished messages uncommitted", "topic", p.topic, "partition", p.id, "unfinished", p.offsets.outstanding())
		cancelWork()
		<-done
	}
}

// dispatch runs m now, or queues it behind the running message of its key.
func (p *partition) dispatch(ctx context.Context, m kafka.Message) {
	if len(m.Key) == 0 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(ctx, m)
		}()
		return
	}
	key := string(m.Key)
	p.mu.Lock()
	if q, busy := p.keys[key]; busy {
		p.keys[key] = append(q, m)
		p.mu.Unlock()
		return
	}
	p.keys[key] = nil
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.runKey(ctx, key, m)
	}()
}

// runKey handles m and then every message queued behind its key, in offset order. Once a message
// is abandoned (ctx cancelled), the ones behind it are dropped unfinished too: running them would
// break the key's order.
func (p *partition) runKey(ctx context.Context, key string, m kafka.Message) {
	ok := true
	for {
		if ok {
			ok = p.handle(ctx, m)
		} else {
			p.c.release()
		}
		p.mu.Lock()
		q := p.keys[key]
		if len(q) == 0 {
			delete(p.keys, key)
			p.mu.Unlock()
			return
		}
		m = q[0]
		q[0] = kafka.Message{}
		p.keys[key] = q[1:]
		p.mu.Unlock()
	}
}

// handle processes m, publishes what the processor returned and marks m finished. It returns
// false when ctx ended first; m then stays unfinished. It releases the in-flight slot that the
// fetch loop took for m.
func (p *partition) handle(ctx context.Context, m kafka.Message) bool {
	c := p.c
	s := &slot{c: c, held: true}
	defer s.release()
	start := time.Now()
	ctx = c.cfg.Propagator.Extract(ctx, HeaderCarrier{Headers: &m.Headers})
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.name", "process"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", m.Topic),
		attribute.String("messaging.destination.partition.id", strconv.Itoa(m.Partition)),
		attribute.Int64("messaging.kafka.offset", m.Offset),
		attribute.String("messaging.consumer.group.name", c.cfg.GroupID),
	}
	if len(m.Key) > 0 {
		attrs = append(attrs, attribute.String("messaging.kafka.message.key", c.cfg.RedactKey(string(m.Key))))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	if up := trace.SpanContextFromContext(ctx); up.IsValid() {
		// Parent on the upstream span for one end-to-end trace, and link it as the messaging
		// conventions recommend for consumers.
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: up}))
	}
	ctx, span := c.tracer.Start(ctx, "process "+m.Topic, opts...)
	defer span.End()

	outs, ok := p.process(ctx, m, s, span)
	if ok {
		ok = p.publish(ctx, outs)
	}
	errType := ""
	if !ok {
		errType = "abandoned"
		span.SetStatus(codes.Error, "abandoned unfinished: "+context.Cause(ctx).Error())
		span.SetAttributes(attribute.String("error.type", errType))
	} else {
		p.offsets.finish(m.Offset)
	}
	c.m.recordProcess(m.Topic, time.Since(start), errType)
	return ok
}

// process calls the processor until it succeeds or ctx ends, backing off on errors.
func (p *partition) process(ctx context.Context, m kafka.Message, s *slot, span trace.Span) ([]kafka.Message, bool) {
	c := p.c
	retry := newRetryBackoff()
	for attempt := 1; ; attempt++ {
		outs, err := p.safeProcess(ctx, m)
		if err == nil {
			return outs, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		var d *deferError
		if errors.As(err, &d) {
			span.AddEvent("deferred", trace.WithAttributes(attribute.String("ordersync.defer", d.after.String()), attribute.String("error", d.err.Error())))
			c.log.InfoContext(ctx, "message deferred", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "for", d.after, "reason", d.err)
			// Give the slot back while waiting so other keys keep flowing.
			s.release()
			if !sleep(ctx, d.after) || s.acquire(ctx) != nil {
				return nil, false
			}
			continue
		}
		wait := retry.NextBackOff()
		c.m.processRetries.Add(context.Background(), 1, c.m.topicAttrs(m.Topic))
		span.AddEvent("retry", trace.WithAttributes(attribute.Int("ordersync.attempt", attempt), attribute.String("error", err.Error())))
		c.log.WarnContext(ctx, "process failed; retrying", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "attempt", attempt, "in", wait, "err", err)
		if !sleep(ctx, wait) {
			return nil, false
		}
	}
}

// safeProcess turns a processor panic into an error.
func (p *partition) safeProcess(ctx context.Context, m kafka.Message) (outs []kafka.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("processor panic: %v", r)
		}
	}()
	return p.c.proc.Process(ctx, m)
}

// publish writes outs, each under its own "send <topic>" span whose context is injected into the
// record, retrying failed records until all are acknowledged or ctx ends.
func (p *partition) publish(ctx context.Context, outs []kafka.Message) bool {
	if len(outs) == 0 {
		return true
	}
	c := p.c
	spans := make([]trace.Span, len(outs))
	for i := range outs {
		sctx, span := c.tracer.Start(ctx, "send "+outs[i].Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.name", "send"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", outs[i].Topic),
			attribute.String("messaging.kafka.message.key", c.cfg.RedactKey(string(outs[i].Key))),
		))
		c.cfg.Propagator.Inject(sctx, HeaderCarrier{Headers: &outs[i].Headers})
		spans[i] = span
	}
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()

	pending := outs
	pendingSpans := spans
	retry := newRetryBackoff()
	for attempt := 1; ; attempt++ {
		err := c.cfg.Writer.WriteMessages(ctx, pending...)
		if err == nil {
			for _, o := range outs {
				c.m.sent.Add(context.Background(), 1, c.m.topicAttrs(o.Topic))
			}
			return true
		}
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			var again []kafka.Message
			var againSpans []trace.Span
			for i, e := range werrs {
				if e != nil {
					again = append(again, pending[i])
					againSpans = append(againSpans, pendingSpans[i])
				}
			}
			pending, pendingSpans = again, againSpans
		}
		for _, s := range pendingSpans {
			s.AddEvent("retry", trace.WithAttributes(attribute.Int("ordersync.attempt", attempt), attribute.String("error", err.Error())))
		}
		if ctx.Err() != nil {
			for _, s := range pendingSpans {
				s.SetStatus(codes.Error, err.Error())
				s.SetAttributes(attribute.String("error.type", "publish"))
			}
			return false
		}
		wait := retry.NextBackOff()
		c.m.publishRetries.Add(context.Background(), 1)
		c.log.WarnContext(ctx, "publish failed; retrying", "records", len(pending), "attempt", attempt, "in", wait, "err", err)
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// newRetryBackoff is the policy for dependency outages: quick first retries, capped at 5s, never
// giving up on its own (the caller's context decides).
func newRetryBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.Multiplier = 2
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// sleep waits d or until ctx ends; it reports whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// slot is the in-flight slot of one message, which it may give back while deferred.
type slot struct {
	c    *Consumer
	held bool
}

func (s *slot) release() {
	if s.held {
		s.c.release()
		s.held = false
	}
}

func (s *slot) acquire(ctx context.Context) error {
	if s.held {
		return nil
	}
	if err := s.c.acquire(ctx); err != nil {
		return err
	}
	s.held = true
	return nil
}
