package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// Bugs the chaos soak (TestChaos) found, each reproduced on its own as a regression test. Both
// repeated an icbu-trade call, whose platform does not deduplicate calls: a failure after the
// request may have reached the platform must not be retried.

// Found by the soak: a revoke (or shutdown) whose drain runs out of time cancels an icbu-trade
// call in flight and releases its claim, although the request was written and the platform may
// have executed it; the next owner of the partition claims the key afresh and calls again — a
// second order. Seen in the soak (under -race): the drain of a revoked partition timed out, the
// simulator answered the cancelled call 33 ms later, and the next owner's call succeeded too.
func TestFindingDrainTimeoutRepeatsIcbuCall(t *testing.T) {
	e := newE2E(t, 1)
	// A gateway that executes each call at once but answers 3 s later (a slow way back).
	executed := make(chan struct{}, 4)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		e.recordSuccesses(rec, r)
		executed <- struct{}{}
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
			return // the worker gave up; the call was executed all the same
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(slow.Close)

	cfg := e.config("finding-drain")
	cfg.Top.GatewayURL = slow.URL + "/router/rest"
	// The drain gets 1 s (shutdown less top.timeout, storing and closing); the call times out
	// after 2 s without an answer, the drain long over.
	cfg.Top.Timeout = 2 * time.Second
	cfg.Worker.ShutdownTimeout = 10 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ev := newEventGen(t).valid("icbu-trade", "drain")
	e.publish([]testEvent{ev})

	first := e.startWorker(cfg)
	select {
	case <-executed:
	case <-time.After(30 * time.Second):
		t.Fatal("the first worker made no call")
	}
	if err := first.stop(); err != nil { // the drain times out with the call in flight
		t.Fatal(err)
	}
	e.startWorker(cfg)
	got := e.outcomes([]testEvent{ev}, 30*time.Second)

	e.mu.Lock()
	n := len(e.successes[e.platformKey(ev)])
	e.mu.Unlock()
	if n > 1 {
		o := got[ev.eventID][0]
		t.Errorf("icbu-trade %s was executed %d times (outcome %s %+v), want once: the cancelled call's claim was released, so the next owner called again instead of taking over (failed/ambiguous)",
			ev.key, n, o.Status, o.Error)
	}
	if o := got[ev.eventID][0]; !isAmbiguous(o) {
		t.Errorf("outcome %s %+v, want failed/ambiguous: the call timed out after it was sent", o.Status, o.Error)
	}
}

// Found by the soak: an icbu-trade event whose call failed ambiguously (HTTP 5xx, isp.*) gets
// failed/ambiguous and a dead letter, and its claim is released (so that a deliberate replay or
// re-send may try again). When the worker dies before committing the offset, the same event is
// redelivered, claims the released key and is called again — an automatic retry of a call that
// may have been executed, and a second, different outcome for one event. Seen in the soak: an
// ambiguous outcome (isp error during the 5xx burst) whose dead letter was written, a kill before
// the commit, and a succeeded outcome for the same event from the next owner.
func TestFindingAmbiguousEventCalledAgainAfterKill(t *testing.T) {
	e := newE2E(t, 1)
	if err := e.sim.SetFaults(topsim.Faults{ISPRate: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config("finding-ambiguous")
	cfg.Kafka.CommitInterval = time.Hour // nothing is committed before the kill
	ev := newEventGen(t).valid("icbu-trade", "amb")
	e.publish([]testEvent{ev})

	c := e.startChild(cfg)
	got := e.outcomes([]testEvent{ev}, 30*time.Second)
	if o := got[ev.eventID][0]; !isAmbiguous(o) {
		t.Fatalf("outcome %s %+v, want failed/ambiguous (the simulator answers isp errors)", o.Status, o.Error)
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
	if err := e.sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	e.startChild(cfg)
	// The redelivered event gets a second outcome either way: the same failed/ambiguous (its
	// call not repeated) or a new one.
	waitCount(t, e, 2, 30*time.Second)
	method, key, _ := strings.Cut(e.platformKey(ev), " ")
	if calls := e.sim.Stats().For(method, key).Calls; calls > 1 {
		outs := e.outcomes([]testEvent{ev}, time.Second)[ev.eventID]
		var b bytes.Buffer
		for _, o := range outs {
			b.WriteString(" " + o.Status)
			if o.Error != nil {
				b.WriteString("/" + o.Error.Kind)
			}
		}
		t.Errorf("icbu-trade %s: %d calls reached the platform, want 1: the event was failed as ambiguous (\"not repeated\"), then called again when it was redelivered after the kill; its outcomes:%s",
			ev.key, calls, b.String())
	}
}
