package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	_ "net/http/pprof" // E2E_PPROF
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/internal/telemetry"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// The end-to-end tests run the whole worker — in process through serve, or as a child process of
// the test binary — against kfake over TCP, a real redis-server and the simulator over HTTP.

const (
	e2eAppKey  = "e2e-app-key"
	e2eSecret  = "e2e-app-secret-7f3a9c"
	e2eSeller  = "demo"
	e2eSession = "e2e-session-key-51d0be"
	// childEnv makes TestMain run main() instead of the tests: the crash and shutdown tests start
	// the worker as a real process this way, without building a second binary.
	childEnv = "E2E_ORDERSYNC_CHILD" // not ORDERSYNC_*: those are configuration keys
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if addr := os.Getenv("E2E_PPROF"); addr != "" {
			// Profiling a child worker while a test drives it: E2E_PPROF=127.0.0.1:6060.
			go func() { _ = http.ListenAndServe(addr, nil) }()
		}
		if os.Getenv(passThroughEnv) == "1" {
			testHooks = &hooks{processor: newPassThrough}
		}
		main()
		return
	}
	os.Exit(m.Run())
}

// e2e is one test's world: broker, Redis, simulator.
type e2e struct {
	t        testing.TB
	broker   *kafkatest.Broker
	redis    *redistest.Server
	sim      *topsim.Sim
	simURL   string
	registry *dispatch.Registry
	dir      string

	mu        sync.Mutex
	successes map[string][]time.Time // "<method> <key>" → when the simulator answered success
	calls     []time.Time            // when each gateway call arrived
	// unrecorded turns recordSuccesses into a plain pass-through (benchmarks: it costs CPU).
	unrecorded bool
	// answer, when set, rewrites the simulator's answer to a call before the worker gets it.
	answer func(params url.Values, body []byte) []byte
}

