package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/topapi"
)

// Deduper is the idempotency store the pipeline claims keys in (a *dedupe.Store).
type Deduper interface {
	Claim(ctx context.Context, key dedupe.Key, fingerprint, owner string, lease time.Duration) (dedupe.Claim, error)
	Renew(ctx context.Context, key dedupe.Key, owner string, token int64, lease time.Duration) error
	Complete(ctx context.Context, key dedupe.Key, owner string, token int64, outcome []byte, retention time.Duration) error
	Release(ctx context.Context, key dedupe.Key, owner string, token int64) error
}

// Caller calls the TOP gateway (a *topapi.Client).
type Caller interface {
	Call(ctx context.Context, req topapi.Request) (topapi.Response, error)
}

var (
	_ Deduper            = (*dedupe.Store)(nil)
	_ Caller             = (*topapi.Client)(nil)
	_ consumer.Processor = (*Pipeline)(nil)
)

// Headers set on outcome and dead-letter records (DESIGN.md §4).
const (
	HeaderChannel         = "ordersync-channel"
	HeaderError           = "ordersync-error"
	HeaderSourceTopic     = "ordersync-source-topic"
	HeaderSourcePartition = "ordersync-source-partition"
	HeaderSourceOffset    = "ordersync-source-offset"
)

// Retry is the gateway retry policy for transient errors (DESIGN.md §7).
type Retry struct {
	InitialInterval     time.Duration // default 200ms
	Multiplier          float64       // default 2
	MaxInterval         time.Duration // default 30s
	RandomizationFactor float64       // default 0.5; negative means none
	MaxElapsedTime      time.Duration // default 5m
}

// PipelineConfig configures a [Pipeline]. Registry, Dedupe, Caller, ResultsTopic and DLQTopic
// are required; zero values of the rest take the documented defaults.
type PipelineConfig struct {
	Registry *Registry
	Dedupe   Deduper
	// Caller calls the gateway; Callers overrides it per channel id (a channel with its own
	// gateway URL).
	Caller  Caller
	Callers map[string]Caller
	// Sessions maps seller → session key for channels that need one; DefaultSeller is used when
	// an event names no seller. Session keys are secrets and never leave the gateway call.
	Sessions      map[string]string
	DefaultSeller string

	ResultsTopic string
	DLQTopic     string

	// Owner prefixes the dedupe owner of every claim; it should name the process (pod, pid).
	// A sequence number makes each claim attempt's owner unique. Default "ordersync-<pid>".
	Owner string
	// Lease is the dedupe claim lease, renewed every Lease/3 while the gateway is retried.
	// Default 30s.
	Lease time.Duration
	// Retention is how long completed outcomes are kept for replay. Default 7 days.
	Retention time.Duration
	// MaxMessageBytes bounds an event's value. Default DefaultMaxBytes (1 MiB).
	MaxMessageBytes int
	Retry           Retry
	// InProgressPoll is how often a key that another worker holds is checked. Default 250ms.
	InProgressPoll time.Duration

	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Now            func() time.Time
}

// Pipeline processes one consumed event: decode and validate it, claim its idempotency key,
// call the TOP API with retry, store the outcome, and return the outcome record (plus a dead
// letter where DESIGN.md §4 asks for one) for the consumer to publish. It is safe for concurrent
// use and implements consumer.Processor.
type Pipeline struct {
	cfg    PipelineConfig
	log    *slog.Logger
	tracer trace.Tracer
	m      pipelineMetrics
	seq    atomic.Uint64
}

