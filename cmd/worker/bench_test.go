package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// BenchmarkWorker measures the worker as a process of its own — configured only through
// ORDERSYNC_* variables, as users run it — draining a backlog from kfake over TCP (6 partitions
// per topic), with a real redis-server and the simulator over HTTP, at simulated API latencies
// of 0, 20 and 100 ms and worker.max_in_flight 1 (one event at a time: what a fetch → call →
// commit loop gets), 64 and the default. In the same run it measures a pass-through ceiling (the
// same consume → decode → publish path with dedupe and the gateway call switched off) and, unless
// BENCH_BACKLOG=0, the worker's peak memory while it drains a 500,000-event backlog.
//
// Per case, from the worker process and the outcomes themselves:
//   - events/s: events ÷ (last outcome − first event taken);
//   - p50/p99: per event, received_at → the Kafka timestamp of its outcome record (decode, claim,
//     call, complete and the produce, batching included; the time in the backlog left out);
//   - CPU µs/event: the worker process's user+system CPU (/proc/<pid>/stat) from its first
//     outcome to its last, per event in between — start-up and group join left out;
//   - Redis round trips/event: redis-server's total_reads_processed over the same window;
//   - peak RSS: the worker process's VmHWM.
//
// BENCH_SCALE (default 1) scales every backlog (CI runs a tiny one to check the benchmark runs);
// BENCH_REPORT=path writes the tables as Markdown (make bench writes BENCHMARKS.md).
func BenchmarkWorker(b *testing.B) {
	scale := 1.0
	if s := os.Getenv("BENCH_SCALE"); s != "" {
		var err error
		if scale, err = strconv.ParseFloat(s, 64); err != nil || scale <= 0 {
			b.Fatalf("BENCH_SCALE=%q: want a positive number", s)
		}
	}
	n := func(events int) int { return max(int(float64(events)*scale), 20) }
	def := config.Default().Worker.MaxInFlight
	// Backlogs: about ten seconds per case at the rates expected, so that the first seconds (the
	// connections opening, the goroutines starting) weigh little in the per-event figures.
	cases := []benchCase{
		{latency: 0, maxInFlight: 1, events: n(2500)},
		{latency: 0, maxInFlight: 64, events: n(40000)},
		{latency: 0, maxInFlight: def, events: n(60000)},
		{latency: 20 * time.Millisecond, maxInFlight: 1, events: n(400)},
		{latency: 20 * time.Millisecond, maxInFlight: 64, events: n(25000)},
		{latency: 20 * time.Millisecond, maxInFlight: def, events: n(60000)},
		{latency: 100 * time.Millisecond, maxInFlight: 1, events: n(100)},
		{latency: 100 * time.Millisecond, maxInFlight: 64, events: n(6000)},
		{latency: 100 * time.Millisecond, maxInFlight: def, events: n(40000)},
		{passThrough: true, maxInFlight: def, events: n(150000)},
	}
	backlog := n(500_000)
	if v := os.Getenv("BENCH_BACKLOG"); v != "" {
		var err error
		if backlog, err = strconv.Atoi(v); err != nil {
			b.Fatalf("BENCH_BACKLOG=%q: want a number of events", v)
		}
	}
	if backlog > 0 {
		cases = append(cases, benchCase{backlog: true, maxInFlight: def, events: backlog})
	}
	results := map[benchCase]benchResult{}
	for _, c := range cases {
		b.Run(c.name(), func(b *testing.B) {
			var r benchResult
			for range b.N {
				r = benchRun(b, c)
			}
			b.ReportMetric(r.rate, "events/s")
			b.ReportMetric(r.cpuPerEvent, "cpu-µs/event")
			b.ReportMetric(r.redisPerEvent, "redis-rt/event")
			b.ReportMetric(float64(r.peakKiB)/1024, "peak-MiB")
			if !c.backlog {
				b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
			}
			results[c] = r
		})
	}
	report := benchReport(cases, results)
	fmt.Fprint(os.Stdout, "\n"+report)
	if path := os.Getenv("BENCH_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

type benchCase struct {
	latency     time.Duration // simulator latency on every call
	maxInFlight int
	events      int
	passThrough bool // dedupe and the gateway call switched off
	backlog     bool // the memory case: outcomes are counted, not read back
}

func (c benchCase) name() string {
	switch {
	case c.passThrough:
		return "pass-through"
	case c.backlog:
		return "backlog=" + strconv.Itoa(c.events)
	}
	return fmt.Sprintf("latency=%s/max_in_flight=%d", fmtMS(c.latency), c.maxInFlight)
}

type benchResult struct {
	events        int
	rate          float64 // events/s
	p50, p99      time.Duration
	cpuPerEvent   float64 // µs
	redisPerEvent float64 // round trips
	peakKiB       int64
}

// passThroughEnv makes a child worker replace its pipeline with passThrough.
const passThroughEnv = "E2E_PASSTHROUGH"

// passThrough is the benchmark's ceiling processor: the worker's consume → decode → publish path
// without dedupe or a gateway call. Each event is decoded and checked as the pipeline does and
// gets a succeeded outcome.
type passThrough struct {
	registry *dispatch.Registry
	results  string
}

func newPassThrough(cfg config.Config, _ consumer.Processor) consumer.Processor {
	reg, err := dispatch.NewRegistry(cfg.ChannelTopics())
	if err != nil {
		panic(err) // the worker built the same registry a moment ago
	}
	return &passThrough{registry: reg, results: cfg.Kafka.ResultsTopic}
}

func (p *passThrough) Process(_ context.Context, m kafka.Message) (consumer.Result, error) {
	now := time.Now().UTC()
	ch, _ := p.registry.ByTopic(m.Topic)
	o := dispatch.Outcome{Channel: ch.ID, Method: ch.Method, Status: dispatch.StatusSucceeded, Attempts: 1,
		Source: dispatch.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, ReceivedAt: now}
	env, err := dispatch.DecodeEnvelope(m.Value, dispatch.DefaultMaxBytes)
	if err == nil {
		o.EventID = env.EventID
		var prep *dispatch.Prepared
		if prep, err = ch.Prepare(env); err == nil {
			o.IdempotencyKey = prep.IdempotencyKey
		}
	}
	if err != nil {
		o.Status, o.Error = dispatch.StatusRejected, dispatch.ErrorFromValidation(err)
	}
	o.CompletedAt = time.Now().UTC()
	v, err := json.Marshal(o)
	if err != nil {
		return consumer.Result{}, err
	}
	return consumer.Result{Records: []kafka.Message{{Topic: p.results, Key: []byte(o.IdempotencyKey), Value: v,
		Headers: []kafka.Header{{Key: dispatch.HeaderChannel, Value: []byte(ch.ID)}}}}}, nil
}

// benchRun publishes c's backlog into a fresh world, drains it with a fresh worker process and
// measures it.
func benchRun(b *testing.B, c benchCase) benchResult {
	b.StopTimer()
	e := newE2E(b, 6)
	e.unrecorded = true
	if err := e.sim.SetFaults(topsim.Faults{Latency: c.latency}); err != nil {
		b.Fatal(err)
	}
	g := newEventGen(b)
	ids := dispatch.ChannelIDs()
	want := make(map[string]bool, c.events)
	const chunk = 20000 // publish in chunks: a 500k backlog is never all in this process at once
	for i := 0; i < c.events; i += chunk {
		events := make([]testEvent, min(chunk, c.events-i))
		for j := range events {
			events[j] = g.valid(ids[(i+j)%len(ids)], "b"+strconv.Itoa(i+j))
			if !c.backlog {
				want[events[j].eventID] = true
			}
		}
		e.publish(events)
	}

	cfg := e.config("bench")
	cfg.Worker.MaxInFlight = c.maxInFlight
	// Production fetch, commit and log settings: the harness shortens them for quick tests.
	def := config.Default()
	cfg.Kafka.MaxWait, cfg.Kafka.CommitInterval = def.Kafka.MaxWait, def.Kafka.CommitInterval
	cfg.Log = def.Log
	cfg.Worker.ShutdownTimeout = def.Worker.ShutdownTimeout
	var env []string
	if c.passThrough {
		env = append(env, passThroughEnv+"=1")
	}
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr()})
	defer rdb.Close()

	logs := &tailBuffer{max: 64 << 10}
	b.StartTimer()
	w := e.startChildWith(cfg, logs, env...)
	pid := w.cmd.Process.Pid
	var cpu0 time.Duration
	var reads0 int64
	var done0 int64
	firstAt := time.Time{}
	client := &kafka.Client{Addr: kafka.TCP(e.broker.Addr()), Timeout: 5 * time.Second}
	progressed, last := time.Now(), int64(0)
	for {
		written := resultsWritten(b, client)
		now := time.Now()
		if written > 0 && firstAt.IsZero() {
			firstAt, done0, cpu0, reads0 = now, written, procCPU(b, pid), redisReads(b, rdb)
		}
		if written >= int64(c.events) {
			break
		}
		if written > last {
			last, progressed = written, now
		}
		if now.Sub(progressed) > stallAfter {
			b.Fatalf("%s: worker stalled: no new outcome for %s with %d of %d written; worker log tail:\n%s",
				c.name(), stallAfter, written, c.events, tail(logs.String(), 10))
		}
		select {
		case <-w.done:
			b.Fatalf("%s: worker exited: %v\n%s", c.name(), w.err, tail(logs.String(), 10))
		case <-time.After(20 * time.Millisecond):
		}
	}
	doneAt := time.Now()
	cpu, reads := procCPU(b, pid)-cpu0, redisReads(b, rdb)-reads0
	peak := procStatus(pid, "VmHWM")
	b.StopTimer()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	<-w.done

	// Per event between the first outcome and the last; a backlog drained before the first look
	// (a tiny one) has no such window and reports NaN.
	between := float64(int64(c.events) - done0)
	r := benchResult{events: c.events, peakKiB: peak, cpuPerEvent: math.NaN(), redisPerEvent: math.NaN(), rate: math.NaN()}
	if between > 0 {
		r.cpuPerEvent = float64(cpu.Microseconds()) / between
		r.redisPerEvent = float64(reads) / between
		r.rate = between / doneAt.Sub(firstAt).Seconds()
	}
	if c.backlog {
		return r
	}
	// Read the outcomes back: every event succeeded once; the latencies and the drain rate.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs, err := e.broker.ReadAll(ctx, "orders.results", c.events, 0)
	if err != nil {
		b.Fatalf("read results: %v", err)
	}
	var first, lastOut time.Time
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
		if m.Time.After(lastOut) {
			lastOut = m.Time
		}
	}
	if len(want) > 0 {
		b.Fatalf("%d of %d events have no outcome", len(want), c.events)
	}
	if s := e.sim.Stats(); !c.passThrough && s.Succeeded != c.events {
		b.Fatalf("simulator saw %d successful calls, want %d", s.Succeeded, c.events)
	}
	slices.Sort(lats)
	r.p50, r.p99 = percentile(lats, 50), percentile(lats, 99)
	r.rate = float64(c.events) / lastOut.Sub(first).Seconds()
	return r
}

