package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ordersync/ordersync/pkg/topapi"
)

// Breaker configures the circuit breaker of each gateway. The rule: the circuit opens when
// ConsecutiveFailures calls in a row fail, or when at least MinRequests calls were made in the
// last Window and FailureRatio or more of them failed. Failures are transient failures of the
// gateway (no answer, timeouts, HTTP 5xx, isp.* errors, code 10); flow control, refused
// credentials and answers with a verdict (business or parameter errors) do not count. While the
// circuit is open no call is made: the events of the gateway's channels pause intake. After
// OpenFor one probe call goes through (half-open); if it fails the circuit opens again for twice
// as long, up to MaxOpenFor; if it succeeds the circuit closes.
type Breaker struct {
	Disabled            bool
	ConsecutiveFailures uint32        // default 10
	FailureRatio        float64       // default 0.5
	MinRequests         uint32        // default 20
	Window              time.Duration // default 30s
	OpenFor             time.Duration // default 5s
	MaxOpenFor          time.Duration // default 2m
}

func (b *Breaker) setDefaults() {
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = 10
	}
	if b.FailureRatio == 0 {
		b.FailureRatio = 0.5
	}
	if b.MinRequests == 0 {
		b.MinRequests = 20
	}
	if b.Window <= 0 {
		b.Window = 30 * time.Second
	}
	if b.OpenFor <= 0 {
		b.OpenFor = 5 * time.Second
	}
	if b.MaxOpenFor < b.OpenFor {
		b.MaxOpenFor = max(2*time.Minute, b.OpenFor)
	}
}

// Circuit states, as the ordersync_gateway_circuit_state gauge reports them.
const (
	CircuitClosed   = 0
	CircuitHalfOpen = 1
	CircuitOpen     = 2
)

// errCircuitOpen is returned by breaker.allow while the circuit is open.
var errCircuitOpen = errors.New("circuit open")

// breaker is one gateway's circuit breaker.
type breaker struct {
	name string
	cfg  Breaker
	cb   *gobreaker.TwoStepCircuitBreaker[struct{}]
	log  *slog.Logger

	state atomic.Int32

	mu       sync.Mutex
	opens    int // consecutive openings without a close
	openedAt time.Time
}

func newBreaker(name string, cfg Breaker, log *slog.Logger) *breaker {
	b := &breaker{name: name, cfg: cfg, log: log}
	if cfg.Disabled {
		return b
	}
	bucket := max(cfg.Window/6, time.Second)
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         name,
		MaxRequests:  1,
		Interval:     cfg.Window,
		BucketPeriod: bucket,
		Timeout:      cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= cfg.ConsecutiveFailures ||
				c.Requests >= cfg.MinRequests && float64(c.TotalFailures) >= cfg.FailureRatio*float64(c.Requests)
		},
		IsSuccessful:  func(err error) bool { return err == nil || !gatewayFailure(err) },
		IsExcluded:    excludedFromBreaker,
		OnStateChange: b.changed,
	})
	return b
}

// gatewayFailure reports whether err says the gateway is failing (as opposed to answering).
func gatewayFailure(err error) bool {
	var te *topapi.Error
	if !errors.As(err, &te) {
		return false
	}
	return te.Retryable() && !topapi.IsFlowControl(err)
}

// excludedFromBreaker: calls the client never made (a recorded ban, a cancelled context) and
// refused credentials say nothing about the gateway's health.
func excludedFromBreaker(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, topapi.ErrLongBan) || topapi.IsFlowControl(err) {
		return true
	}
	var te *topapi.Error
	return errors.As(err, &te) && te.Credentials()
}

func (b *breaker) changed(_ string, from, to gobreaker.State) {
	level := slog.LevelInfo
	b.mu.Lock()
	switch to {
	case gobreaker.StateOpen:
		b.state.Store(CircuitOpen)
		b.opens++
		b.openedAt = time.Now()
		level = slog.LevelWarn
	case gobreaker.StateHalfOpen:
		b.state.Store(CircuitHalfOpen)
	case gobreaker.StateClosed:
		b.state.Store(CircuitClosed)
		b.opens = 0
	}
	b.mu.Unlock()
	b.log.Log(context.Background(), level, "gateway circuit "+to.String(), "gateway", b.name, "from", from.String())
}

// allow asks to make one call. done must be called with the call's error. When the circuit is
// open it returns errCircuitOpen and the time of the next probe.
func (b *breaker) allow() (done func(error), probeAt time.Time, err error) {
	if b.cb == nil {
		return func(error) {}, time.Time{}, nil
	}
	done, err = b.cb.Allow()
	if err == nil {
		return done, time.Time{}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	wait := min(b.cfg.OpenFor<<min(max(b.opens-1, 0), 16), b.cfg.MaxOpenFor)
	return nil, b.openedAt.Add(wait), errCircuitOpen
}