// NewPipeline validates cfg and returns a pipeline.
func NewPipeline(cfg PipelineConfig) (*Pipeline, error) {
	switch {
	case cfg.Registry == nil:
		return nil, errors.New("pipeline: nil registry")
	case cfg.Dedupe == nil:
		return nil, errors.New("pipeline: nil deduper")
	case cfg.Caller == nil:
		return nil, errors.New("pipeline: nil caller")
	case cfg.ResultsTopic == "" || cfg.DLQTopic == "":
		return nil, errors.New("pipeline: results and dlq topics are required")
	}
	if cfg.Owner == "" {
		cfg.Owner = "ordersync-" + strconv.Itoa(pid())
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = dedupe.DefaultRetention
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxBytes
	}
	r := &cfg.Retry
	if r.InitialInterval <= 0 {
		r.InitialInterval = 200 * time.Millisecond
	}
	if r.Multiplier < 1 {
		r.Multiplier = 2
	}
	if r.MaxInterval <= 0 {
		r.MaxInterval = 30 * time.Second
	}
	if r.RandomizationFactor == 0 {
		r.RandomizationFactor = 0.5
	} else if r.RandomizationFactor < 0 {
		r.RandomizationFactor = 0
	}
	if r.MaxElapsedTime <= 0 {
		r.MaxElapsedTime = 5 * time.Minute
	}
	if cfg.InProgressPoll <= 0 {
		cfg.InProgressPoll = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = tracenoop.NewTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = noop.NewMeterProvider()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Pipeline{
		cfg:    cfg,
		log:    cfg.Logger,
		tracer: cfg.TracerProvider.Tracer("github.com/ordersync/ordersync/pkg/dispatch"),
	}
	if err := p.m.init(cfg.MeterProvider.Meter("github.com/ordersync/ordersync/pkg/dispatch")); err != nil {
		return nil, fmt.Errorf("pipeline: metrics: %w", err)
	}
	return p, nil
}

// event is one message on its way through the pipeline.
type event struct {
	msg     kafka.Message
	ch      *Channel
	env     *Envelope
	prep    *Prepared
	outcome Outcome
	encoded []byte // outcome's JSON as stored by complete; finish publishes the same bytes
}

// Process implements consumer.Processor. It returns an error only when the event could not be
// processed now — Redis is unreachable, the claim was lost, or ctx ended — so the consumer
// retries it later; every other result, including invalid input and a panic, is an outcome.
func (p *Pipeline) Process(ctx context.Context, m kafka.Message) (outs []kafka.Message, err error) {
	ev := &event{msg: m}
	ev.outcome = Outcome{
		Source:     Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset},
		ReceivedAt: p.cfg.Now().UTC(),
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		ev.outcome.TraceID = sc.TraceID().String()
	}
	var release func()
	defer func() {
		if r := recover(); r != nil {
			if release != nil {
				release()
			}
			p.log.ErrorContext(ctx, "panic processing event", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "panic", fmt.Sprint(r))
			ev.outcome.Status = StatusFailed
			ev.outcome.Error = &ErrorInfo{Kind: KindPlatform, Code: "internal", Msg: fmt.Sprintf("panic: %v", r)}
			ev.encoded = nil
			outs, err = p.finish(ctx, ev, true), nil
		}
	}()

	dead, err := p.run(ctx, ev, &release)
	if err != nil {
		return nil, err
	}
	return p.finish(ctx, ev, dead), nil
}

