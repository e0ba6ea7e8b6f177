package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// partition is one assigned partition during one generation: its fetch loop, its key queues
// and its offset tracker.
type partition struct {
	c        *Consumer
	topic    string
	spanName string // "process <topic>"
	id       int
	start    int64 // offset to start fetching at (absolute, or kafka.FirstOffset/LastOffset)
	offsets  *tracker
	work     context.Context // the context of processing; cancelled when the drain runs out of time

	committed atomic.Int64 // last committed offset, -1 when none
	fetchNext atomic.Int64 // one past the last fetched offset, -1 before the first fetch
	hwm       atomic.Int64 // high watermark as the broker last reported it, -1 before

	mu     sync.Mutex
	keys   map[string][]*task // messages waiting behind a running message of the key; present = key busy
	rewind int64              // lowest offset dropped since the fetch loop last looked; -1 when none
	wg     sync.WaitGroup     // running tasks
}

// task is one fetched message on its way to finished. It holds an in-flight slot from fetch
// until it is finished, dropped (its topic paused: it will be fetched again) or abandoned (the
// partition was revoked before it finished).
type task struct {
	p       *partition
	msg     kafka.Message
	key     string
	keyed   bool
	fetched time.Time
	tk      ticket // what the gates admitted it under

	ctx   context.Context // carries the "process" span; nil until first handled
	span  trace.Span
	res   *Result // processed, waiting to be published
	out   *outbox // records of res not yet acknowledged
	retry *backoff.ExponentialBackOff
	// unwritable counts publish attempts that met a topic that cannot be written.
	unwritable int
}

func newPartition(c *Consumer, topic string, id int, start int64) *partition {
	committed := int64(-1)
	if start >= 0 {
		committed = start
	}
	p := &partition{c: c, topic: topic, spanName: "process " + topic, id: id, start: start, offsets: newTracker(), keys: make(map[string][]*task), rewind: -1}
	p.committed.Store(committed)
	p.fetchNext.Store(-1)
	p.hwm.Store(-1)
	return p
}

// run fetches until gctx ends, then drains: running tasks get DrainTimeout to finish before
// their context (derived from work) is cancelled; queued ones are abandoned.
func (p *partition) run(gctx, work context.Context) {
	wctx, cancelWork := context.WithCancel(work)
	defer cancelWork()
	p.work = wctx
	p.fetchLoop(gctx)
	p.drain(cancelWork)
}

// fetchLoop feeds the partition's messages to tasks. A message is fetched only when the gates
// admit one more of the topic and an in-flight slot is free, and a record is decoded only after
// its slot is taken, so fetched but unfinished messages never exceed MaxInFlight. A response
// waiting for slots holds at most MaxBytes; one that meets a pause is dropped and fetched again.
func (p *partition) fetchLoop(gctx context.Context) {
	c := p.c
	start, err := p.resolveStart(gctx)
	if err != nil {
		return
	}
	f := newFetcher(c.cfg.Transport, c.addr, p.topic, p.id, start)
	retry := newRetryBackoff()
	buffered := false // f holds an unread response
	for {
		if at := p.takeRewind(); at >= 0 && at < f.next {
			f.seek(at)
			buffered = false
		}
		if ok, changed := c.gates.fetchable(p.topic); !ok {
			// Hold no records through a pause: fetch them again afterwards.
			f.drop()
			buffered = false
			if !awaitChange(gctx, changed) {
				return
			}
			continue
		}
		if !buffered {
			if !c.waitSlot(gctx) {
				return
			}
			// Ask for about as many records as there are free slots: fetch-ahead stays near the
			// in-flight bound.
			room := cap(c.slots) - len(c.slots)
			hwm, err := f.fetch(gctx, c.cfg.MinBytes, f.fetchBytes(room, c.cfg.MaxBytes), c.cfg.MaxWait)
			if err != nil {
				if gctx.Err() != nil {
					return
				}
				if errors.Is(err, kafka.OffsetOutOfRange) {
					if next, rerr := p.resetOffset(gctx, f.next); rerr == nil {
						f.seek(next)
						continue
					}
				}
				wait := retry.NextBackOff()
				c.log.Warn("fetch", "topic", p.topic, "partition", p.id, "offset", f.next, "in", wait, "err", err)
				if !sleep(gctx, wait) {
					return
				}
				continue
			}
			retry.Reset()
			p.hwm.Store(hwm)
			if !f.buffered() {
				continue // nothing new within MaxWait
			}
			buffered = true
		}
		// A record in hand: may it go now? (no gate; or as the probe; or within a ramp)
		tk, a, changed := c.gates.admit(p.topic)
		if a != admitted {
			if a == paused {
				f.drop()
				buffered = false
			}
			if !awaitChange(gctx, changed) {
				return
			}
			continue
		}
		if err := c.acquire(gctx); err != nil {
			c.gates.unadmit(tk)
			return
		}
		m, err := f.nextMessage()
		if err != nil {
			c.release()
			c.gates.unadmit(tk)
			buffered = false
			if !errors.Is(err, io.EOF) {
				c.log.Warn("fetch", "topic", p.topic, "partition", p.id, "err", err)
			}
			continue
		}
		if !p.offsets.fetched(m.Offset) {
			// Fetched again after a rewind, but this one was never dropped.
			c.release()
			c.gates.unadmit(tk)
			continue
		}
		if m.Offset+1 > p.fetchNext.Load() {
			p.fetchNext.Store(m.Offset + 1)
		}
		c.m.consumed.Add(context.Background(), 1, c.m.topicAttrs(p.topic))
		t := &task{p: p, msg: m, key: string(m.Key), keyed: len(m.Key) > 0, fetched: time.Now(), tk: tk}
		c.gates.claim(t)
		p.dispatch(t)
	}
}

