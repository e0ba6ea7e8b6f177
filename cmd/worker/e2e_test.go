package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

func TestE2EAllChannelsWithDuplicatesAndMalformed(t *testing.T) {
	e := newE2E(t, 3)
	g := newEventGen(t)
	events := mix(g, 5000, 10, 5)
	want := countStatus(events)
	e.publish(events)
	e.startWorker(e.config("e2e-mix"))

	got := e.outcomes(events, 120*time.Second)
	e.checkDelivery(events, got, false)
	e.checkCommittedHaveOutcomes("e2e-mix", 3)

	dlq, err := e.broker.ReadAll(context.Background(), "orders.dlq", want[dispatch.StatusRejected], 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rejected := map[string]bool{}
	for _, ev := range events {
		if ev.want == dispatch.StatusRejected {
			rejected[string(ev.value)] = true
		}
	}
	if len(dlq) != len(rejected) {
		t.Errorf("DLQ holds %d records, want exactly the %d rejected events", len(dlq), len(rejected))
	}
	for _, m := range dlq {
		if !rejected[string(m.Value)] {
			t.Errorf("DLQ holds an event that was not rejected: %.80s", m.Value)
		}
		if consumer.Header(m, consumer.HeaderError) == "" || consumer.Header(m, consumer.HeaderSourceTopic) == "" {
			t.Errorf("DLQ record lacks ordersync-error / ordersync-source-topic headers")
		}
	}
	stats := e.sim.Stats()
	if stats.Succeeded != want[dispatch.StatusSucceeded] {
		t.Errorf("simulator saw %d successful calls, want one per original event (%d)", stats.Succeeded, want[dispatch.StatusSucceeded])
	}
	t.Logf("%d events: %v; simulator: %d calls", len(events), want, stats.Total)
}

func TestE2EPerKeyOrder(t *testing.T) {
	e := newE2E(t, 3)
	g := newEventGen(t)
	var events []testEvent
	const hot = "store-7:till-2"
	for i := 0; i < 50; i++ {
		ev := g.valid("omni-saas", fmt.Sprintf("hot%d", i))
		ev.key = hot // one message key, distinct idempotency keys
		events = append(events, ev)
		for j := 0; j < 4; j++ {
			events = append(events, g.valid(dispatch.ChannelIDs()[j], fmt.Sprintf("other%d-%d", i, j)))
		}
	}
	e.publish(events)
	e.startWorker(e.config("e2e-order"))
	got := e.outcomes(events, 60*time.Second)
	e.checkDelivery(events, got, false)

	// Same message key ⇒ same partition, consecutive offsets in publish order; each must have
	// finished before the next one started.
	var prev *dispatch.Outcome
	for _, ev := range events {
		if ev.key != hot {
			continue
		}
		o := got[ev.eventID][0]
		if prev != nil {
			if o.Source.Offset <= prev.Source.Offset {
				t.Fatalf("hot key offsets out of publish order: %d after %d", o.Source.Offset, prev.Source.Offset)
			}
			if o.ReceivedAt.Before(prev.CompletedAt) {
				t.Fatalf("offset %d started at %s before offset %d completed at %s",
					o.Source.Offset, o.ReceivedAt.Format(time.RFC3339Nano), prev.Source.Offset, prev.CompletedAt.Format(time.RFC3339Nano))
			}
		}
		prev = &o
	}
}

func TestE2ETransientFaults(t *testing.T) {
	e := newE2E(t, 3)
	// 20% of calls fail: 503s, isp errors and a few flow-control bans (a ban stops every call of
	// the app key for its duration, so its rate is kept low).
	if err := e.sim.SetFaults(topsim.Faults{ErrorRate: 0.12, ISPRate: 0.075, BanRate: 0.005, BanSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(t)
	// Not icbu-trade: there a 5xx may have been executed, so it is ambiguous, never retried
	// (TestE2EAmbiguousIcbuCall).
	events := slices.DeleteFunc(mix(g, 600, 0, 0), func(ev testEvent) bool { return ev.channel == "icbu-trade" })
	e.publish(events)
	cfg := e.config("e2e-faults")
	cfg.Top.Retry.MaxElapsedTime = 2 * time.Minute
	e.startWorker(cfg)
	got := e.outcomes(events, 120*time.Second)
	e.checkDelivery(events, got, false)

	maxAttempts, retried := 0, 0
	for _, os := range got {
		maxAttempts = max(maxAttempts, os[0].Attempts)
		if os[0].Attempts > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Error("no event was retried under 20% injected faults")
	}
	// Retries are bounded by the backoff's max elapsed time; with these intervals no event
	// should need more than a handful of attempts.
	if maxAttempts > 30 {
		t.Errorf("an event took %d attempts, want retries bounded", maxAttempts)
	}
	s := e.sim.Stats()
	t.Logf("retried %d of %d events, max attempts %d, faults %v", retried, len(events), maxAttempts, s.Faults)
}

func TestE2ERedisOutage(t *testing.T) {
	e := newE2E(t, 3)
	g := newEventGen(t)
	events := mix(g, 1500, 0, 0)
	e.startWorker(e.config("e2e-redis"))
	e.publish(events[:500])
	waitCount(t, e, 100, 60*time.Second)

	e.redis.Stop()
	e.publish(events[500:])
	time.Sleep(5 * time.Second)
	restarted := time.Now()
	e.redis.Restart()

	// Fail closed: no event published while Redis was down reached the gateway before Redis was
	// back (calls claimed before the stop may still have finished meanwhile).
	late := map[string]bool{}
	for _, ev := range events[500:] {
		late[e.platformKey(ev)] = true
	}
	e.mu.Lock()
	for k, times := range e.successes {
		if late[k] && times[0].Before(restarted) {
			t.Errorf("%s reached the gateway at %s while Redis was down", k, times[0].Format("15:04:05.000"))
		}
	}
	e.mu.Unlock()

	got := e.outcomes(events, 120*time.Second)
	// The restarted Redis is empty (no persistence): an event in flight across the outage may
	// publish its outcome twice, but the platform still sees each key succeed once.
	e.checkDelivery(events, got, true)
}

func TestE2EKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat not found: run .ci/deps (apt-get install kcat)")
	}
	e := newE2E(t, 1)
	e.startWorker(e.config("e2e-kcat"))
	ev := newEventGen(t).valid("omni-saas", "kcat")
	ch, _ := e.registry.ByID("omni-saas")
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cmd := exec.Command(kcat, "-b", e.broker.Addr(), "-t", ch.Topic, "-P", "-k", ev.key, "-H", "traceparent="+tp)
	cmd.Stdin = strings.NewReader(string(ev.value) + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}
	var out []byte
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err = exec.Command(kcat, "-b", e.broker.Addr(), "-C", "-t", "orders.results", "-o", "beginning", "-e", "-q",
			"-f", "%k\t%h\t%s\n").CombinedOutput()
		if err != nil {
			t.Fatalf("kcat consume: %v\n%s", err, out)
		}
		if len(strings.TrimSpace(string(out))) > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	line := strings.TrimSpace(string(out))
	parts := strings.SplitN(line, "\t", 3)
	if len(parts) != 3 {
		t.Fatalf("kcat read %q, want key, headers and an outcome", line)
	}
	if parts[0] != ev.key {
		t.Errorf("outcome key %q, want the idempotency key %q", parts[0], ev.key)
	}
	if !strings.Contains(parts[1], "ordersync-channel=omni-saas") || !strings.Contains(parts[1], "traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-") {
		t.Errorf("outcome headers %q, want ordersync-channel and a traceparent continuing the upstream trace", parts[1])
	}
	var o dispatch.Outcome
	if err := json.Unmarshal([]byte(parts[2]), &o); err != nil {
		t.Fatalf("outcome %q: %v", parts[2], err)
	}
	if o.Status != dispatch.StatusSucceeded || o.EventID != ev.eventID || o.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("outcome %+v: want succeeded, event %s, trace 4bf92f…", o, ev.eventID)
	}
}

