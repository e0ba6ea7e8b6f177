package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

func TestE2EReplayDeadLetters(t *testing.T) {
	e := newE2E(t, 1)
	if err := e.sim.SetFaults(topsim.Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config("e2e-replay")
	cfg.Top.Retry.MaxElapsedTime = 200 * time.Millisecond
	cfg.Top.Breaker.Enabled = false // exhaustion, not an open circuit
	e.startWorker(cfg)

	g := newEventGen(t)
	events := []testEvent{g.valid("omni-saas", "r1"), g.valid("tmall-aliauto", "r2"), g.valid("diantao-tripartite", "r3")}
	e.publish(events)
	for id, os := range e.outcomes(events, 60*time.Second) {
		if os[0].Status != dispatch.StatusFailed || os[0].Error.Kind != dispatch.KindExhausted {
			t.Fatalf("event %s: %s %+v, want failed/exhausted while the gateway fails", id, os[0].Status, os[0].Error)
		}
	}
	if err := e.sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	replay := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, append([]string{"replay"}, args...), &out, io.Discard, e.environ(cfg)); err != nil {
			t.Fatalf("replay %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}

	// A dry run lists all three and publishes nothing.
	out := replay("--dry-run")
	if n := strings.Count(out, "would replay"); n != 3 {
		t.Fatalf("dry run listed %d dead letters, want 3:\n%s", n, out)
	}
	ch, _ := e.registry.ByID("omni-saas")
	if msgs, _ := e.broker.ReadAll(ctx, ch.Topic, 0, 0); len(msgs) != 1 {
		t.Fatalf("dry run published: %s holds %d records, want 1", ch.Topic, len(msgs))
	}

	// Replaying one event id sends exactly that one back; it now succeeds.
	out = replay("--event-id", events[0].eventID)
	if !strings.Contains(out, "replayed 1 of 3") {
		t.Fatalf("replay --event-id: %s", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := e.outcomes(events, 10*time.Second)
		if os := got[events[0].eventID]; len(os) == 2 {
			if os[1].Status != dispatch.StatusSucceeded {
				t.Fatalf("replayed event: %s %+v, want succeeded", os[1].Status, os[1].Error)
			}
			if len(got[events[1].eventID]) != 1 || len(got[events[2].eventID]) != 1 {
				t.Fatal("replay --event-id replayed other events too")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replayed event got no second outcome")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The replayed record carries the original key, value and headers, not the DLQ's own.
	msgs, err := e.broker.ReadAll(ctx, ch.Topic, 2, 10*time.Second)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("%s holds %d records (err %v), want the original and the replay", ch.Topic, len(msgs), err)
	}
	r := msgs[1]
	if string(r.Key) != events[0].key || !bytes.Equal(r.Value, events[0].value) {
		t.Errorf("replayed record key %q value %.40s, want the original", r.Key, r.Value)
	}
	for _, h := range r.Headers {
		if strings.HasPrefix(h.Key, "ordersync-") {
			t.Errorf("replayed record carries DLQ header %s", h.Key)
		}
	}
}
