package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi"
)

// Deduper is the idempotency store the pipeline claims keys in (a *dedupe.Store).
type Deduper interface {
	Claim(ctx context.Context, key dedupe.Key, fingerprint, owner string, lease time.Duration) (dedupe.Claim, error)
	Renew(ctx context.Context, key dedupe.Key, owner string, token int64, lease time.Duration) error
	Complete(ctx context.Context, key dedupe.Key, owner string, token int64, outcome []byte, retention time.Duration) error
	Release(ctx context.Context, key dedupe.Key, owner string, token int64) error
	ReleaseNoted(ctx context.Context, key dedupe.Key, owner string, token int64, note []byte) error
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

// Retry is the gateway retry policy for transient errors (topapi.Error.Retryable).
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

// Config configures a [Pipeline]. Registry, Dedupe, Gateways and ResultsTopic are
// required; zero values of the rest take the documented defaults.
type Config struct {
	Registry *dispatch.Registry
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
	// fit is cut (dispatch.Outcome.ResponseTruncated), in the stored outcome too. Default 1 MiB.
	MaxRecordBytes int
	Retry          Retry
	// InProgressPoll is how often a key that another worker holds is checked. Default 250ms.
	InProgressPoll time.Duration
	// StoreTimeout bounds storing the outcome of a call the platform answered. It runs on a
	// context of its own, so an answer that arrived is stored even when the event's context was
	// cancelled meanwhile (a drain that ran out of time). Default 10s.
	StoreTimeout time.Duration

	// LogSuccesses logs every outcome at info; false logs only failed and rejected ones (every
	// outcome is on the results topic either way).
	LogSuccesses bool

	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Now            func() time.Time
}

// Pipeline processes one consumed event: decode and validate it, claim its idempotency key,
// call the TOP API with retry, store the outcome, and return the outcome record (plus a dead
// letter for a rejected event or a failure of kind exhausted, auth, ambiguous or dedupe-corrupt) for the consumer to publish. It is safe for concurrent
// use and implements consumer.Processor.
type Pipeline struct {
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer
	m      pipelineMetrics
	seq    atomic.Uint64
	routes map[string]*route // by channel id
	// topSpans names each method's call span, "top <method>".
	topSpans map[string]string
	all      []string // every enabled channel's topic
}

// route is how a channel reaches its gateway.
type route struct {
	gateway string
	caller  Caller
	breaker *breaker
	topics  []string // the topics of every channel on this gateway
}

// New validates cfg and returns a pipeline.
func New(cfg Config) (*Pipeline, error) {
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
		cfg.MaxMessageBytes = dispatch.DefaultMaxBytes
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
		cfg:      cfg,
		log:      cfg.Logger,
		tracer:   cfg.TracerProvider.Tracer("github.com/ordersync/ordersync/pkg/pipeline"),
		routes:   make(map[string]*route),
		topSpans: make(map[string]string),
		all:      cfg.Registry.Topics(),
	}
	if err := p.route(); err != nil {
		return nil, err
	}
	for _, ch := range cfg.Registry.Channels() {
		p.topSpans[ch.Method] = "top " + ch.Method
	}
	if err := p.m.init(cfg.MeterProvider.Meter("github.com/ordersync/ordersync/pkg/pipeline"), p.breakers()); err != nil {
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
	ch      *dispatch.Channel
	env     *dispatch.Envelope
	prep    *dispatch.Prepared
	outcome dispatch.Outcome
	encoded []byte // outcome's JSON as stored by complete; finish publishes the same bytes
}

// Process implements consumer.Processor. Every event gets an outcome — invalid input and a
// panic included — except in two cases: it returns a *consumer.Pause when no event of the
// channel can get through for now (a long flow-control ban, the gateway's circuit open, the
// app's credentials refused), and another error when the event could not be processed now and
// is to be retried as a whole (Redis unreachable, the claim lost, ctx ended).
func (p *Pipeline) Process(ctx context.Context, m kafka.Message) (res consumer.Result, err error) {
	ev := &event{msg: m}
	ev.outcome = dispatch.Outcome{
		Source:     dispatch.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset},
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
			ev.outcome.Status = dispatch.StatusFailed
			ev.outcome.Error = &dispatch.ErrorInfo{Kind: dispatch.KindPlatform, Code: dispatch.CodeInternal, Msg: fmt.Sprintf("panic: %v", r)}
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
		return true, p.reject(ev, &dispatch.ErrorInfo{Kind: dispatch.KindValidation, Code: "unknown-channel", Msg: "no enabled channel consumes topic " + strconv.Quote(m.Topic)})
	}
	ev.ch = ch
	ev.outcome.Channel, ev.outcome.Method = ch.ID, ch.Method

	env, err := dispatch.DecodeEnvelope(m.Value, p.cfg.MaxMessageBytes)
	if err != nil {
		ev.outcome.EventID = lenientEventID(m.Value)
		return true, p.reject(ev, dispatch.ErrorFromValidation(err))
	}
	ev.env = env
	ev.outcome.EventID = env.EventID
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.message.id", env.EventID), attribute.String("ordersync.channel", ch.ID))
	}

	prep, err := ch.Prepare(env)
	if err != nil {
		return true, p.reject(ev, dispatch.ErrorFromValidation(err))
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
			return true, p.reject(ev, &dispatch.ErrorInfo{Kind: dispatch.KindAuth, Code: "missing-session", Msg: msg})
		}
		prep.Request.Session = session
	}
	return p.deliver(ctx, ev, release)
}

