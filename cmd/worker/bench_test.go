package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// BenchmarkE2E measures the whole worker — serve in process, kfake over TCP, a real redis-server,
// the simulator over HTTP — draining a backlog at simulated API latencies of 0 and 20 ms, once
// with worker.max_in_flight=1 (one event at a time: what a naive fetch → call → commit loop gets)
// and once with the default 512, and prints a table with the default/sequential ratio.
//
// One iteration (one "op") is a whole run in a fresh world: new broker, redis-server and
// simulator, the backlog published, a fresh worker in a fresh consumer group started, and the
// clock stopped when every outcome is on orders.results. ns/op is that wall time, group join
// included. Each run takes more than the default -benchtime of 1s, so `make bench` runs each
// case once; -benchtime Nx runs N worlds per case and pools their latencies.
//
// Metrics, from the outcomes themselves rather than from polling:
//   - events/s: backlog size ÷ (last outcome written − first event taken), the steady drain rate;
//     the time to join the group is left out (the table shows it as "start").
//   - p50-ms, p99-ms: per event, from received_at (the worker took the event off Kafka and began
//     processing it) to the Kafka timestamp of its outcome record on orders.results (stamped by
//     the producer when the request carrying it is sent; the broker acknowledges it right after).
//     This covers decode, dedupe claim, the gateway call, dedupe complete and the outcome
//     produce, batching included. The time an event waited in the backlog is left out: with a
//     pre-published backlog it measures the backlog's size, not the worker. Kafka timestamps
//     have millisecond resolution, so latencies read up to 1 ms low.
//
// Every outcome must be a success and the simulator must have seen exactly one successful call
// per event. A worker that writes no outcome for 10s fails the run as stalled rather than hanging
// it.
func BenchmarkE2E(b *testing.B) {
	cases := []e2eBenchCase{
		// Backlog sizes: large enough for a stable figure, small enough that the slowest case
		// (20 ms, one at a time: ~40 events/s) stays a few seconds.
		{latency: 0, maxInFlight: 1, events: 500},
		{latency: 0, maxInFlight: 512, events: 5000},
		{latency: 20 * time.Millisecond, maxInFlight: 1, events: 200},
		{latency: 20 * time.Millisecond, maxInFlight: 512, events: 5000},
	}
	results := map[e2eBenchCase]e2eBenchResult{}
	for _, lat := range []time.Duration{0, 20 * time.Millisecond} {
		b.Run("latency="+fmtMS(lat), func(b *testing.B) {
			for _, c := range cases {
				if c.latency != lat {
					continue
				}
				b.Run("max_in_flight="+strconv.Itoa(c.maxInFlight), func(b *testing.B) {
					results[c] = benchDrain(b, c)
				})
			}
		})
	}
	printE2ETable(b, cases, results)
}

type e2eBenchCase struct {
	latency     time.Duration // simulator latency on every call
	maxInFlight int
	events      int // backlog size
}

type e2eBenchResult struct {
	runs     int
	events   int           // over all runs
	rate     float64       // events/s, mean over runs
	p50, p99 time.Duration // pooled over runs
	start    time.Duration // worker start → first event taken, mean over runs
}

// benchDrain runs c b.N times, each in a fresh world, and reports the metrics.
func benchDrain(b *testing.B, c e2eBenchCase) e2eBenchResult {
	var lats []time.Duration
	var rateSum float64
	var startSum time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		r := drainOnce(b, c, i)
		lats = append(lats, r.lats...)
		rateSum += r.rate
		startSum += r.start
	}
	b.StopTimer()
	slices.Sort(lats)
	res := e2eBenchResult{
		runs:   b.N,
		events: len(lats),
		rate:   rateSum / float64(b.N),
		p50:    percentile(lats, 50),
		p99:    percentile(lats, 99),
		start:  startSum / time.Duration(b.N),
	}
	b.ReportMetric(res.rate, "events/s")
	b.ReportMetric(float64(res.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(res.p99.Microseconds())/1000, "p99-ms")
	return res
}

type drainRun struct {
	lats  []time.Duration
	rate  float64
	start time.Duration
}

