package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
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

// HeaderChannel is set on every outcome record: the channel id.
const HeaderChannel = "ordersync-channel"

// Headers of dead letters, written by the consumer (DESIGN.md §4).
const (
	HeaderError           = consumer.HeaderError
	HeaderSourceTopic     = consumer.HeaderSourceTopic
	HeaderSourcePartition = consumer.HeaderSourcePartition
	HeaderSourceOffset    = consumer.HeaderSourceOffset
)

// Retry is the gateway retry policy for transient errors (DESIGN.md §7).
type Retry struct {
	InitialInterval     time.Duration // default 200ms
	Multiplier          float64       // default 2
	MaxInterval         time.Duration // default 30s
	RandomizationFactor float64       // default 0.5; negative means none
	MaxElapsedTime      time.Duration // default 5m
}

// Gateway is a TOP gateway the pipeline calls.
type Gateway struct {
	// Name identifies the gateway in pause scopes, logs and the circuit metric: its URL's host.
	Name string
	// Caller calls it. Required.
	Caller Caller
	// Channels lists the channel ids it serves; nil means every channel that no other gateway
	// lists. Exactly one gateway must have nil.
	Channels []string
}

// PipelineConfig configures a [Pipeline]. Registry, Dedupe, Gateways and ResultsTopic are
// required; zero values of the rest take the documented defaults.
type PipelineConfig struct {
	Registry *Registry
	Dedupe   Deduper
	Gateways []Gateway
	// AppKey is the app key every gateway calls with: a ban of it pauses every channel.
	AppKey string
	// Breaker configures each gateway's circuit breaker.
	Breaker Breaker
	// Sessions maps seller → session key for channels that need one; DefaultSeller is used when
	// an event names no seller. Session keys are secrets and never leave the gateway call.
	Sessions      *Sessions
	DefaultSeller string

	ResultsTopic string

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
	// MaxRecordBytes bounds an outcome record (consumer.RecordSize): a response that would not
	// fit is cut (Outcome.ResponseTruncated), in the stored outcome too. Default 1 MiB.
	MaxRecordBytes int
	Retry          Retry
	// InProgressPoll is how often a key that another worker holds is checked. Default 250ms.
	InProgressPoll time.Duration
	// StoreTimeout bounds storing the outcome of a call the platform answered. It runs on a
	// context of its own, so an answer that arrived is stored even when the event's context was
	// cancelled meanwhile (a drain that ran out of time). Default 10s.
	StoreTimeout time.Duration

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
	routes map[string]*route // by channel id
	all    []string          // every enabled channel's topic
}

// route is how a channel reaches its gateway.
type route struct {
	gateway string
	caller  Caller
	breaker *breaker
	topics  []string // the topics of every channel on this gateway
}

// NewPipeline validates cfg and returns a pipeline.
func NewPipeline(cfg PipelineConfig) (*Pipeline, error) {
	switch {
	case cfg.Registry == nil:
		return nil, errors.New("pipeline: nil registry")
	case cfg.Dedupe == nil:
		return nil, errors.New("pipeline: nil deduper")
	case len(cfg.Gateways) == 0:
		return nil, errors.New("pipeline: no gateway")
	case cfg.ResultsTopic == "":
		return nil, errors.New("pipeline: results topic is required")
	}
	if cfg.Owner == "" {
		cfg.Owner = "ordersync-" + strconv.Itoa(pid())
	}
	if cfg.Sessions == nil {
		cfg.Sessions = new(Sessions)
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
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = 1 << 20
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
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 10 * time.Second
	}
	cfg.Breaker.setDefaults()
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
		routes: make(map[string]*route),
		all:    cfg.Registry.Topics(),
	}
	if err := p.route(); err != nil {
		return nil, err
	}
	if err := p.m.init(cfg.MeterProvider.Meter("github.com/ordersync/ordersync/pkg/dispatch"), p.breakers()); err != nil {
		return nil, fmt.Errorf("pipeline: metrics: %w", err)
	}
	return p, nil
}

// route maps every enabled channel to its gateway.
func (p *Pipeline) route() error {
	var fallback *route
	for _, gw := range p.cfg.Gateways {
		if gw.Caller == nil {
			return fmt.Errorf("pipeline: gateway %q without caller", gw.Name)
		}
		rt := &route{gateway: gw.Name, caller: gw.Caller, breaker: newBreaker(gw.Name, p.cfg.Breaker, p.log)}
		if gw.Channels == nil {
			if fallback != nil {
				return errors.New("pipeline: more than one default gateway")
			}
			fallback = rt
			continue
		}
		for _, id := range gw.Channels {
			if _, ok := p.routes[id]; ok {
				return fmt.Errorf("pipeline: channel %s has two gateways", id)
			}
			p.routes[id] = rt
		}
	}
	for _, ch := range p.cfg.Registry.Channels() {
		rt, ok := p.routes[ch.ID]
		if !ok {
			if fallback == nil {
				return fmt.Errorf("pipeline: no gateway for channel %s", ch.ID)
			}
			rt = fallback
			p.routes[ch.ID] = rt
		}
		rt.topics = append(rt.topics, ch.Topic)
	}
	return nil
}