// takeRewind returns the lowest offset dropped since the last call, or -1.
func (p *partition) takeRewind() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := p.rewind
	p.rewind = -1
	return at
}

// resolveStart turns a FirstOffset/LastOffset start into an absolute offset.
func (p *partition) resolveStart(gctx context.Context) (int64, error) {
	if p.start >= 0 {
		return p.start, nil
	}
	retry := newRetryBackoff()
	for {
		offs, err := listOffsets(gctx, p.c.cfg.Transport, p.c.addr, map[string][]kafka.OffsetRequest{p.topic: {{Partition: p.id, Timestamp: p.start}}})
		if err == nil {
			po := offs[p.topic][p.id]
			if po.Error == nil {
				if p.start == kafka.FirstOffset {
					return po.FirstOffset, nil
				}
				return po.LastOffset, nil
			}
			err = po.Error
		}
		if gctx.Err() != nil {
			return 0, gctx.Err()
		}
		wait := retry.NextBackOff()
		p.c.log.Warn("list offsets", "topic", p.topic, "partition", p.id, "in", wait, "err", err)
		if !sleep(gctx, wait) {
			return 0, gctx.Err()
		}
	}
}

// resetOffset picks where to go on when offset is no longer (or not yet) in the log: the log
// start when retention deleted it (the skipped messages are lost, loudly), else the start policy.
func (p *partition) resetOffset(gctx context.Context, offset int64) (int64, error) {
	offs, err := listOffsets(gctx, p.c.cfg.Transport, p.c.addr, map[string][]kafka.OffsetRequest{
		p.topic: {kafka.FirstOffsetOf(p.id), kafka.LastOffsetOf(p.id)}})
	if err != nil {
		return 0, err
	}
	po := offs[p.topic][p.id]
	if po.Error != nil {
		return 0, po.Error
	}
	switch {
	case offset < po.FirstOffset:
		p.c.log.Error("offset deleted before it was consumed; skipping to the log start", "topic", p.topic, "partition", p.id,
			"offset", offset, "log_start", po.FirstOffset, "skipped", po.FirstOffset-offset)
		return po.FirstOffset, nil
	case offset <= po.LastOffset:
		return offset, nil
	case p.c.cfg.StartOffset == kafka.LastOffset:
		p.c.log.Warn("offset past the end of the log; resetting to the end", "topic", p.topic, "partition", p.id, "offset", offset, "end", po.LastOffset)
		return po.LastOffset, nil
	default:
		p.c.log.Warn("offset past the end of the log; resetting to the start", "topic", p.topic, "partition", p.id, "offset", offset, "start", po.FirstOffset)
		return po.FirstOffset, nil
	}
}

