package topapi

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// flow is the flow-control state shared by a Client and the clients made
// from it with WithGateway: a rate limiter per (app key, method), created on
// first use, and the ban the platform imposed on each app key. It runs on the
// real monotonic clock. It is safe for concurrent use.
type flow struct {
	qps   float64
	burst int

	limiters sync.Map // flowKey -> *rate.Limiter

	mu   sync.Mutex
	bans map[string]banState // by app key
}

type flowKey struct{ appKey, method string }

// banKey names what a ban stops: an app key, or one method of it.
func banKey(appKey, method, scope string) string {
	if scope == BanAPI {
		return appKey + " " + method
	}
	return appKey
}

type banState struct {
	until   time.Time
	subCode string
}

func newFlow(qps float64, burst int) *flow {
	return &flow{qps: qps, burst: burst, bans: make(map[string]banState)}
}

// limiter returns the limiter of (appKey, method), or nil when unlimited.
func (f *flow) limiter(appKey, method string) *rate.Limiter {
	if f.qps <= 0 {
		return nil
	}
	k := flowKey{appKey, method}
	if l, ok := f.limiters.Load(k); ok {
		return l.(*rate.Limiter)
	}
	l, _ := f.limiters.LoadOrStore(k, rate.NewLimiter(rate.Limit(f.qps), f.burst))
	return l.(*rate.Limiter)
}

// ban records that appKey (or, for a per-API ban, its method) is banned for d
// from now, unless a longer ban is already recorded.
func (f *flow) ban(appKey, method, scope string, d time.Duration, subCode string) {
	until := time.Now().Add(d)
	k := banKey(appKey, method, scope)
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.bans[k]; !ok || until.After(b.until) {
		f.bans[k] = banState{until: until, subCode: subCode}
	}
}

// banned returns how long the longer of the app key's and the method's bans
// still lasts, with its sub-code.
func (f *flow) banned(appKey, method string) (time.Duration, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var left time.Duration
	var subCode string
	for _, k := range [...]string{appKey, banKey(appKey, method, BanAPI)} {
		if b, ok := f.bans[k]; ok {
			if d := time.Until(b.until); d > left {
				left, subCode = d, b.subCode
			}
		}
	}
	return left, subCode
}

// wait blocks until a call of method may go out: the app key's ban has
// ended and the method's limiter grants a token. It returns at once, without
// waiting, a code-7 error matching ErrLongBan when the ban outlasts maxWait,
// and a retryable error when ctx ends (or would end) first.
func (f *flow) wait(ctx context.Context, appKey, method string, maxWait time.Duration) *Error {
	if e := f.waitBan(ctx, appKey, method, maxWait); e != nil {
		return e
	}
	lim := f.limiter(appKey, method)
	if lim == nil {
		return nil
	}
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			r.Cancel()
			return &Error{
				Msg: fmt.Sprintf("rate limit of %g/s for %s: next slot after the deadline", f.qps, method),
				Err: context.DeadlineExceeded, retryable: true, retryAfter: d,
			}
		}
		if err := sleep(ctx, d); err != nil {
			r.Cancel()
			return &Error{Msg: "wait for rate limit: call interrupted", Err: err, retryable: true}
		}
	}
	// A ban may have arrived while this call waited for its slot.
	return f.waitBan(ctx, appKey, method, maxWait)
}

func (f *flow) waitBan(ctx context.Context, appKey, method string, maxWait time.Duration) *Error {
	for {
		left, subCode := f.banned(appKey, method)
		if left <= 0 {
			return nil
		}
		if left > maxWait {
			e := banError(left, subCode)
			e.longBan = true
			return e
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < left {
			return banError(left, subCode)
		}
		if err := sleep(ctx, left); err != nil {
			return &Error{Msg: "wait for ban to end: call interrupted", Err: err, retryable: true}
		}
	}
}

// banError is the error of a call not sent because of a recorded ban.
func banError(left time.Duration, subCode string) *Error {
	if subCode == "" {
		subCode = "accesscontrol.limited-by-app-access-count"
	}
	return &Error{
		Code:    7,
		Msg:     "App Call Limited",
		SubCode: subCode,
		SubMsg: fmt.Sprintf("This ban will last for %d more seconds (not sent: ban recorded by the client)",
			int64(math.Ceil(left.Seconds()))),
		retryable:  true,
		retryAfter: left,
	}
}

// sleep waits for d or until ctx ends, returning ctx.Err() then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
