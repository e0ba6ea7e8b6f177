package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// Regression: when a revoke or shutdown ran out of time, the call in flight was cancelled and
// the claim released, so an answer the platform had already given was thrown away and the next
// owner called again. Now a sent call runs to top.timeout and its answer is stored on a context of
// its own: the next owner finds it and calls nothing.
func TestE2EDrainExpiresWhileAnswersAreInTransit(t *testing.T) {
	e := newE2E(t, 1)
	if err := e.sim.SetFaults(topsim.Faults{Latency: 4 * time.Second}); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(t)
	var events []testEvent
	for i := range 20 {
		events = append(events, g.valid("omni-saas", "drain"+string(rune('a'+i))))
	}
	e.publish(events)
	cfg := e.config("e2e-drain")
	cfg.Top.Timeout = 5 * time.Second
	cfg.Worker.ShutdownTimeout = 15 * time.Second // drain: 15 - 5 - 5 - 2 = 3s, shorter than the 4s answers
	c := e.startChild(cfg)
	deadline := time.Now().Add(30 * time.Second)
	for e.sim.Stats().Total < len(events) {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway saw %d calls, want %d in flight", e.sim.Stats().Total, len(events))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(cfg.Worker.ShutdownTimeout + 5*time.Second):
		t.Fatal("worker did not stop within its shutdown timeout")
	}
	if n := e.sim.Stats().Succeeded; n != len(events) {
		t.Fatalf("the platform executed %d calls, want all %d that were sent", n, len(events))
	}

	// The next owner: every answer is there, no second call.
	if err := e.sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	e.startWorker(cfg)
	got := e.outcomes(events, time.Minute)
	for _, ev := range events {
		if o := got[ev.eventID][len(got[ev.eventID])-1]; o.Status != dispatch.StatusSucceeded || o.Attempts != 1 {
			t.Errorf("event %s: %s after %d attempt(s), want the stored succeeded outcome of its one call", ev.eventID, o.Status, o.Attempts)
		}
	}
	if s := e.sim.Stats(); s.Total != len(events) {
		t.Errorf("the gateway saw %d calls in all, want %d: the answers that arrived after the drain were kept", s.Total, len(events))
	}
}