// drainOnce publishes c.events events into a fresh world, then times a fresh worker (the
// benchmark timer runs from its start until every outcome is on orders.results) and returns
// what the outcomes say. The timer must be stopped on entry; it is stopped on return.
func drainOnce(b *testing.B, c e2eBenchCase, run int) drainRun {
	e := newE2E(b, 3)
	e.unrecorded = true
	if err := e.sim.SetFaults(topsim.Faults{Latency: c.latency}); err != nil {
		b.Fatal(err)
	}
	g := newEventGen(b)
	ids := dispatch.ChannelIDs()
	events := make([]testEvent, c.events)
	want := make(map[string]bool, c.events)
	for i := range events {
		events[i] = g.valid(ids[i%len(ids)], fmt.Sprintf("b%d-%d", run, i))
		want[events[i].eventID] = true
	}
	e.publish(events)

	cfg := e.config(fmt.Sprintf("bench-%s-%d-%d", fmtMS(c.latency), c.maxInFlight, run))
	cfg.Worker.MaxInFlight = c.maxInFlight
	// Production fetch and commit settings: the harness shortens them for quick tests.
	def := config.Default()
	cfg.Kafka.MaxWait, cfg.Kafka.CommitInterval = def.Kafka.MaxWait, def.Kafka.CommitInterval

	// Well beyond the slowest expected drain; a stuck worker fails the benchmark instead of
	// hanging it.
	deadline := 2 * time.Minute
	b.StartTimer()
	begin := time.Now()
	w := e.startWorker(cfg)
	waitResults(b, e.broker, len(events), deadline, w)
	b.StopTimer()
	if err := w.stop(); err != nil {
		b.Errorf("stop worker: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs, err := e.broker.ReadAll(ctx, "orders.results", len(events), 0)
	if err != nil {
		b.Fatalf("read results: %v", err)
	}
	var first, last time.Time
	lats := make([]time.Duration, 0, len(msgs))
	for _, m := range msgs {
		var o dispatch.Outcome
		if err := json.Unmarshal(m.Value, &o); err != nil {
			b.Fatalf("undecodable outcome %s: %v", m.Value, err)
		}
		if !want[o.EventID] {
			b.Fatalf("outcome for %q: not a published event, or a second outcome", o.EventID)
		}
		delete(want, o.EventID)
		if o.Status != dispatch.StatusSucceeded {
			b.Fatalf("event %s: status %s (error %+v), want %s", o.EventID, o.Status, o.Error, dispatch.StatusSucceeded)
		}
		lats = append(lats, m.Time.Sub(o.ReceivedAt))
		if first.IsZero() || o.ReceivedAt.Before(first) {
			first = o.ReceivedAt
		}
		if m.Time.After(last) {
			last = m.Time
		}
	}
	if len(want) > 0 {
		b.Fatalf("%d of %d events have no outcome", len(want), len(events))
	}
	if s := e.sim.Stats(); s.Succeeded != len(events) {
		b.Fatalf("simulator saw %d successful calls, want %d", s.Succeeded, len(events))
	}
	return drainRun{
		lats:  lats,
		rate:  float64(len(events)) / last.Sub(first).Seconds(),
		start: first.Sub(begin),
	}
}

// stallAfter is how long waitResults waits for the next outcome before declaring the worker stuck.
const stallAfter = 10 * time.Second

// waitResults returns once orders.results holds n records. It polls the partitions' end offsets,
// which costs the broker next to nothing, unlike reading the records.
func waitResults(b *testing.B, broker *kafkatest.Broker, n int, wait time.Duration, w *worker) {
	b.Helper()
	client := &kafka.Client{Addr: kafka.TCP(broker.Addr()), Timeout: 5 * time.Second}
	parts := make([]kafka.OffsetRequest, 3)
	for i := range parts {
		parts[i] = kafka.LastOffsetOf(i)
	}
	deadline := time.Now().Add(wait)
	got, progressed := int64(0), time.Now()
	for {
		resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{"orders.results": parts}})
		if err != nil {
			b.Fatalf("list results offsets: %v", err)
		}
		sum := int64(0)
		for _, p := range resp.Topics["orders.results"] {
			if p.Error != nil {
				b.Fatalf("list results offsets: partition %d: %v", p.Partition, p.Error)
			}
			sum += p.LastOffset
		}
		if sum >= int64(n) {
			return
		}
		if sum > got {
			got, progressed = sum, time.Now()
		}
		// Even the slowest case writes an outcome every ~25 ms: a long silence is a stall.
		if time.Since(progressed) > stallAfter {
			b.Fatalf("worker stalled: no new outcome for %s with %d of %d written; worker log tail:\n%s", stallAfter, got, n, tail(w.logs.String(), 5))
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d outcomes after %s; worker log tail:\n%s", got, n, wait, tail(w.logs.String(), 5))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// printE2ETable writes the results as a table, with the default/sequential ratio at each latency
// when both ran in this process.
func printE2ETable(b *testing.B, cases []e2eBenchCase, results map[e2eBenchCase]e2eBenchResult) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nBenchmarkE2E: drain a backlog through the real worker (kfake, redis-server, simulator over HTTP)\n")
	fmt.Fprintf(&sb, "%-10s %-14s %7s %11s %9s %9s %8s\n", "latency", "max_in_flight", "events", "events/s", "p50 ms", "p99 ms", "start s")
	for _, c := range cases {
		r, ok := results[c]
		if !ok {
			continue
		}
		fmt.Fprintf(&sb, "%-10s %-14d %7d %11.0f %9.2f %9.2f %8.2f\n", fmtMS(c.latency), c.maxInFlight, r.events, r.rate,
			float64(r.p50.Microseconds())/1000, float64(r.p99.Microseconds())/1000, r.start.Seconds())
	}
	for _, lat := range []time.Duration{0, 20 * time.Millisecond} {
		var seq, def *e2eBenchResult
		for _, c := range cases {
			if r, ok := results[c]; ok && c.latency == lat {
				switch c.maxInFlight {
				case 1:
					seq = &r
				case config.Default().Worker.MaxInFlight:
					def = &r
				}
			}
		}
		if seq != nil && def != nil {
			fmt.Fprintf(&sb, "latency %s: max_in_flight=%d drains %.1fx as many events/s as max_in_flight=1\n",
				fmtMS(lat), config.Default().Worker.MaxInFlight, def.rate/seq.rate)
		}
	}
	if hwm := vmHWM(); hwm != "" {
		fmt.Fprintf(&sb, "benchmark process peak RSS (VmHWM; worker, broker and simulator, not redis-server): %s\n", hwm)
	}
	fmt.Fprint(os.Stdout, sb.String())
}

// percentile is the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func fmtMS(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

// vmHWM is this process's peak resident set size from /proc, "" where there is none.
func vmHWM() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
