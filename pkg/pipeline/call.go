package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi"
)

// claim claims key, waiting while another worker holds it. A Redis failure is returned: the
// consumer retries later (fail closed).
func (p *Pipeline) claim(ctx context.Context, key dedupe.Key, fingerprint, owner string) (dedupe.Claim, error) {
	ctx, span := p.tracer.Start(ctx, "dedupe claim")
	defer span.End()
	recording := span.IsRecording()
	if recording {
		span.SetAttributes(attribute.String("ordersync.channel", key.Channel))
	}
	waited := false
	for {
		c, err := p.cfg.Dedupe.Claim(ctx, key, fingerprint, owner, p.cfg.Lease)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
			span.SetAttributes(attribute.String("error.type", "redis"))
			return c, err // names the key already
		}
		if recording {
			span.SetAttributes(attribute.String("ordersync.dedupe.result", c.State.String()))
		}
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
		var te *topapi.Error
		if errors.As(err, &te) {
			ev.outcome.RequestID = te.RequestID
		}
		ambiguous := te != nil && ev.ch.DedupedBy == "" && te.MayHaveExecuted()
		if ambiguous {
			// The platform may have executed the call and would execute a repeat again.
			ev.outcome.Status, ev.outcome.Error = dispatch.StatusFailed, dispatch.ErrorFromTOP(err)
			ev.outcome.Error.Kind, ev.outcome.Error.Retryable = dispatch.KindAmbiguous, false
			ev.outcome.Error.Msg = fmt.Sprintf("attempt %d may have been executed; not repeated (%s has no idempotency field the platform sees): %s",
				attempt, method, ev.outcome.Error.Msg)
		}
		if ctx.Err() != nil {
			// The drain ran out (a revoke or shutdown) while the call was out. An ambiguous one
			// still says so: its claim is released with the event's note, and the next owner of
			// the partition, redelivered this event, does not call again.
			v := store
			if ambiguous {
				v = deadLetter
			}
			return v, fmt.Errorf("call %s: %w", method, ctx.Err())
		}
		if pause := p.pause(rt, ev.ch, err); pause != nil {
			return store, pause
		}
		switch {
		case ambiguous:
			return deadLetter, nil
		case te != nil && te.Session():
			// Only this seller's events fail; a refreshed session and a replay re-drive them.
			ev.outcome.Status, ev.outcome.Error = dispatch.StatusFailed, dispatch.ErrorFromTOP(err)
			return deadLetter, nil
		case te == nil || !te.Retryable():
			ev.outcome.Status, ev.outcome.Error = dispatch.StatusFailed, dispatch.ErrorFromTOP(err)
			return store, nil
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			ev.outcome.Status = dispatch.StatusFailed
			ev.outcome.Error = dispatch.ErrorFromTOP(err)
			ev.outcome.Error.Kind = dispatch.KindExhausted
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
func (p *Pipeline) pause(rt *route, ch *dispatch.Channel, err error) *consumer.Pause {
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
	name, ok := p.topSpans[req.Method]
	if !ok {
		name = "top " + req.Method
	}
	ctx, span := p.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("ordersync.top.method", req.Method), attribute.Int("ordersync.top.attempt", n))
	}
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
// to finish, since the platform may act on it whatever happens to the lease. A timer, not a
// goroutine per event: most events finish long before their first renewal is due.
func (p *Pipeline) renew(ctx context.Context, key dedupe.Key, owner string, token int64) (lost <-chan struct{}, stop func()) {
	r := &renewal{lost: make(chan struct{})}
	r.timer = time.AfterFunc(p.cfg.Lease/3, func() {
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return
		}
		r.running.Add(1)
		r.mu.Unlock()
		defer r.running.Done()
		err := p.cfg.Dedupe.Renew(ctx, key, owner, token, p.cfg.Lease)
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case r.stopped:
		case errors.Is(err, dedupe.ErrLeaseLost):
			p.log.WarnContext(ctx, "lease lost", "key", key.String())
			close(r.lost)
		default:
			if err != nil && ctx.Err() == nil {
				// Redis hiccup: the lease still has two thirds to go; try again next time.
				p.log.WarnContext(ctx, "renew lease", "key", key.String(), "err", err)
			}
			r.timer.Reset(p.cfg.Lease / 3)
		}
	})
	return r.lost, r.stop
}

// renewal is one claim's lease renewal timer.
type renewal struct {
	timer   *time.Timer
	lost    chan struct{}
	mu      sync.Mutex
	stopped bool
	running sync.WaitGroup // a renewal under way when stop is called
}

func (r *renewal) stop() {
	r.mu.Lock()
	r.stopped = true
	r.timer.Stop()
	r.mu.Unlock()
	r.running.Wait()
}
