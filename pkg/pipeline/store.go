package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dispatch"
)

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
	var orig dispatch.Outcome
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
	ev.outcome.Status = dispatch.StatusDuplicate
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
	ev.outcome.Status = dispatch.StatusFailed
	ev.outcome.Error = &dispatch.ErrorInfo{Kind: dispatch.KindPlatform, Code: dispatch.CodeDedupeCorrupt,
		Msg: err.Error() + "; remove or repair the Redis key, then replay"}
}