// stallAfter is how long benchRun waits for the next outcome before declaring the worker stuck.
const stallAfter = 15 * time.Second

// resultsWritten is the number of records on orders.results (the sum of its end offsets).
func resultsWritten(b *testing.B, client *kafka.Client) int64 {
	parts := make([]kafka.OffsetRequest, 6)
	for i := range parts {
		parts[i] = kafka.LastOffsetOf(i)
	}
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
	return sum
}

// procCPU is the user+system CPU time process pid has used.
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which is in parentheses and may hold spaces): utime is the
	// 14th field of the line, stime the 15th, in clock ticks (USER_HZ, 100 on Linux).
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// procStatus reads a "<field>: N kB" line of /proc/<pid>/status, in KiB (-1 if absent).
func procStatus(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib
		}
	}
	return -1
}

// redisReads is redis-server's count of reads from clients: one per request or pipelined batch it
// received, so a round-trip count.
func redisReads(b *testing.B, rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_reads_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n - 1 // this INFO
		}
	}
	b.Fatal("redis-server reports no total_reads_processed")
	return 0
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

// tailBuffer keeps the last max bytes written to it: a worker's logs without holding them all.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// benchReport renders the results as Markdown: the machine, the drain table with every figure
// also as a ratio to the pass-through ceiling, the speed-up over one event at a time, and the
// backlog's memory.
func benchReport(cases []benchCase, results map[benchCase]benchResult) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# ordersync benchmarks\n\nGenerated by `make bench` (`go test -run '^$' -bench BenchmarkWorker ./cmd/worker`) on %s.\n\n",
		time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&sb, "Machine: %s, %d CPUs, %s. The worker runs as a process of its own, configured only through\n"+
		"`ORDERSYNC_*` variables with the defaults; kfake (6 partitions per topic), the simulator and this benchmark\n"+
		"share the machine with it, and so does redis-server. Figures are from one run; on a shared machine they vary\n"+
		"by ±10%%.\n\n", cpuModel(), runtime.NumCPU(), runtime.Version())
	var ceiling *benchResult
	for _, c := range cases {
		if r, ok := results[c]; ok && c.passThrough {
			ceiling = &r
		}
	}
	sb.WriteString("## Drain\n\n")
	sb.WriteString("| API latency | max_in_flight | events | events/s | × one at a time | % of ceiling | p50 ms | p99 ms | worker CPU µs/event | Redis round trips/event | peak RSS MiB |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	seq := map[time.Duration]float64{}
	for _, c := range cases {
		if r, ok := results[c]; ok && c.maxInFlight == 1 && !c.passThrough && !c.backlog {
			seq[c.latency] = r.rate
		}
	}
	for _, c := range cases {
		r, ok := results[c]
		if !ok || c.backlog {
			continue
		}
		lat, speedup, pct := fmtMS(c.latency), "", ""
		if c.passThrough {
			lat = "pass-through"
		}
		if s := seq[c.latency]; s > 0 && !c.passThrough {
			speedup = fmt.Sprintf("%.1f×", r.rate/s)
		}
		if ceiling != nil {
			pct = fmt.Sprintf("%.1f%%", 100*r.rate/ceiling.rate)
		}
		fmt.Fprintf(&sb, "| %s | %d | %d | %.0f | %s | %s | %.1f | %.1f | %s | %s | %.0f |\n", lat, c.maxInFlight, r.events, r.rate,
			speedup, pct, float64(r.p50.Microseconds())/1000, float64(r.p99.Microseconds())/1000, orDash(r.cpuPerEvent, "%.0f"),
			orDash(r.redisPerEvent, "%.2f"), float64(r.peakKiB)/1024)
	}
	sb.WriteString("\nevents/s: events ÷ (last outcome − first event taken). p50/p99: an event's time from being taken off Kafka\n" +
		"to its outcome record being written (decode, claim, call, complete, produce). Worker CPU: the worker process's\n" +
		"user+system time from its first outcome to its last, per event. Redis round trips: redis-server's\n" +
		"total_reads_processed over the same window, per event. The pass-through ceiling is the same worker with\n" +
		"dedupe and the gateway call switched off (consume → decode → publish).\n")
	for _, c := range cases {
		if r, ok := results[c]; ok && c.backlog {
			fmt.Fprintf(&sb, "\n## Backlog\n\n%d events already on the topics, API latency 0 ms, max_in_flight %d: drained at %.0f events/s "+
				"with a worker peak RSS of %.0f MiB (goal: < 256 MiB), %.0f µs CPU and %.2f Redis round trips per event.\n",
				r.events, c.maxInFlight, r.rate, float64(r.peakKiB)/1024, r.cpuPerEvent, r.redisPerEvent)
		}
	}
	if sizes := binarySizes(); sizes != "" {
		sb.WriteString("\n## Binary\n\n" + sizes)
	}
	return sb.String()
}