// newE2E starts the world of one test; opts configure the broker (e.g. a higher
// message.max.bytes with kafkatest.WithBrokerConfigs, TLS, SASL).
func newE2E(t testing.TB, partitions int32, opts ...kafkatest.Option) *e2e {
	t.Helper()
	reg, err := dispatch.NewRegistry(nil)
	if err != nil {
		t.Fatal(err)
	}
	topics := append(reg.Topics(), "orders.results", "orders.dlq")
	e := &e2e{t: t, registry: reg, dir: t.TempDir(), successes: map[string][]time.Time{}}
	e.broker = kafkatest.StartWith(t, partitions, topics, opts...)
	e.redis = redistest.Start(t)
	e.sim, err = topsim.New(topsim.Config{AppKey: e2eAppKey, AppSecret: e2eSecret, Sessions: []string{e2eSession}, Rules: reg, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.sim.Close)
	srv := httptest.NewServer(http.HandlerFunc(e.recordSuccesses))
	t.Cleanup(srv.Close)
	e.simURL = srv.URL + "/router/rest"
	if err := os.WriteFile(filepath.Join(e.dir, "sessions.yaml"), []byte(e2eSeller+": "+e2eSession+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// recordSuccesses serves the simulator and notes when each (method, key) was answered with
// success, so tests can tell a repeat across a crash from a repeat within one worker's life.
func (e *e2e) recordSuccesses(w http.ResponseWriter, r *http.Request) {
	if e.unrecorded {
		e.sim.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/router/rest" {
		e.mu.Lock()
		e.calls = append(e.calls, time.Now())
		e.mu.Unlock()
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	e.sim.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	form, err := url.ParseQuery(string(body))
	answer := rec.Body.Bytes()
	if e.answer != nil && err == nil {
		answer = e.answer(form, answer)
		w.Header().Del("Content-Length")
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(answer)
	if err != nil || rec.Code != http.StatusOK || bytes.Contains(rec.Body.Bytes(), []byte(`"error_response"`)) {
		return
	}
	params := map[string]string{}
	for k := range form {
		params[k] = form.Get(k)
	}
	key, err := e.registry.CheckParams(params["method"], params)
	if err != nil {
		return
	}
	e.mu.Lock()
	e.successes[params["method"]+" "+key] = append(e.successes[params["method"]+" "+key], time.Now())
	e.mu.Unlock()
}

// platformKey is the "<method> <key>" under which recordSuccesses notes ev's calls: the key the
// platform de-duplicates on, derived from the parameters the worker sends.
func (e *e2e) platformKey(ev testEvent) string {
	e.t.Helper()
	ch, _ := e.registry.ByID(ev.channel)
	env, err := dispatch.DecodeEnvelope(ev.value, dispatch.DefaultMaxBytes)
	if err != nil {
		e.t.Fatal(err)
	}
	prep, err := ch.Prepare(env)
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := e.registry.CheckParams(ch.Method, prep.Request.Params)
	if err != nil {
		e.t.Fatal(err)
	}
	return ch.Method + " " + key
}

// config is a valid worker configuration for this world, tuned for fast tests.
func (e *e2e) config(group string) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{e.broker.Addr()}
	cfg.Kafka.GroupID = group
	cfg.Kafka.MaxWait = 50 * time.Millisecond
	cfg.Kafka.CommitInterval = 100 * time.Millisecond
	cfg.Kafka.SessionTimeout = 2 * time.Second
	cfg.Kafka.RebalanceTimeout = 3 * time.Second
	cfg.Kafka.HeartbeatInterval = 200 * time.Millisecond
	cfg.Redis.Addrs = []string{e.redis.Addr()}
	cfg.Redis.DialTimeout = 500 * time.Millisecond
	cfg.Top.GatewayURL = e.simURL
	cfg.Top.AppKey = e2eAppKey
	cfg.Top.AppSecret = e2eSecret
	cfg.Top.SessionsFile = filepath.Join(e.dir, "sessions.yaml")
	cfg.Top.DefaultSeller = e2eSeller
	cfg.Top.Timeout = 2 * time.Second
	cfg.Top.Retry.InitialInterval = 5 * time.Millisecond
	cfg.Top.Retry.MaxInterval = 100 * time.Millisecond
	cfg.Top.Retry.MaxElapsedTime = 30 * time.Second
	cfg.Worker.Lease = 3 * time.Second
	cfg.Worker.ShutdownTimeout = 15 * time.Second
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Log.Format = "json"
	return cfg
}

// environ renders every key of cfg as the ORDERSYNC_* variables a child worker is configured with.
func (e *e2e) environ(cfg config.Config) []string { return config.Environ(cfg) }

// worker is a running in-process worker.
type worker struct {
	stop func() error
	logs *syncBuffer
	addr string
}

// startWorker runs serve in process until stop is called (or the test ends).
func (e *e2e) startWorker(cfg config.Config) *worker {
	e.t.Helper()
	return e.startWorkerWith(cfg, nil)
}

// startWorkerWith is startWorker with telemetry options (span exporters for tests); nil = the
// defaults.
func (e *e2e) startWorkerWith(cfg config.Config, topts *telemetry.Options) *worker {
	e.t.Helper()
	sessions, err := config.LoadSessions(cfg.Top.SessionsFile)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{logs: &syncBuffer{}}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	h := &hooks{ready: func(a string) { ready <- a }, telemetry: topts}
	go func() { done <- serve(ctx, cfg, sessions, w.logs, h) }()
	select {
	case w.addr = <-ready:
	case err := <-done:
		cancel()
		e.t.Fatalf("worker exited at start: %v\n%s", err, w.logs.String())
	case <-time.After(30 * time.Second):
		cancel()
		e.t.Fatal("worker not ready within 30s")
	}
	var once sync.Once
	var stopErr error
	w.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(cfg.Worker.ShutdownTimeout + 10*time.Second):
				stopErr = fmt.Errorf("worker did not stop within %s", cfg.Worker.ShutdownTimeout+10*time.Second)
			}
		})
		return stopErr
	}
	e.t.Cleanup(func() {
		if err := w.stop(); err != nil {
			e.t.Errorf("stop worker: %v", err)
		}
		if e.t.Failed() && os.Getenv("E2E_LOGS") != "" {
			e.t.Logf("worker logs:\n%s", w.logs.String())
		}
	})
	return w
}

// child is a worker running as a separate process.
type child struct {
	cmd  *exec.Cmd
	logs logSink
	done chan struct{} // closed when the process has exited; err is then set
	err  error
}

// startChild runs the worker as a child process configured only through ORDERSYNC_* variables.
func (e *e2e) startChild(cfg config.Config) *child {
	e.t.Helper()
	return e.startChildWith(cfg, &syncBuffer{})
}

// startChildWith is startChild with the worker's output going to logs and extra environment
// variables (not configuration: those come from cfg).
func (e *e2e) startChildWith(cfg config.Config, logs logSink, extraEnv ...string) *child {
	e.t.Helper()
	cmd := exec.Command(os.Args[0], "run")
	cmd.Env = append(append(append(os.Environ(), childEnv+"=1"), e.environ(cfg)...), extraEnv...)
	c := &child{cmd: cmd, logs: logs, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		if e.t.Failed() && os.Getenv("E2E_LOGS") != "" {
			e.t.Logf("worker logs:\n%s", c.logs.String())
		}
	})
	return c
}