// run fills ev.outcome and reports whether the event also goes to the dead-letter topic.
func (p *Pipeline) run(ctx context.Context, ev *event, release *func()) (dead bool, err error) {
	m := ev.msg
	ch, ok := p.cfg.Registry.ByTopic(m.Topic)
	if !ok {
		ev.outcome.EventID = lenientEventID(m.Value)
		return true, p.reject(ev, &ErrorInfo{Kind: KindValidation, Code: "unknown-channel", Msg: "no enabled channel consumes topic " + strconv.Quote(m.Topic)})
	}
	ev.ch = ch
	ev.outcome.Channel, ev.outcome.Method = ch.ID, ch.Method

	env, err := DecodeEnvelope(m.Value, p.cfg.MaxMessageBytes)
	if err != nil {
		ev.outcome.EventID = lenientEventID(m.Value)
		return true, p.reject(ev, ErrorFromValidation(err))
	}
	ev.env = env
	ev.outcome.EventID = env.EventID
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("messaging.message.id", env.EventID), attribute.String("ordersync.channel", ch.ID))

	prep, err := ch.Prepare(env)
	if err != nil {
		return true, p.reject(ev, ErrorFromValidation(err))
	}
	ev.prep = prep
	ev.outcome.IdempotencyKey = prep.IdempotencyKey
	if ch.NeedsSession {
		seller := env.Seller
		if seller == "" {
			seller = p.cfg.DefaultSeller
		}
		session, ok := p.cfg.Sessions[seller]
		if !ok || session == "" {
			msg := "no session key configured for seller " + strconv.Quote(seller)
			if seller == "" {
				msg = "event names no seller and top.default_seller is not set"
			}
			return true, p.reject(ev, &ErrorInfo{Kind: KindAuth, Code: "missing-session", Msg: msg})
		}
		prep.Request.Session = session
	}
	return p.deliver(ctx, ev, release)
}

// reject marks ev rejected with e; rejected events never claim. It returns nil, the error of a
// processed event, for its callers to return.
func (p *Pipeline) reject(ev *event, e *ErrorInfo) error {
	ev.outcome.Status = StatusRejected
	ev.outcome.Error = e
	return nil
}

// deliver claims the key and calls the gateway, or replays the stored outcome.
func (p *Pipeline) deliver(ctx context.Context, ev *event, release *func()) (dead bool, err error) {
	key := dedupe.Key{Channel: ev.ch.ID, ID: ev.prep.IdempotencyKey}
	owner := p.cfg.Owner + ":" + strconv.FormatUint(p.seq.Add(1), 10)

	claim, err := p.claim(ctx, key, ev.prep.Fingerprint, owner)
	if err != nil {
		return false, err
	}
	switch claim.State {
	case dedupe.Done:
		p.m.dedupe(ctx, "duplicate")
		return false, p.replay(ev, claim.Outcome)
	case dedupe.Conflict:
		p.m.dedupe(ctx, "conflict")
		return true, p.reject(ev, &ErrorInfo{Kind: KindConflict, Code: "conflict",
			Msg: "idempotency key " + strconv.Quote(key.ID) + " was used before with a different request"})
	}
	p.m.dedupe(ctx, "claimed")
	token := claim.Token
	*release = func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := p.cfg.Dedupe.Release(rctx, key, owner, token); err != nil {
			p.log.WarnContext(ctx, "release claim", "key", key.String(), "err", err)
		}
	}

	dead, err = p.call(ctx, ev, key, owner, token)
	if err != nil {
		(*release)()
		return false, err
	}
	if ev.outcome.Error != nil && ev.outcome.Error.Kind == KindExhausted {
		// Transient give-up: release, so a replay from the DLQ can try again (DESIGN.md §6).
		(*release)()
		*release = nil
		return dead, nil
	}
	*release = nil
	return dead, p.complete(ctx, key, owner, token, ev)
}

// claim claims key, waiting while another worker holds it. A Redis failure is returned: the
// consumer retries later (fail closed).
func (p *Pipeline) claim(ctx context.Context, key dedupe.Key, fingerprint, owner string) (dedupe.Claim, error) {
	ctx, span := p.tracer.Start(ctx, "dedupe claim", trace.WithAttributes(attribute.String("ordersync.channel", key.Channel)))
	defer span.End()
	waited := false
	for {
		c, err := p.cfg.Dedupe.Claim(ctx, key, fingerprint, owner, p.cfg.Lease)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
			span.SetAttributes(attribute.String("error.type", "redis"))
			return c, fmt.Errorf("claim %s: %w", key, err)
		}
		span.SetAttributes(attribute.String("ordersync.dedupe.result", c.State.String()))
		if c.State != dedupe.InProgress {
			return c, nil
		}
		if !waited {
			p.m.dedupe(ctx, "in_progress")
			span.AddEvent("in progress elsewhere; waiting", trace.WithAttributes(attribute.String("ordersync.dedupe.owner", c.Owner)))
			waited = true
		}
		wait := p.cfg.InProgressPoll
		if d := time.Until(c.LeaseExpires); d > 0 && d < wait {
			wait = d + time.Millisecond
		}
		if err := sleep(ctx, wait); err != nil {
			return c, fmt.Errorf("claim %s: waiting for owner %s: %w", key, c.Owner, err)
		}
	}
}