// orDash formats v, or "—" when it is NaN (not measured).
func orDash(v float64, format string) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf(format, v)
}

// binarySizes builds the worker as `make static` does (without the development broker and Redis
// emulator) and as `go build` does, and reports both sizes.
func binarySizes() string {
	dir, err := os.MkdirTemp("", "ordersync-size")
	if err != nil {
		return ""
	}
	defer os.RemoveAll(dir)
	size := func(name string, args ...string) (int64, error) {
		out := dir + "/" + name
		cmd := exec.Command("go", append(append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", out}, args...), ".")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%v: %s", err, msg)
		}
		st, err := os.Stat(out)
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	prod, err := size("prod", "-tags", "nodev")
	if err != nil {
		return fmt.Sprintf("could not build the production binary: %v\n", err)
	}
	full, err := size("full")
	if err != nil {
		return fmt.Sprintf("could not build the binary: %v\n", err)
	}
	return fmt.Sprintf("`make static` (production image, `-tags nodev`, no `worker dev`): %.1f MiB. `go build` (with `worker dev`: "+
		"the in-process broker and Redis): %.1f MiB. Both stripped (`-ldflags=-s -w`).\n", float64(prod)/(1<<20), float64(full)/(1<<20))
}

// cpuModel is the CPU's model name from /proc/cpuinfo.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