// Sessions returns the sessions the pipeline looks sellers up in; storing new ones (a reloaded
// sessions file) takes effect for the next event.
func (p *Pipeline) Sessions() *Sessions { return p.cfg.Sessions }

// breakers returns every gateway's breaker once.
func (p *Pipeline) breakers() []*breaker {
	var out []*breaker
	for _, rt := range p.routes {
		if !slices.Contains(out, rt.breaker) {
			out = append(out, rt.breaker)
		}
	}
	return out
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

// Process implements consumer.Processor. Every event gets an outcome — invalid input and a
// panic included — except in two cases: it returns a *consumer.Pause when no event of the
// channel can get through for now (a long flow-control ban, the gateway's circuit open, the
// app's credentials refused), and another error when the event could not be processed now and
// is to be retried as a whole (Redis unreachable, the claim lost, ctx ended).
func (p *Pipeline) Process(ctx context.Context, m kafka.Message) (res consumer.Result, err error) {
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
			ev.outcome.Error = &ErrorInfo{Kind: KindPlatform, Code: CodeInternal, Msg: fmt.Sprintf("panic: %v", r)}
			ev.encoded = nil
			res, err = p.finish(ctx, ev, true), nil
		}
	}()

	dead, err := p.run(ctx, ev, &release)
	if err != nil {
		return consumer.Result{}, err
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
		session, ok := p.cfg.Sessions.Lookup(seller)
		if !ok {
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
	if errors.Is(err, dedupe.ErrCorrupt) {
		p.corrupt(ev, err)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	switch claim.State {
	case dedupe.Done:
		p.m.dedupe(ctx, "duplicate")
		return p.replay(ev, claim.Outcome), nil
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

	if claim.TookOver && ev.ch.DedupedBy == "" {
		// The previous owner stopped (crashed) holding the key: its call may have reached the
		// platform, which would not notice a second one.
		(*release)()
		*release = nil
		ev.outcome.Status = StatusFailed
		ev.outcome.Error = &ErrorInfo{Kind: KindAmbiguous, Code: "taken-over",
			Msg: fmt.Sprintf("the previous owner (%s) of the key stopped while it held it and may have called %s; not called again: reconcile before replaying", claim.PreviousOwner, ev.ch.Method)}
		return true, nil
	}
	v, err := p.call(ctx, ev, key, owner, token)
	if err != nil || v != store {
		// Nothing the platform executed, or nothing known of it: the claim is released so that a
		// re-send or a replay from the dead-letter topic can try again (DESIGN.md §6).
		(*release)()
		*release = nil
		return v == deadLetter, err
	}
	*release = nil
	return false, p.complete(ctx, key, owner, token, ev)
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
			return c, err // names the key already
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

// verdict is what a call's result asks for.
type verdict int

const (
	store      verdict = iota // the platform executed the call or refused it on its merits: store the outcome
	deadLetter                // a failed outcome that is not stored: release the claim, dead-letter the event
)

// call calls the gateway until it answers for good, retrying transient errors with exponential
// backoff and renewing the lease meanwhile. It fills ev.outcome and says what to do with it. It
// returns an error when the event must wait or be retried as a whole: a *consumer.Pause (long
// ban, open circuit, refused credentials), the lease lost, or ctx ended.
func (p *Pipeline) call(ctx context.Context, ev *event, key dedupe.Key, owner string, token int64) (verdict, error) {
	lost, stopRenew := p.renew(ctx, key, owner, token)
	defer stopRenew()

	rt := p.routes[ev.ch.ID]
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
			return store, fmt.Errorf("call %s: %s: %w", method, key, dedupe.ErrLeaseLost)
		default:
		}
		ev.outcome.Attempts = attempt
		resp, err := p.attempt(ctx, rt, ev.prep.Request, attempt)
		if err == nil {
			ev.outcome.RequestID = resp.RequestID
			ev.outcome.Response = resp.Body
			ev.outcome.Status, ev.outcome.Error = ev.ch.Interpret(resp)
			return store, nil
		}
		if ctx.Err() != nil {
			return store, fmt.Errorf("call %s: %w", method, ctx.Err())
		}
		if pause := p.pause(rt, ev.ch, err); pause != nil {
			return store, pause
		}
		var te *topapi.Error
		if errors.As(err, &te) {
			ev.outcome.RequestID = te.RequestID
		}
		switch {
		case te != nil && ev.ch.DedupedBy == "" && te.MayHaveExecuted():
			// The platform may have executed the call and would execute a repeat again.
			ev.outcome.Status, ev.outcome.Error = StatusFailed, ErrorFromTOP(err)
			ev.outcome.Error.Kind, ev.outcome.Error.Retryable = KindAmbiguous, false
			ev.outcome.Error.Msg = fmt.Sprintf("attempt %d may have been executed; not repeated (%s has no idempotency field the platform sees): %s",
				attempt, method, ev.outcome.Error.Msg)
			return deadLetter, nil
		case te != nil && te.Session():
			// Only this seller's events fail; a refreshed session and a replay re-drive them.
			ev.outcome.Status, ev.outcome.Error = StatusFailed, ErrorFromTOP(err)
			return deadLetter, nil
		case te == nil || !te.Retryable():
			ev.outcome.Status, ev.outcome.Error = StatusFailed, ErrorFromTOP(err)
			return store, nil
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			ev.outcome.Status = StatusFailed
			ev.outcome.Error = ErrorFromTOP(err)
			ev.outcome.Error.Kind = KindExhausted
			ev.outcome.Error.Msg = fmt.Sprintf("giving up after %d attempt(s): %s", attempt, ev.outcome.Error.Msg)
			return deadLetter, nil
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
			return store, fmt.Errorf("call %s: %s: %w", method, key, dedupe.ErrLeaseLost)
		case <-ctx.Done():
			return store, fmt.Errorf("call %s: %w", method, ctx.Err())
		}
	}
}

// pause turns a failure that no event of the channel can get past into a pause of intake, or
// returns nil: a ban longer than top.max_ban_wait (every channel of the app key, or only this
// channel for a per-API limit), the gateway's circuit open (the gateway's channels), refused
// credentials (the gateway's channels, until a probe passes).
func (p *Pipeline) pause(rt *route, ch *Channel, err error) *consumer.Pause {
	var te *topapi.Error
	isTop := errors.As(err, &te)
	switch {
	case errors.Is(err, errCircuitOpen):
		var ce *circuitError
		errors.As(err, &ce)
		return &consumer.Pause{Scope: "circuit " + rt.gateway, Reason: "circuit_open", Topics: rt.topics, Until: ce.probeAt,
			Level: slog.LevelWarn, Err: fmt.Errorf("gateway %s failing: circuit open", rt.gateway)}
	case errors.Is(err, topapi.ErrLongBan):
		p.m.ban(context.Background(), ch.Method)
		pz := &consumer.Pause{Scope: "ban app " + p.cfg.AppKey, Reason: "ban", Topics: p.all,
			Until: time.Now().Add(te.RetryAfter()), Level: slog.LevelWarn, Err: err}
		if te.BanScope() == topapi.BanAPI {
			pz.Scope, pz.Topics = "ban app "+p.cfg.AppKey+" method "+ch.Method, []string{ch.Topic}
		}
		return pz
	case isTop && te.Credentials():
		return &consumer.Pause{Scope: "credentials " + rt.gateway, Reason: "credentials", Topics: rt.topics,
			Level: slog.LevelError, Err: fmt.Errorf("gateway %s refuses the app's configuration: %w", rt.gateway, err)}
	}
	return nil
}

// PauseReasons are the reasons of the pauses Process returns (consumer.Pause.Reason).
var PauseReasons = []string{"ban", "circuit_open", "credentials"}

// circuitError is a call not made because its gateway's circuit is open.
type circuitError struct{ probeAt time.Time }

func (e *circuitError) Error() string { return errCircuitOpen.Error() }
func (e *circuitError) Unwrap() error { return errCircuitOpen }

// attempt makes one gateway call under its own client span, through the gateway's breaker.
func (p *Pipeline) attempt(ctx context.Context, rt *route, req topapi.Request, n int) (topapi.Response, error) {
	done, probeAt, err := rt.breaker.allow()
	if err != nil {
		return topapi.Response{}, &circuitError{probeAt: probeAt}
	}
	ctx, span := p.tracer.Start(ctx, "top "+req.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("ordersync.top.method", req.Method),
		attribute.Int("ordersync.top.attempt", n),
	))
	defer span.End()
	start := time.Now()
	resp, err := rt.caller.Call(ctx, req)
	done(err)
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
// has answered, so calling it again must be avoided. It runs on a context of its own bounded by
// StoreTimeout, so an answer that arrived is stored even when ctx was cancelled meanwhile. If the
// claim is gone — Redis lost it (a restart without persistence) — the outcome is re-seated under a
// fresh claim rather than thrown away. It fails only if another worker holds or completed the key
// meanwhile, or Redis stayed unreachable for StoreTimeout; the consumer then retries the event,
// which finds the key done or in progress.
func (p *Pipeline) complete(ctx context.Context, key dedupe.Key, owner string, token int64, ev *event) error {
	ev.outcome.CompletedAt = p.cfg.Now().UTC()
	body, err := p.encode(&ev.outcome)
	if err != nil {
		return fmt.Errorf("encode outcome: %w", err)
	}
	ev.encoded = body
	ctx, span := p.tracer.Start(ctx, "dedupe complete")
	defer span.End()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.StoreTimeout)
	defer cancel()
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
//
// It reports whether the event goes to the dead-letter topic: only when the stored outcome cannot
// be read (then the outcome says so, code dedupe-corrupt).
func (p *Pipeline) replay(ev *event, stored []byte) (dead bool) {
	var orig Outcome
	if err := json.Unmarshal(stored, &orig); err != nil || orig.Status == "" {
		if err == nil {
			err = errors.New("no status")
		}
		p.corrupt(ev, fmt.Errorf("stored outcome of %s cannot be read: %w", ev.prep.IdempotencyKey, err))
		return true
	}
	if orig.EventID == ev.outcome.EventID && orig.Source == ev.outcome.Source {
		orig.TraceID = ev.outcome.TraceID
		ev.outcome = orig
		return false
	}
	ev.outcome.Status = StatusDuplicate
	ev.outcome.Response = orig.Response
	ev.outcome.ResponseTruncated = orig.ResponseTruncated
	ev.outcome.Error = orig.Error
	ev.outcome.RequestID = orig.RequestID
	return false
}

// corrupt fails ev because its dedupe record in Redis is not one the worker wrote (or cannot be
// read): retrying cannot help, and calling without dedupe could create a second order.
func (p *Pipeline) corrupt(ev *event, err error) {
	p.m.dedupe(context.Background(), "corrupt")
	ev.outcome.Status = StatusFailed
	ev.outcome.Error = &ErrorInfo{Kind: KindPlatform, Code: CodeDedupeCorrupt,
		Msg: err.Error() + "; remove or repair the Redis key, then replay"}
}

// finish builds the result: the outcome record, and the dead-letter reason when dead.
func (p *Pipeline) finish(ctx context.Context, ev *event, dead bool) consumer.Result {
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
		if body, err = p.encode(o); err != nil {
			// Only an unencodable response could do this; keep the outcome without it.
			o.Response = nil
			body, _ = json.Marshal(o)
		}
	}
	record := func(value []byte) []kafka.Message {
		return []kafka.Message{{
			Topic:   p.cfg.ResultsTopic,
			Key:     []byte(key),
			Value:   value,
			Headers: []kafka.Header{{Key: HeaderChannel, Value: []byte(o.Channel)}},
		}}
	}
	res := consumer.Result{
		Records: record(body),
		// What the consumer publishes instead when the broker refuses the outcome for good: the
		// same outcome without its response and with short error texts.
		Fallback: func() []kafka.Message {
			small := *o
			small.ResponseTruncated = small.ResponseTruncated || len(small.Response) > 0
			small.Response = nil
			if small.Error != nil {
				e := *small.Error
				e.Msg, e.SubMsg = cut(e.Msg, 512), cut(e.SubMsg, 512)
				small.Error = &e
			}
			b, _ := json.Marshal(small)
			return record(b)
		},
	}
	if dead {
		res.DeadLetter = "dead letter"
		if o.Error != nil {
			res.DeadLetter = o.Error.Msg
		}
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
	return res
}

// recordOverhead is what an outcome record takes besides its value: the key (an idempotency key
// of up to 256 characters), the trace and channel headers, the record's framing.
const recordOverhead = 4 << 10

// encode is o's JSON, fitted to MaxRecordBytes: a response too large is cut to a JSON string of
// its start, or dropped, and ResponseTruncated says so; error texts too long are cut.
func (p *Pipeline) encode(o *Outcome) ([]byte, error) {
	body, err := json.Marshal(o)
	limit := p.cfg.MaxRecordBytes - recordOverhead
	if err != nil || len(body) <= limit {
		return body, err
	}
	if o.Error != nil {
		e := *o.Error
		e.Msg, e.SubMsg = cut(e.Msg, 4<<10), cut(e.SubMsg, 4<<10)
		o.Error = &e
	}
	raw := o.Response
	if len(raw) > 0 {
		o.ResponseTruncated = true
	}
	// Escaping a cut response as a JSON string can make it longer; shrink until it fits.
	for n := limit - (len(body) - len(raw)); n > 64 && len(raw) > 0; {
		s, err := json.Marshal(strings.ToValidUTF8(string(raw[:min(n, len(raw))]), ""))
		if err != nil {
			break
		}
		o.Response = s
		if body, err = json.Marshal(o); err == nil && len(body) <= limit {
			return body, nil
		}
		n -= max(len(body)-limit, n/8)
	}
	o.Response = nil
	return json.Marshal(o)
}

// cut returns s shortened to at most n bytes, on a UTF-8 boundary, marked with "…".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "…"
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