// call calls the gateway until it answers for good, retrying transient errors with exponential
// backoff and renewing the lease meanwhile. It fills ev.outcome and reports whether the event
// goes to the DLQ. It returns an error when the event must be retried later as a whole: the lease
// was lost, ctx ended, or the platform banned the app key for longer than the client waits.
func (p *Pipeline) call(ctx context.Context, ev *event, key dedupe.Key, owner string, token int64) (dead bool, err error) {
	lost, stopRenew := p.renew(ctx, key, owner, token)
	defer stopRenew()

	caller := p.cfg.Caller
	if c, ok := p.cfg.Callers[ev.ch.ID]; ok {
		caller = c
	}
	r := p.cfg.Retry
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     r.InitialInterval,
		RandomizationFactor: r.RandomizationFactor,
		Multiplier:          r.Multiplier,
		MaxInterval:         r.MaxInterval,
		MaxElapsedTime:      r.MaxElapsedTime,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	bo.Reset()
	method := ev.ch.Method
	for attempt := 1; ; attempt++ {
		select {
		case <-lost:
			return false, fmt.Errorf("call %s: %s: %w", method, key, dedupe.ErrLeaseLost)
		default:
		}
		ev.outcome.Attempts = attempt
		resp, err := p.attempt(ctx, caller, ev.prep.Request, attempt)
		if err == nil {
			ev.outcome.RequestID = resp.RequestID
			ev.outcome.Response = resp.Body
			ev.outcome.Status, ev.outcome.Error = ev.ch.Interpret(resp)
			return false, nil
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("call %s: %w", method, ctx.Err())
		}
		var te *topapi.Error
		isTop := errors.As(err, &te)
		if isTop {
			ev.outcome.RequestID = te.RequestID
		}
		if errors.Is(err, topapi.ErrLongBan) {
			p.m.ban(ctx, method)
			// Park the event without holding an in-flight slot; the claim is released by the
			// caller so nothing waits on a lease meanwhile.
			return false, consumer.Defer(te.RetryAfter(), err)
		}
		if !isTop || !te.Retryable() {
			ev.outcome.Status = StatusFailed
			ev.outcome.Error = ErrorFromTOP(err)
			return false, nil
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			ev.outcome.Status = StatusFailed
			ev.outcome.Error = ErrorFromTOP(err)
			ev.outcome.Error.Kind = KindExhausted
			ev.outcome.Error.Msg = fmt.Sprintf("giving up after %d attempt(s): %s", attempt, ev.outcome.Error.Msg)
			return true, nil
		}
		if ra := te.RetryAfter(); ra > wait {
			p.m.ban(ctx, method)
			wait = ra
		}
		p.m.retry(ctx, method)
		trace.SpanFromContext(ctx).AddEvent("backoff", trace.WithAttributes(
			attribute.Int("ordersync.top.attempt", attempt),
			attribute.String("ordersync.backoff.wait", wait.String()),
			attribute.String("error", err.Error())))
		select {
		case <-time.After(wait):
		case <-lost:
			return false, fmt.Errorf("call %s: %s: %w", method, key, dedupe.ErrLeaseLost)
		case <-ctx.Done():
			return false, fmt.Errorf("call %s: %w", method, ctx.Err())
		}
	}
}