// logSink collects a worker's output.
type logSink interface {
	io.Writer
	String() string
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// testEvent is one published event and the outcome status it must get.
type testEvent struct {
	channel string
	eventID string
	key     string // message key (the idempotency key for valid events)
	value   []byte
	want    string // expected outcome status
}

// eventGen makes distinct valid events per channel from the seed examples.
type eventGen struct {
	t     testing.TB
	seeds map[string]map[string]any
	n     int
}

func newEventGen(t testing.TB) *eventGen {
	g := &eventGen{t: t, seeds: map[string]map[string]any{}}
	for id, v := range dispatch.SeedEvents() {
		var m map[string]any
		if err := json.Unmarshal(v, &m); err != nil {
			t.Fatal(err)
		}
		g.seeds[id] = m
	}
	return g
}

// valid returns a new event for channel with a fresh idempotency key derived from tag.
func (g *eventGen) valid(channel, tag string) testEvent {
	g.n++
	env := deepCopy(g.seeds[channel])
	req := env["request"].(map[string]any)
	eventID := fmt.Sprintf("evt-%s-%d", tag, g.n)
	env["event_id"] = eventID
	var key string
	switch channel {
	case "tmall-aliauto":
		key = "AUTO-" + tag
		req["sync_single_order_req"].(map[string]any)["idempotent_id"] = key
	case "omni-saas":
		key = "REQ-" + tag
		req["request_no"] = key
	case "icbu-trade":
		key = "ICBU-" + tag
		env["idempotency_key"] = key
		req["param_order_create"].(map[string]any)["remark"] = "order " + tag
	case "mos-haiding":
		key = "refund:RF-" + tag
		req["order_sync_request"].(map[string]any)["refund_order"].(map[string]any)["out_refund_no"] = "RF-" + tag
	case "diantao-tripartite":
		key = "DT-" + tag + ":true"
		req["tripartite_order_info_dto"].(map[string]any)["out_order_id"] = "DT-" + tag
	default:
		g.t.Fatalf("unknown channel %s", channel)
	}
	v, err := json.Marshal(env)
	if err != nil {
		g.t.Fatal(err)
	}
	return testEvent{channel: channel, eventID: eventID, key: key, value: v, want: dispatch.StatusSucceeded}
}

// resend returns ev re-sent under a new event id: same request, so a duplicate.
func (g *eventGen) resend(ev testEvent) testEvent {
	g.n++
	var env map[string]any
	if err := json.Unmarshal(ev.value, &env); err != nil {
		g.t.Fatal(err)
	}
	env["event_id"] = fmt.Sprintf("%s-resent-%d", ev.eventID, g.n)
	v, _ := json.Marshal(env)
	return testEvent{channel: ev.channel, eventID: env["event_id"].(string), key: ev.key, value: v, want: dispatch.StatusDuplicate}
}

// malformed returns an event that breaks its channel's API page.
func (g *eventGen) malformed(channel, tag string) testEvent {
	ev := g.valid(channel, tag)
	var env map[string]any
	_ = json.Unmarshal(ev.value, &env)
	env["request"].(map[string]any)["not_on_the_page"] = true
	ev.value, _ = json.Marshal(env)
	ev.key = ev.eventID
	ev.want = dispatch.StatusRejected
	return ev
}

func deepCopy(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	return c
}

// publish writes events to their channel topics, keyed by their key.
func (e *e2e) publish(events []testEvent) {
	e.t.Helper()
	msgs := make([]kafka.Message, len(events))
	for i, ev := range events {
		ch, _ := e.registry.ByID(ev.channel)
		msgs[i] = kafka.Message{Topic: ch.Topic, Key: []byte(ev.key), Value: ev.value}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		if err := e.broker.Produce(ctx, msgs[:n]...); err != nil {
			e.t.Fatalf("publish: %v", err)
		}
		msgs = msgs[n:]
	}
}

// outcomes waits until every one of events has an outcome on the results topic (duplicates of
// an outcome do not count twice) and returns them by event id.
func (e *e2e) outcomes(events []testEvent, wait time.Duration) map[string][]dispatch.Outcome {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		msgs, err := e.broker.ReadAll(ctx, "orders.results", 0, 0)
		cancel()
		if err != nil {
			e.t.Fatalf("read results: %v", err)
		}
		out := make(map[string][]dispatch.Outcome)
		for _, m := range msgs {
			var o dispatch.Outcome
			if err := json.Unmarshal(m.Value, &o); err != nil {
				e.t.Fatalf("undecodable outcome %s: %v", m.Value, err)
			}
			out[o.EventID] = append(out[o.EventID], o)
		}
		missing := 0
		for _, ev := range events {
			if len(out[ev.eventID]) == 0 {
				missing++
			}
		}
		if missing == 0 {
			return out
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d of %d events have no outcome after %s", missing, len(events), wait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkDelivery asserts the guarantees over a finished run: every event has exactly one
// outcome with the expected status (at least one, all of one status, when allowDup: a crash may
// publish an outcome twice), and the platform saw at most one successful call per key — except
// across a crash: a call in flight when a worker is killed (answered by the platform, not yet
// recorded in Redis) is repeated by the next owner, which cannot know it was made. Such a repeat
// must straddle one of the crash times; the platform's own idempotency key (request_no,
// idempotent_id, ...) makes it harmless, as the simulator's identical platform ids show.
func (e *e2e) checkDelivery(events []testEvent, got map[string][]dispatch.Outcome, allowDup bool, crashes ...time.Time) {
	e.t.Helper()
	// Keys the worker reported ambiguous: the platform does not deduplicate that API, and a re-send
	// after an ambiguous outcome is sent again by design (docs/ARCHITECTURE.md, "Dedupe states": the claim is released so a
	// re-send or a replay can try again).
	ambiguous := map[string]bool{}
	for _, ev := range events {
		for _, o := range got[ev.eventID] {
			if o.Error != nil && o.Error.Kind == dispatch.KindAmbiguous {
				ambiguous[o.IdempotencyKey] = true
				ambiguous[e.platformKey(ev)] = true
			}
		}
	}
	bad := 0
	for _, ev := range events {
		os := got[ev.eventID]
		switch {
		case len(os) == 0:
			e.t.Errorf("event %s (%s) has no outcome", ev.eventID, ev.channel)
			bad++
		case len(os) > 1 && !allowDup:
			e.t.Errorf("event %s has %d outcomes, want 1", ev.eventID, len(os))
			bad++
		default:
			for _, o := range os {
				want := ev.want
				if len(crashes) > 0 && ev.channel == "icbu-trade" && o.Status == dispatch.StatusFailed && o.Error != nil && o.Error.Kind == dispatch.KindAmbiguous {
					// A takeover after a kill: the platform does not deduplicate this API, so the
					// new owner does not call again.
					continue
				}
				if want == dispatch.StatusDuplicate && o.Status == dispatch.StatusSucceeded && ambiguous[o.IdempotencyKey] {
					continue // a re-send after an ambiguous outcome
				}
				if o.Status != want {
					e.t.Errorf("event %s (%s): status %s (error %+v), want %s", ev.eventID, ev.channel, o.Status, o.Error, want)
					bad++
				}
			}
		}
		if bad > 10 {
			e.t.Fatal("too many delivery errors; stopping")
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	repeats := 0
	for key, times := range e.successes {
		if strings.HasPrefix(key, "alibaba.trade.order.create ") && len(times) > 1 && !ambiguous[key] {
			// No platform-side idempotency: not even a crash may make the worker repeat a
			// successful call (only a re-send after the worker said "ambiguous" may).
			e.t.Errorf("platform: %s succeeded %d times, want at most once even across crashes", key, len(times))
			return
		}
		for i := 1; i < len(times); i++ {
			straddles := false
			for _, c := range crashes {
				if times[i-1].Before(c) && !times[i].Before(c) {
					straddles = true
				}
			}
			if !straddles {
				e.t.Errorf("platform: %s succeeded again at %s after %s with no crash in between",
					key, times[i].Format("15:04:05.000"), times[i-1].Format("15:04:05.000"))
				return
			}
			repeats++
		}
	}
	if repeats > 0 {
		e.t.Logf("%d platform call(s) repeated across %d crash(es): calls in flight when a worker was killed", repeats, len(crashes))
	}
}

// committed returns the group's committed offsets per topic and partition.
func (e *e2e) committed(group string, partitions int) map[string]map[int]int64 {
	e.t.Helper()
	out := map[string]map[int]int64{}
	for _, topic := range e.registry.Topics() {
		offs, err := e.broker.CommittedOffsets(context.Background(), group, topic, partitions)
		if err != nil {
			e.t.Fatal(err)
		}
		out[topic] = offs
	}
	return out
}

// checkCommittedHaveOutcomes asserts guarantee 4: below every committed offset, each event has
// an outcome.
func (e *e2e) checkCommittedHaveOutcomes(group string, partitions int) {
	e.t.Helper()
	ctx := context.Background()
	results, err := e.broker.ReadAll(ctx, "orders.results", 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	done := map[string]bool{}
	for _, m := range results {
		var o dispatch.Outcome
		_ = json.Unmarshal(m.Value, &o)
		done[fmt.Sprintf("%s/%d/%d", o.Source.Topic, o.Source.Partition, o.Source.Offset)] = true
	}
	for topic, offs := range e.committed(group, partitions) {
		for p, c := range offs {
			for off := int64(0); off < c; off++ {
				if !done[fmt.Sprintf("%s/%d/%d", topic, p, off)] {
					e.t.Fatalf("%s/%d committed at %d but offset %d has no outcome", topic, p, c, off)
				}
			}
		}
	}
}

// mix makes n events over all channels: dupPct percent re-sent duplicates of earlier events and
// badPct percent malformed, in a deterministic interleaving.
func mix(g *eventGen, n, dupPct, badPct int) []testEvent {
	ids := dispatch.ChannelIDs()
	var events, originals []testEvent
	for i := 0; len(events) < n; i++ {
		ch := ids[i%len(ids)]
		switch {
		case i%100 < badPct:
			events = append(events, g.malformed(ch, "bad"+strconv.Itoa(i)))
		case i%100 < badPct+dupPct && len(originals) > 0:
			events = append(events, g.resend(originals[(i*7)%len(originals)]))
		default:
			ev := g.valid(ch, strconv.Itoa(i))
			originals = append(originals, ev)
			events = append(events, ev)
		}
	}
	return events
}

func countStatus(events []testEvent) map[string]int {
	m := map[string]int{}
	for _, ev := range events {
		m[ev.want]++
	}
	return m
}

// syncBuffer is a goroutine-safe bytes.Buffer for logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// callsBetween counts the gateway calls that arrived in [from, to).
func (e *e2e) callsBetween(from, to time.Time) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.calls {
		if !c.Before(from) && c.Before(to) {
			n++
		}
	}
	return n
}

// stream publishes events from next at rate per second until stop is called, and returns them.
func (e *e2e) stream(rate int, next func(i int) testEvent) (stop func() []testEvent) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []testEvent, 1)
	go func() {
		var sent []testEvent
		defer func() { done <- sent }()
		const tick = 50 * time.Millisecond
		per := max(rate*int(tick)/int(time.Second), 1)
		t := time.NewTicker(tick)
		defer t.Stop()
		for i := 0; ; {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			batch := make([]testEvent, per)
			for j := range batch {
				batch[j] = next(i)
				i++
			}
			msgs := make([]kafka.Message, len(batch))
			for j, ev := range batch {
				ch, _ := e.registry.ByID(ev.channel)
				msgs[j] = kafka.Message{Topic: ch.Topic, Key: []byte(ev.key), Value: ev.value}
			}
			pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := e.broker.Produce(pctx, msgs...)
			pcancel()
			if err != nil {
				e.t.Errorf("stream: %v", err)
				return
			}
			sent = append(sent, batch...)
		}
	}()
	return func() []testEvent {
		cancel()
		return <-done
	}
}

// rssSample is one reading of a process's resident set size.
type rssSample struct {
	at  time.Time
	kib int64
}

// rss samples a process's resident set size (VmRSS) every interval until stop; stop returns the
// samples and the peak (VmHWM), in KiB.
func rss(t testing.TB, pid int, interval time.Duration) (stop func() (samples []rssSample, peak int64)) {
	read := func(field string) int64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return -1
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				return kb
			}
		}
		return -1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []rssSample, 1)
	go func() {
		var samples []rssSample
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			if v := read("VmRSS"); v > 0 {
				samples = append(samples, rssSample{at: time.Now(), kib: v})
			}
			select {
			case <-ctx.Done():
				done <- samples
				return
			case <-tk.C:
			}
		}
	}()
	return func() ([]rssSample, int64) {
		peak := read("VmHWM")
		cancel()
		return <-done, peak
	}
}

// peakBetween is the highest sample in [from, to).
func peakBetween(samples []rssSample, from, to time.Time) int64 {
	var p int64
	for _, s := range samples {
		if !s.at.Before(from) && s.at.Before(to) {
			p = max(p, s.kib)
		}
	}
	return p
}