// dispatch runs t now, or queues it behind the running or parked message of its key.
func (p *partition) dispatch(t *task) {
	p.mu.Lock()
	if t.keyed {
		if q, busy := p.keys[t.key]; busy {
			p.keys[t.key] = append(q, t)
			p.mu.Unlock()
			return
		}
		p.keys[t.key] = nil
	}
	p.wg.Add(1)
	p.mu.Unlock()
	p.c.pool.run(func() { p.runTasks(t) })
}

type status int

const (
	finished status = iota
	dropped
	abandoned
)

// runTasks handles t and then every message queued behind its key, in offset order, until one
// is dropped (its topic paused) or abandoned (the drain ran out of time); the messages queued
// behind it then go the same way, since running them would break the key's order.
func (p *partition) runTasks(t *task) {
	defer p.wg.Done()
	for t != nil {
		switch p.handle(t) {
		case finished:
			t = p.next(t)
		case dropped:
			p.drop(t)
			for _, f := range p.takeQueue(t) {
				p.drop(f)
			}
			return
		case abandoned:
			p.abandon(t, "abandoned unfinished: "+context.Cause(p.work).Error())
			for _, f := range p.takeQueue(t) {
				p.abandon(f, "abandoned behind its key")
			}
			return
		}
	}
}

// next returns the message queued behind t's key, or nil (the key is then free).
func (p *partition) next(t *task) *task {
	if !t.keyed {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.keys[t.key]
	if len(q) == 0 {
		delete(p.keys, t.key)
		return nil
	}
	n := q[0]
	q[0] = nil
	p.keys[t.key] = q[1:]
	return n
}

// takeQueue frees t's key and returns the messages that were queued behind it.
func (p *partition) takeQueue(t *task) []*task {
	if !t.keyed {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.keys[t.key]
	delete(p.keys, t.key)
	return q
}

// handle takes t as far as it can: processed, published and finished; or dropped because its
// topic paused; or abandoned because the drain ran out of time.
func (p *partition) handle(t *task) status {
	c := p.c
	if t.ctx == nil {
		p.startSpan(t)
	}
	for {
		if t.ctx.Err() != nil {
			return abandoned
		}
		if t.res == nil {
			if c.gates.blocked(t) {
				return dropped
			}
			res, err := p.process(t)
			var pause *Pause
			switch {
			case err == nil:
				c.gates.passed(t)
				t.res = &res
			case errors.As(err, &pause):
				t.span.AddEvent("intake paused", trace.WithAttributes(
					attribute.String("ordersync.pause.reason", pause.Reason), attribute.String("error", pause.Error())))
				c.gates.pause(pause, t)
				return dropped
			default:
				if t.ctx.Err() != nil {
					return abandoned
				}
				// A transient failure is not the paused condition: a probe is through.
				c.gates.passed(t)
				if !p.backoff(t, "process", err) {
					return abandoned
				}
				continue
			}
		}
		err := c.publish(t)
		if err == nil {
			c.gates.published()
			p.finish(t)
			return finished
		}
		if t.ctx.Err() != nil {
			return abandoned
		}
		// A processed message is never dropped: its outcome may not be stored anywhere else (an
		// ambiguous call must not be made again). It waits for the topic to take it.
		var pause *Pause
		if errors.As(err, &pause) {
			c.gates.pause(pause, t)
		}
		if !p.backoff(t, "publish", err) {
			return abandoned
		}
	}
}

// backoff waits before t's next attempt after err; false when the wait was cut short.
func (p *partition) backoff(t *task, what string, err error) bool {
	if t.retry == nil {
		t.retry = newRetryBackoff()
	}
	wait := t.retry.NextBackOff()
	c := p.c
	var pause *Pause
	if errors.As(err, &pause) {
		// A topic that cannot be written: no hot loop, waits like probes.
		wait = min(c.cfg.ProbeInterval<<min(t.unwritable, 8), c.cfg.MaxProbeInterval)
		t.unwritable++
	}
	if what == "publish" {
		c.m.publishRetries.Add(context.Background(), 1)
	} else {
		c.m.processRetries.Add(context.Background(), 1, c.m.topicAttrs(p.topic))
	}
	t.span.AddEvent("retry", trace.WithAttributes(attribute.String("ordersync.retry.of", what), attribute.String("error", err.Error())))
	c.log.WarnContext(t.ctx, what+" failed; retrying", "topic", p.topic, "partition", p.id, "offset", t.msg.Offset, "in", wait, "err", err)
	return sleep(t.ctx, wait)
}

// startSpan starts t's "process" span, continuing the trace of the message's headers.
func (p *partition) startSpan(t *task) {
	c := p.c
	m := &t.msg
	ctx := c.cfg.Propagator.Extract(p.work, HeaderCarrier{Headers: &m.Headers})
	t.ctx, t.span = c.tracer.Start(ctx, p.spanName, trace.WithSpanKind(trace.SpanKindConsumer))
	if !t.span.IsRecording() {
		return // no exporter: the span carries ids only, its attributes would be dropped
	}
	if up := trace.SpanContextFromContext(ctx); up.IsValid() {
		// Parent on the upstream span for one end-to-end trace, and link it as the messaging
		// conventions recommend for consumers.
		t.span.AddLink(trace.Link{SpanContext: up})
	}
	t.span.SetAttributes(
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.name", "process"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", m.Topic),
		attribute.String("messaging.destination.partition.id", strconv.Itoa(m.Partition)),
		attribute.Int64("messaging.kafka.offset", m.Offset),
		attribute.String("messaging.consumer.group.name", c.cfg.GroupID),
	)
	if len(m.Key) > 0 {
		t.span.SetAttributes(attribute.String("messaging.kafka.message.key", c.cfg.RedactKey(string(m.Key))))
	}
}

// process calls the processor, turning a panic into an error.
func (p *partition) process(t *task) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("processor panic: %v", r)
		}
	}()
	return p.c.proc.Process(t.ctx, t.msg)
}