// reject marks ev rejected with e; rejected events never claim. It returns nil, the error of a
// processed event, for its callers to return.
func (p *Pipeline) reject(ev *event, e *dispatch.ErrorInfo) error {
	ev.outcome.Status = dispatch.StatusRejected
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
		return true, p.reject(ev, &dispatch.ErrorInfo{Kind: dispatch.KindConflict, Code: "conflict",
			Msg: "idempotency key " + strconv.Quote(key.ID) + " was used before with a different request"})
	}
	p.m.dedupe(ctx, "claimed")
	token := claim.Token
	// On a channel the platform does not deduplicate, an ambiguous event's claim is released with
	// a note naming the event, so that the same event coming back — redelivered after its worker
	// stopped before the outcome was published — is recognised and not called again, while a
	// replay or a re-send (another offset) may call.
	var note []byte
	if ev.ch.DedupedBy == "" {
		src := ev.outcome.Source
		note = []byte("ambiguous " + src.Topic + "/" + strconv.Itoa(src.Partition) + "/" + strconv.FormatInt(src.Offset, 10))
	}
	*release = func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var err error
		if note != nil && ev.outcome.Error != nil && ev.outcome.Error.Kind == dispatch.KindAmbiguous {
			err = p.cfg.Dedupe.ReleaseNoted(rctx, key, owner, token, note)
		} else {
			err = p.cfg.Dedupe.Release(rctx, key, owner, token)
		}
		if err != nil {
			p.log.WarnContext(ctx, "release claim", "key", key.String(), "err", err)
		}
	}

	if note != nil && (claim.TookOver || bytes.Equal(claim.Note, note)) {
		// The previous owner stopped (crashed) holding the key, or this very event was found
		// ambiguous before and comes back: a call may have reached the platform, which would not
		// notice a second one.
		ev.outcome.Status = dispatch.StatusFailed
		ev.outcome.Error = &dispatch.ErrorInfo{Kind: dispatch.KindAmbiguous, Code: "taken-over",
			Msg: fmt.Sprintf("the previous owner (%s) of the key stopped while it held it and may have called %s; not called again: reconcile before replaying", claim.PreviousOwner, ev.ch.Method)}
		if !claim.TookOver {
			ev.outcome.Error.Code = "redelivered"
			ev.outcome.Error.Msg = fmt.Sprintf("this event came back after an earlier attempt that may have called %s (its outcome was not published before its worker stopped); not called again: reconcile before replaying", ev.ch.Method)
		}
		(*release)()
		*release = nil
		return true, nil
	}
	v, err := p.call(ctx, ev, key, owner, token)
	if err != nil || v != store {
		// Nothing the platform executed, or nothing known of it: the claim is released so that a
		// re-send or a replay from the dead-letter topic can try again (docs/ARCHITECTURE.md, "Dedupe states").
		(*release)()
		*release = nil
		return v == deadLetter, err
	}
	*release = nil
	return false, p.complete(ctx, key, owner, token, ev)
}