func TestE2ECrashRecovery(t *testing.T) {
	e := newE2E(t, 3)
	if err := e.sim.SetFaults(topsim.Faults{Latency: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(t)
	events := mix(g, 3000, 5, 2)
	e.publish(events)
	cfg := e.config("e2e-crash")

	var crashes []time.Time
	for i := 0; i < 3; i++ {
		c := e.startChild(cfg)
		// Let it get into the stream, then kill it without warning.
		waitCount(t, e, 300*(i+1), 60*time.Second)
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-c.done
		crashes = append(crashes, time.Now())
	}
	c := e.startChild(cfg)
	got := e.outcomes(events, 120*time.Second)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	e.checkDelivery(events, got, true, crashes...)
}

func TestE2ERebalance(t *testing.T) {
	e := newE2E(t, 4)
	if err := e.sim.SetFaults(topsim.Faults{Latency: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(t)
	events := mix(g, 2000, 5, 2)
	e.publish(events)
	cfg := e.config("e2e-rebalance")
	a := e.startWorker(cfg)
	e.startWorker(cfg)
	waitCount(t, e, 400, 60*time.Second)
	if err := a.stop(); err != nil {
		t.Fatalf("stop first worker: %v", err)
	}
	got := e.outcomes(events, 120*time.Second)
	e.checkDelivery(events, got, true)
	waitCommitted(t, e, "e2e-rebalance", 4, len(events))
	e.checkCommittedHaveOutcomes("e2e-rebalance", 4)
}

func TestE2EGracefulShutdown(t *testing.T) {
	e := newE2E(t, 3)
	if err := e.sim.SetFaults(topsim.Faults{Latency: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(t)
	events := mix(g, 3000, 0, 0)
	e.publish(events)
	cfg := e.config("e2e-sigterm")
	c := e.startChild(cfg)
	waitCount(t, e, 300, 60*time.Second)

	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("worker exited with %v after SIGTERM\n%s", c.err, c.logs.String())
		}
	case <-time.After(cfg.Worker.ShutdownTimeout + 5*time.Second):
		t.Fatalf("worker still running %s after SIGTERM (shutdown_timeout %s)", time.Since(start), cfg.Worker.ShutdownTimeout)
	}
	if d := time.Since(start); d > cfg.Worker.ShutdownTimeout {
		t.Errorf("shutdown took %s, want within %s", d, cfg.Worker.ShutdownTimeout)
	}
	// Offsets were committed for every published outcome, and never past one.
	results, err := e.broker.ReadAll(context.Background(), "orders.results", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	finished := map[string]map[int]int64{}
	for _, m := range results {
		var o dispatch.Outcome
		_ = json.Unmarshal(m.Value, &o)
		if finished[o.Source.Topic] == nil {
			finished[o.Source.Topic] = map[int]int64{}
		}
		finished[o.Source.Topic][o.Source.Partition]++
	}
	committed := e.committed("e2e-sigterm", 3)
	for topic, offs := range committed {
		for p, off := range offs {
			if n := finished[topic][p]; off < 0 && n > 0 || off >= 0 && off != n {
				t.Errorf("%s/%d: committed %d with %d outcomes published, want the commit to cover exactly the published outcomes", topic, p, off, n)
			}
		}
	}
	e.checkCommittedHaveOutcomes("e2e-sigterm", 3)
}

// waitCount waits until the results topic holds at least n records.
func waitCount(t *testing.T, e *e2e, n int, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+10*time.Second)
	defer cancel()
	msgs, err := e.broker.ReadAll(ctx, "orders.results", n, wait)
	if err != nil || len(msgs) < n {
		t.Fatalf("results topic holds %d records, want ≥ %d (err %v)", len(msgs), n, err)
	}
}

// waitCommitted waits until the group's commits cover n events across the channel topics.
func waitCommitted(t *testing.T, e *e2e, group string, partitions, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var sum int64
		for _, offs := range e.committed(group, partitions) {
			for _, o := range offs {
				sum += max(o, 0)
			}
		}
		if sum >= int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("commits cover %d events, want %d", sum, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