// finish marks t done: its offset may be committed, its slot is free.
func (p *partition) finish(t *task) {
	p.offsets.finish(t.msg.Offset)
	p.c.m.recordProcess(p.topic, time.Since(t.fetched), "")
	t.span.End()
	p.c.gates.done(t)
	p.c.release()
}

// drop gives t back because its topic paused: its slot is freed, its offset stays uncommitted
// and the partition fetches it again (with everything after it that was dropped) once the pause
// is over. Nothing of it stays in memory meanwhile.
func (p *partition) drop(t *task) {
	if t.span != nil {
		t.span.SetAttributes(attribute.String("ordersync.outcome", "paused"))
		t.span.End()
	}
	p.offsets.drop(t.msg.Offset)
	p.mu.Lock()
	if p.rewind < 0 || t.msg.Offset < p.rewind {
		p.rewind = t.msg.Offset
	}
	p.mu.Unlock()
	p.c.m.recordProcess(p.topic, time.Since(t.fetched), "paused")
	p.c.gates.done(t)
	p.c.release()
}

// abandon gives t up unfinished: its offset stays uncommitted and goes to the next owner.
func (p *partition) abandon(t *task, why string) {
	t.out.endUnsent(why)
	if t.span != nil {
		t.span.SetStatus(codes.Error, why)
		t.span.SetAttributes(attribute.String("error.type", "abandoned"))
		t.span.End()
	}
	p.c.m.recordProcess(p.topic, time.Since(t.fetched), "abandoned")
	p.c.gates.done(t)
	p.c.release()
}

// drain runs when the partition is revoked or the consumer stops: running messages get
// DrainTimeout, then their context is cancelled; whatever is left queued is abandoned.
func (p *partition) drain(cancelWork context.CancelFunc) {
	c := p.c
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.DrainTimeout):
		c.log.Warn("drain timed out; abandoning unfinished messages uncommitted", "topic", p.topic, "partition", p.id, "unfinished", p.offsets.outstanding())
		cancelWork()
		<-done
	}

	p.mu.Lock()
	var left []*task
	for _, q := range p.keys {
		left = append(left, q...)
	}
	clear(p.keys)
	p.mu.Unlock()
	for _, t := range left {
		p.abandon(t, "revoked behind its key")
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

// awaitChange waits for changed to be closed (a gate's state changed); false if ctx ended first.
func awaitChange(ctx context.Context, changed <-chan struct{}) bool {
	select {
	case <-changed:
		return true
	case <-ctx.Done():
		return false
	}
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