// attempt makes one gateway call under its own client span.
func (p *Pipeline) attempt(ctx context.Context, caller Caller, req topapi.Request, n int) (topapi.Response, error) {
	ctx, span := p.tracer.Start(ctx, "top "+req.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("ordersync.top.method", req.Method),
		attribute.Int("ordersync.top.attempt", n),
	))
	defer span.End()
	start := time.Now()
	resp, err := caller.Call(ctx, req)
	result := "ok"
	if err != nil {
		result = "error"
		var te *topapi.Error
		if errors.As(err, &te) {
			if te.RequestID != "" {
				span.SetAttributes(attribute.String("ordersync.top.request_id", te.RequestID))
			}
			if te.Code != 0 {
				span.SetAttributes(attribute.Int("ordersync.top.code", te.Code), attribute.String("ordersync.top.sub_code", te.SubCode))
				result = "platform_error"
			} else {
				result = "transport_error"
			}
			span.SetAttributes(attribute.Bool("ordersync.top.retryable", te.Retryable()))
		}
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attribute.String("error.type", result))
	} else {
		span.SetAttributes(attribute.String("ordersync.top.request_id", resp.RequestID))
	}
	p.m.gateway(ctx, req.Method, result, time.Since(start))
	return resp, err
}

// renew extends the lease every Lease/3 until the returned stop is called. The returned channel
// is closed if the lease is lost; the caller stops retrying, but a call already in flight is left
// to finish, since the platform may act on it whatever happens to the lease.
func (p *Pipeline) renew(ctx context.Context, key dedupe.Key, owner string, token int64) (lost <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	lostc := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(p.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				err := p.cfg.Dedupe.Renew(ctx, key, owner, token, p.cfg.Lease)
				switch {
				case errors.Is(err, dedupe.ErrLeaseLost):
					p.log.WarnContext(ctx, "lease lost", "key", key.String())
					close(lostc)
					return
				case err != nil && ctx.Err() == nil:
					// Redis hiccup: the lease still has two thirds to go; try again next tick.
					p.log.WarnContext(ctx, "renew lease", "key", key.String(), "err", err)
				}
			}
		}
	}()
	return lostc, func() { cancel(); wg.Wait() }
}

