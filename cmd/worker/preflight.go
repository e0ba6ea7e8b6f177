package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Waits between attempts of the start-up checks while a dependency is not reachable.
const (
	preflightFirstWait = 250 * time.Millisecond
	preflightMaxWait   = 5 * time.Second
)

// retryChecks runs the start-up checks of what ("kafka", "redis") until they pass or refuse. once
// runs them once and says whether its error is a refusal, which retrying cannot change: that is
// returned at once. Any other error is logged and tried again after a growing wait, until ctx
// ends; then ctx's error is returned together with the last one.
func retryChecks(ctx context.Context, what string, log *slog.Logger, once func(context.Context) (refused bool, err error)) error {
	wait := preflightFirstWait
	for attempt := 1; ; attempt++ {
		refused, err := once(ctx)
		if err == nil || refused {
			return err
		}
		log.Warn(what+" start-up checks could not run; retrying", "err", err, "attempt", attempt, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s start-up checks: %w (last error: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, preflightMaxWait)
	}
}