// complete stores the outcome under the claim, retrying while Redis is unreachable: the platform
// has answered, so calling it again must be avoided. If the claim is gone — Redis lost it (a
// restart without persistence) — the outcome is re-seated under a fresh claim rather than
// thrown away. It fails only if another worker holds or completed the key meanwhile, or ctx
// ended; the consumer then retries the event, which finds the key done or in progress.
func (p *Pipeline) complete(ctx context.Context, key dedupe.Key, owner string, token int64, ev *event) error {
	ev.outcome.CompletedAt = p.cfg.Now().UTC()
	body, err := json.Marshal(ev.outcome)
	if err != nil {
		return fmt.Errorf("encode outcome: %w", err)
	}
	ev.encoded = body
	ctx, span := p.tracer.Start(ctx, "dedupe complete")
	defer span.End()
	wait := 100 * time.Millisecond
	reseated := false
	for {
		err := p.cfg.Dedupe.Complete(ctx, key, owner, token, body, p.cfg.Retention)
		if err == nil {
			return nil
		}
		if errors.Is(err, dedupe.ErrLeaseLost) && !reseated {
			reseated = true
			owner = p.cfg.Owner + ":" + strconv.FormatUint(p.seq.Add(1), 10)
			c, cerr := p.cfg.Dedupe.Claim(ctx, key, ev.prep.Fingerprint, owner, p.cfg.Lease)
			if cerr == nil && c.State == dedupe.Claimed {
				p.log.WarnContext(ctx, "claim vanished after the platform answered; storing the outcome under a new claim", "key", key.String())
				span.AddEvent("outcome re-seated under a new claim")
				token = c.Token
				continue
			}
			if cerr == nil {
				err = fmt.Errorf("%w (key now %s)", err, c.State)
			}
		}
		if errors.Is(err, dedupe.ErrLeaseLost) || ctx.Err() != nil {
			span.SetStatus(codes.Error, err.Error())
			return fmt.Errorf("complete %s: %w", key, err)
		}
		p.log.WarnContext(ctx, "complete outcome; retrying", "key", key.String(), "in", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("complete %s: %w", key, err)
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// replay fills ev.outcome from the stored original: as a duplicate when another event used the
// key, or as the original itself when this very event comes again (a crash or rebalance after
// its outcome was stored but before its offset was committed), so one event never gets two
// different statuses.
func (p *Pipeline) replay(ev *event, stored []byte) error {
	var orig Outcome
	if err := json.Unmarshal(stored, &orig); err != nil {
		return fmt.Errorf("decode stored outcome of %s: %w", ev.prep.IdempotencyKey, err)
	}
	if orig.EventID == ev.outcome.EventID && orig.Source == ev.outcome.Source {
		orig.TraceID = ev.outcome.TraceID
		ev.outcome = orig
		return nil
	}
	ev.outcome.Status = StatusDuplicate
	ev.outcome.Response = orig.Response
	ev.outcome.Error = orig.Error
	ev.outcome.RequestID = orig.RequestID
	return nil
}

// finish builds the records to publish: the outcome, and the dead letter when dead.
func (p *Pipeline) finish(ctx context.Context, ev *event, dead bool) []kafka.Message {
	o := &ev.outcome
	if o.CompletedAt.IsZero() {
		o.CompletedAt = p.cfg.Now().UTC()
	}
	key := o.IdempotencyKey
	if key == "" {
		key = o.EventID
	}
	body := ev.encoded
	if body == nil {
		var err error
		if body, err = json.Marshal(o); err != nil {
			// Only an unencodable response could do this; keep the outcome without it.
			o.Response = nil
			body, _ = json.Marshal(o)
		}
	}
	outs := []kafka.Message{{
		Topic:   p.cfg.ResultsTopic,
		Key:     []byte(key),
		Value:   body,
		Headers: []kafka.Header{{Key: HeaderChannel, Value: []byte(o.Channel)}},
	}}
	if dead {
		m := ev.msg
		hs := make([]kafka.Header, 0, len(m.Headers)+4)
		hs = append(hs, m.Headers...)
		errText := ""
		if o.Error != nil {
			errText = o.Error.Msg
		}
		hs = append(hs,
			kafka.Header{Key: HeaderError, Value: []byte(errText)},
			kafka.Header{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
			kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(m.Partition))},
			kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		)
		outs = append(outs, kafka.Message{Topic: p.cfg.DLQTopic, Key: m.Key, Value: m.Value, Headers: hs})
	}

	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("ordersync.status", o.Status))
	attrs := []any{"event_id", o.EventID, "channel", o.Channel, "idempotency_key", o.IdempotencyKey, "status", o.Status,
		"attempts", o.Attempts, "topic", o.Source.Topic, "partition", o.Source.Partition, "offset", o.Source.Offset}
	if o.Error != nil {
		attrs = append(attrs, "error_kind", o.Error.Kind, "error_code", o.Error.Code, "error", o.Error.Msg)
		if o.Status != StatusDuplicate {
			span.SetStatus(codes.Error, o.Error.Msg)
			span.SetAttributes(attribute.String("error.type", o.Error.Kind))
		}
	}
	if o.RequestID != "" {
		attrs = append(attrs, "request_id", o.RequestID)
	}
	p.log.InfoContext(ctx, "outcome", attrs...)
	p.m.outcome(ctx, o.Channel, o.Status)
	return outs
}

// lenientEventID digs event_id out of a value that failed validation, for the outcome.
func lenientEventID(value []byte) string {
	if len(value) > DefaultMaxBytes {
		return ""
	}
	var v struct {
		EventID json.RawMessage `json:"event_id"`
	}
	if json.Unmarshal(value, &v) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(v.EventID, &s) != nil || len(s) > 128 {
		return ""
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
