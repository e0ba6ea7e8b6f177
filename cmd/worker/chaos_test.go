package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// The chaos soak (`make chaos`, issue 11): its world, its schedule and what it accepts.
const (
	chaosGroup      = "chaos"
	chaosWorkers    = 3
	chaosPartitions = 4                      // per topic: 20 channel partitions over 3 workers
	chaosBrokerMax  = 16 << 20               // kfake's message.max.bytes: oversized events can be published
	chaosMaxRecord  = 256 << 10              // the workers' kafka.max_record_bytes: large dead letters are reduced
	chaosBigBytes   = 2 << 20                // an oversized event: over worker.max_message_bytes (1 MiB)
	chaosPadBytes   = 400 << 10              // a large event under the limit, whose dead letter is still reduced
	chaosRSSBound   = 256 << 10              // KiB: the memory bound of every worker process
	chaosRaceBound  = 768 << 10              // KiB: the same under the race detector (its shadow memory)
	chaosDrainWait  = 3 * time.Minute        // the longest the backlog may take to get its outcomes
	chaosInFlight   = 5 * time.Second        // how long before a kill an answered call may still be unstored
	chaosReadSlack  = 250 * time.Millisecond // how late the proxy may read a request a dying worker wrote
	chaosKillEvery  = 8 * time.Second        // the shortest gap between two kills (see TestChaos)
	chaosKillJitter = 3 * time.Second        // added at random to each gap
	chaosRedisDown  = 1500 * time.Millisecond
	chaosDefaultHz  = 100 // events per second (CHAOS_RATE)
)

// TestChaos is the bounded soak of `make chaos`. It runs only when CHAOS_DURATION is set (CI runs
// CHAOS_DURATION=45s; the default of `make chaos` is 2m); CHAOS_RATE (events/s, default 100) and
// CHAOS_SEED (the kill schedule and the re-sends; printed in the summary) replay a run's schedule.
//
// The world: kfake with 4 partitions per topic and message.max.bytes 16 MiB (so that oversized events
// can be published), one redis-server without persistence, and the simulator behind a proxy that
// records every call. Three worker processes — children of the test binary, configured only through
// ORDERSYNC_* — share one consumer group, with kafka.max_record_bytes 256 KiB so that the dead
// letters of large events are reduced.
//
// For CHAOS_DURATION events stream in over all five channels: valid ones, re-sends of recent ones
// (duplicates), malformed ones (an unknown request field), undecodable ones (cut JSON, invalid
// UTF-8, nesting over 32), valid events padded to 400 KiB, malformed ones padded to 400 KiB and 2 MiB
// valid-looking events (over worker.max_message_bytes: rejected as too large). Meanwhile:
//
//   - Kills: one worker at random gets SIGKILL every 8–11 s and is restarted 0.2–0.8 s later.
//     kfake resets its join deadline whenever a member joins during a rebalance, so a kill storm can
//     keep the group from ever re-forming (shared/notes/failure-and-throughput.md). The soak spaces
//     its kills beyond one rebalance instead of raising the JoinGroup deadline (the consumer does not
//     expose it): after a kill the group re-forms within session_timeout 3 s + rebalance_timeout 5 s.
//     worker.shutdown_timeout is the least top.timeout 2 s allows (10 s), so a revoked member
//     drains for 1 s plus a call already sent (up to 2 s): under the session timeout, which matters
//     because kafka-go stops heartbeating once a rebalance begins. Only when Redis is down at a
//     revoke can storing an answer (up to 5 s) outlast the session: the member is expelled, its
//     last commit refused, and work it finished is redelivered — identical repeats, checked below.
//   - Redis: killed, kept down 1.5 s and restarted empty at 30% and at 80% of the soak.
//   - The simulator: an app-wide ban longer than top.max_ban_wait at 15% (every channel pauses), an
//     outage — every call HTTP 503, the circuit opens — at 42%, a burst of 5xx (25% HTTP 503, 15%
//     isp.* errors) at 62%, each max(4 s, CHAOS_DURATION/12) long; healthy (2–5 ms) otherwise.
//
// Then the stream stops, the backlog drains (within 3 minutes), the workers get SIGTERM, and:
//
//   - every event has an outcome: exactly one, or repeats after its partition was assigned anew (a
//     worker was killed after publishing, or a rebalance that a kill or restart started redelivered
//     work finished behind an unfinished offset) that are identical — same status, error kind and
//     code, and request id — unless a Redis restart fell between them (the store forgot the key and
//     the redelivery was processed afresh; each outcome must then be allowed on its own), or an
//     ambiguous outcome comes again without a call (its code may then say why: taken over,
//     redelivered). No outcome lacks an event, and every committed offset has an outcome.
//   - statuses: valid events succeeded, re-sends duplicate, every malformed, undecodable or oversized
//     event rejected (validation); icbu-trade events may end failed/ambiguous (a 5xx, or a takeover
//     after a kill). A re-send may have succeeded only if its key had an ambiguous outcome (the claim
//     was released, docs/ARCHITECTURE.md "Dedupe states") or if a Redis restart fell between a completed outcome of its key
//     and its own completion (the emptied store forgot the key: to the worker it is a new event). A valid
//     event may be a duplicate when it came again (redelivered) after a re-send completed its key.
//   - dead letters: exactly the rejected and failed (exhausted, auth, ambiguous) events have one;
//     each fits kafka.max_record_bytes; the oversized and padded ones are reduced (value truncated,
//     ordersync-value-bytes = the original size), all others carry the original value.
//   - platform calls: a (method, key) succeeded twice only when
//     (a) the same event was called again after a kill with the first call in flight — sent before
//     the kill, answered at most 5 s before it or after it — on a channel whose platform
//     deduplicates the key (never on icbu-trade: a takeover of a dead owner's claim does not call);
//     (b) a Redis restart erased what the workers knew between the two calls, and the second call
//     went to another event of the key (a re-send) or to the same event redelivered after its
//     partition was assigned anew — on icbu-trade too, where this creates a second order: the
//     price of a Redis without persistence, which the README rules out for production; or
//     (c) on icbu-trade, the key had an ambiguous outcome (its claim was released, docs/ARCHITECTURE.md "Dedupe states").
//   - memory: every worker process stayed under 256 MiB RSS (768 MiB under the race detector, whose
//     shadow memory multiplies the heap); no worker exited by itself; SIGTERM stops each one
//     cleanly; no secret in the logs.
//
// Two bugs the soak found are reproduced on their own in chaos_findings_test.go.
//
// It prints one summary line. On failure (or with CHAOS_VERBOSE=1) the timeline — kills, restarts,
// phases, each worker's peak RSS, each repeated platform call and why it is allowed — is logged, and
// on failure every worker's log is written to a directory the failure names.
func TestChaos(t *testing.T) {
	if os.Getenv("CHAOS_DURATION") == "" {
		t.Skip("the chaos soak runs only when asked: `make chaos` (CHAOS_DURATION=2m), or " +
			"CHAOS_DURATION=45s go test -count=1 -v -run '^TestChaos$' ./cmd/worker/")
	}
	soak := durationEnv(t, "CHAOS_DURATION", 0)
	if soak < 30*time.Second {
		t.Fatalf("CHAOS_DURATION=%s: want at least 30s (the phases and the kills need the room)", soak)
	}
	rate := chaosDefaultHz
	if v := os.Getenv("CHAOS_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 20 {
			t.Fatalf("CHAOS_RATE=%q: want events per second, at least 20", v)
		}
		rate = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
		seed = n
	}

	e := newE2E(t, chaosPartitions, kafkatest.WithBrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(chaosBrokerMax)}))
	r := &chaosRun{t: t, e: e, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), start: time.Now()}
	t.Cleanup(r.dumpOnFailure)
	gateway := r.proxyGateway()
	base := topsim.Faults{Latency: 2 * time.Millisecond, Jitter: 3 * time.Millisecond}
	r.setFaults("healthy", base)

	cfg := e.failureConfig(chaosGroup)
	cfg.Top.GatewayURL = gateway
	cfg.Kafka.MaxRecordBytes = chaosMaxRecord
	cfg.Kafka.SessionTimeout = 3 * time.Second
	cfg.Kafka.RebalanceTimeout = 5 * time.Second
	cfg.Worker.ShutdownTimeout = cfg.Top.Timeout + 8*time.Second // the least allowed: an answer in transit is stored
	cfg.Top.Breaker.OpenFor = 500 * time.Millisecond
	cfg.Top.Breaker.MaxOpenFor = 2 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the soak's worker configuration: %v", err)
	}
	r.cfg = cfg
	for i := range chaosWorkers {
		r.startWorker(i)
	}

	gen := newChaosGen(newEventGen(t), seed)
	stopStream := e.stream(rate, gen.next)
	r.runSchedule(soak, base)
	time.Sleep(time.Until(r.start.Add(soak)))
	events := stopStream()
	soaked := time.Since(r.start)
	r.logf("stream stopped: %d events", len(events))

	r.collect(events, gen)
	drained := time.Since(r.start) - soaked
	r.stopWorkers()
	r.collectAgain()
	r.assigned = r.logTimes("partitions assigned")
	e.checkCommittedHaveOutcomes(chaosGroup, chaosPartitions)

	r.checkOutcomes()
	r.checkDeadLetters()
	r.checkPlatformCalls()
	if r.peakKiB >= r.bound() {
		t.Errorf("peak RSS of a worker %d KiB, want < %d KiB", r.peakKiB, r.bound())
	}
	for _, w := range r.all {
		checkNoSecrets(t, w.c.logs.String(), map[string]string{"the app secret": e2eSecret, "the session key": e2eSession})
	}

	line := r.summary(events, soaked, drained)
	t.Log(line)
	fmt.Println(line)
}

// chaosRun is one soak: its world, its workers, what it did and what it read back.
type chaosRun struct {
	t     *testing.T
	e     *e2e
	cfg   config.Config
	seed  uint64
	rng   *rand.Rand // the schedule's; used on the test goroutine only
	start time.Time

	workers [chaosWorkers]*chaosWorker
	all     []*chaosWorker // every process started, in order
	peakKiB int64

	kills    []time.Time   // when each killed worker was gone
	redis    []redisOutage // each Redis restart
	assigned []time.Time   // when any worker logged "partitions assigned"
	timeline []string

	calls *platformLog

	// Filled by collect.
	events   []testEvent
	gen      *chaosGen
	at       map[string]coord          // event id → where it was published
	outs     map[coord][]chaosOutcome  // outcomes by source
	dlq      map[coord][]kafka.Message // dead letters by source
	byKey    map[string][]chaosOutcome // outcomes by channel + " " + idempotency key
	records  int                       // outcome records read
	repeats  repeats                   // explained repeated platform calls
	problems int
}

// coord is a record's place: topic, partition, offset.
type coord struct {
	topic     string
	partition int
	offset    int64
}

func (c coord) String() string { return fmt.Sprintf("%s/%d@%d", c.topic, c.partition, c.offset) }

// bound is the RSS bound of a worker process in KiB.
func (r *chaosRun) bound() int64 {
	if raceEnabled {
		return chaosRaceBound
	}
	return chaosRSSBound
}

// chaosOutcome is one outcome record: the outcome and when it was written.
type chaosOutcome struct {
	o  dispatch.Outcome
	at time.Time
}

// chaosWorker is one worker process and its memory sampler.
type chaosWorker struct {
	slot    int
	c       *child
	stopRSS func() ([]rssSample, int64)
}

func (r *chaosRun) logf(format string, args ...any) {
	r.timeline = append(r.timeline, fmt.Sprintf("%7.2fs ", time.Since(r.start).Seconds())+fmt.Sprintf(format, args...))
}

// problem reports one broken guarantee, stopping after 30.
func (r *chaosRun) problem(format string, args ...any) {
	r.t.Helper()
	r.problems++
	r.t.Errorf(format, args...)
	if r.problems >= 30 {
		r.t.Fatal("too many problems; stopping")
	}
}

// dumpOnFailure logs the timeline and writes every worker's log to a directory; CHAOS_VERBOSE=1
// logs the timeline of a run that passed too.
func (r *chaosRun) dumpOnFailure() {
	if !r.t.Failed() {
		if os.Getenv("CHAOS_VERBOSE") != "" {
			r.t.Logf("chaos seed %d; timeline:\n%s", r.seed, strings.Join(r.timeline, "\n"))
		}
		return
	}
	r.t.Logf("chaos seed %d; timeline:\n%s", r.seed, strings.Join(r.timeline, "\n"))
	dir, err := os.MkdirTemp("", "ordersync-chaos-")
	if err != nil {
		r.t.Logf("no directory for the worker logs: %v", err)
		return
	}
	for i, w := range r.all {
		name := filepath.Join(dir, fmt.Sprintf("worker-%02d-slot%d-pid%d.log", i, w.slot, w.c.cmd.Process.Pid))
		if err := os.WriteFile(name, []byte(w.c.logs.String()), 0o600); err != nil {
			r.t.Logf("write %s: %v", name, err)
		}
	}
	r.t.Logf("worker logs: %s", dir)
}

// startWorker starts the worker of slot i and samples its memory.
func (r *chaosRun) startWorker(i int) {
	c := r.e.startChild(r.cfg)
	w := &chaosWorker{slot: i, c: c, stopRSS: rss(r.t, c.cmd.Process.Pid, 250*time.Millisecond)}
	r.workers[i] = w
	r.all = append(r.all, w)
	r.logf("worker %d started (pid %d)", i, c.cmd.Process.Pid)
}

// sample stops w's memory sampler and keeps its peak; w must still be running.
func (r *chaosRun) sample(w *chaosWorker) {
	samples, hwm := w.stopRSS()
	peak := hwm
	for _, s := range samples {
		peak = max(peak, s.kib)
	}
	r.peakKiB = max(r.peakKiB, peak)
	r.logf("worker %d (pid %d): peak RSS %d MiB", w.slot, w.c.cmd.Process.Pid, peak>>10)
}

// alive fails the test if w exited although the test did not stop it.
func (r *chaosRun) alive(w *chaosWorker) bool {
	select {
	case <-w.c.done:
		r.problem("worker %d (pid %d) exited by itself: %v; log tail:\n%s", w.slot, w.c.cmd.Process.Pid, w.c.err, tail(w.c.logs.String(), 20))
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the worker of slot i and starts a new one after a short pause, as an
// orchestrator would.
func (r *chaosRun) kill(i int) {
	w := r.workers[i]
	if r.alive(w) {
		r.sample(w)
	}
	_ = w.c.cmd.Process.Signal(syscall.SIGKILL)
	<-w.c.done
	r.kills = append(r.kills, time.Now())
	r.logf("worker %d killed (pid %d)", i, w.c.cmd.Process.Pid)
	time.Sleep(200*time.Millisecond + time.Duration(r.rng.Int64N(int64(600*time.Millisecond))))
	r.startWorker(i)
}

// redisOutage is one Redis restart: killed at down (what it held is gone), back, empty, at up.
type redisOutage struct{ down, up time.Time }

// restartRedis kills Redis and starts it again, empty.
func (r *chaosRun) restartRedis() {
	down := time.Now()
	r.e.redis.Stop()
	r.logf("redis stopped")
	time.Sleep(chaosRedisDown)
	r.e.redis.Restart()
	r.redis = append(r.redis, redisOutage{down: down, up: time.Now()})
	r.logf("redis restarted (empty)")
}

// forgets reports whether a Redis restart may have erased what was written at or before a from
// what is read at b: Redis was still down or not yet back at a, and went down before b.
func (r *chaosRun) forgets(a, b time.Time) bool {
	for _, o := range r.redis {
		if a.Before(o.up) && b.After(o.down) {
			return true
		}
	}
	return false
}

func (r *chaosRun) setFaults(name string, f topsim.Faults) {
	if err := r.e.sim.SetFaults(f); err != nil {
		r.t.Fatal(err)
	}
	r.logf("simulator: %s", name)
}

// runSchedule runs the kills, the Redis restarts and the simulator's phases, in time order, on
// the test goroutine (Redis restarts and worker starts may call Fatal).
func (r *chaosRun) runSchedule(soak time.Duration, base topsim.Faults) {
	type action struct {
		at time.Duration
		do func()
	}
	phase := max(4*time.Second, soak/12)
	faults := func(name string, f topsim.Faults) func() { return func() { r.setFaults(name, f) } }
	outage, burst := base, base
	outage.ErrorRate = 1
	burst.ErrorRate, burst.ISPRate = 0.25, 0.15
	actions := []action{
		{soak * 15 / 100, func() {
			end, err := r.e.sim.Ban(phase, "", "")
			if err != nil {
				r.t.Fatal(err)
			}
			r.logf("simulator: app-wide ban until %s (top.max_ban_wait %s)", end.Format("15:04:05.000"), r.cfg.Top.MaxBanWait)
		}},
		{soak * 30 / 100, r.restartRedis},
		{soak * 42 / 100, faults("outage (every call HTTP 503)", outage)},
		{soak*42/100 + phase, faults("healthy", base)},
		{soak * 62 / 100, faults("burst of 5xx (25% HTTP 503, 15% isp)", burst)},
		{soak*62/100 + phase, faults("healthy", base)},
		{soak * 80 / 100, r.restartRedis},
	}
	for at := 4*time.Second + time.Duration(r.rng.Int64N(int64(2*time.Second))); at < soak-3*time.Second; at += chaosKillEvery + time.Duration(r.rng.Int64N(int64(chaosKillJitter))) {
		actions = append(actions, action{at, func() { r.kill(r.rng.IntN(chaosWorkers)) }})
	}
	sort.SliceStable(actions, func(i, j int) bool { return actions[i].at < actions[j].at })
	for _, a := range actions {
		time.Sleep(time.Until(r.start.Add(a.at)))
		a.do()
	}
}

// stopWorkers sends SIGTERM to every running worker and waits for a clean exit.
func (r *chaosRun) stopWorkers() {
	var running []*chaosWorker
	for _, w := range r.workers {
		if r.alive(w) {
			r.sample(w)
			_ = w.c.cmd.Process.Signal(syscall.SIGTERM)
			running = append(running, w)
		}
	}
	limit := time.After(r.cfg.Worker.ShutdownTimeout + 10*time.Second)
	for _, w := range running {
		select {
		case <-w.c.done:
			if w.c.err != nil {
				r.problem("worker %d (pid %d) exited with %v after SIGTERM; log tail:\n%s", w.slot, w.c.cmd.Process.Pid, w.c.err, tail(w.c.logs.String(), 20))
			}
		case <-limit:
			r.problem("worker %d (pid %d) still running %s after SIGTERM", w.slot, w.c.cmd.Process.Pid, r.cfg.Worker.ShutdownTimeout+10*time.Second)
		}
	}
	r.logf("workers stopped")
}

// logTimes returns when any worker logged msg.
func (r *chaosRun) logTimes(msg string) []time.Time {
	var out []time.Time
	for _, w := range r.all {
		for _, line := range strings.Split(w.c.logs.String(), "\n") {
			var l struct {
				Time time.Time `json:"time"`
				Msg  string    `json:"msg"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg {
				out = append(out, l.Time)
			}
		}
	}
	return out
}

// platformCall is one gateway call the simulator answered.
type platformCall struct {
	sent      time.Time // when the request arrived
	at        time.Time // when it was answered
	key       string    // "<method> <key>", "" when the parameters give none
	ok        bool      // answered with success
	requestID string    // of a successful answer
}

// platformLog is every gateway call, in the order the answers were written.
type platformLog struct {
	mu    sync.Mutex
	calls []platformCall
}

func (l *platformLog) snapshot() []platformCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// proxyGateway serves the simulator through e.recordSuccesses (so the harness's records stay
// whole) and notes each call's key, success and request id, which tie a platform call to the
// outcome that reported it. It returns the gateway URL for the workers.
func (r *chaosRun) proxyGateway() string {
	r.calls = &platformLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sent := time.Now()
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		r.e.recordSuccesses(rec, req)
		c := platformCall{sent: sent, at: time.Now()}
		if form, err := url.ParseQuery(string(body)); err == nil {
			params := map[string]string{}
			for k := range form {
				params[k] = form.Get(k)
			}
			if key, err := r.e.registry.CheckParams(params["method"], params); err == nil {
				c.key = params["method"] + " " + key
			}
		}
		if rec.Code == http.StatusOK && !bytes.Contains(rec.Body.Bytes(), []byte(`"error_response"`)) {
			var answer map[string]struct {
				RequestID string `json:"request_id"`
			}
			if json.Unmarshal(rec.Body.Bytes(), &answer) == nil {
				c.ok = true
				for _, v := range answer {
					c.requestID = v.RequestID
				}
			}
		}
		if req.URL.Path == "/router/rest" {
			r.calls.mu.Lock()
			r.calls.calls = append(r.calls.calls, c)
			r.calls.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	r.t.Cleanup(srv.Close)
	return srv.URL + "/router/rest"
}

// chaosKind is what an event is made to test.
type chaosKind string

const (
	kindValid     chaosKind = "valid"
	kindPadded    chaosKind = "padded"           // valid, 400 KiB
	kindResend    chaosKind = "re-sent"          // an earlier valid event under a new event id
	kindMalformed chaosKind = "malformed"        // an unknown request field
	kindPadBad    chaosKind = "padded-malformed" // malformed, 400 KiB: its dead letter is reduced
	kindGarbage   chaosKind = "undecodable"      // cut JSON, invalid UTF-8, too deep
	kindBig       chaosKind = "oversized"        // 2 MiB, valid-looking: rejected as too large
)

// chaosGen makes the soak's events; next runs on the stream's goroutine, and the maps are read
// only after the stream stopped.
type chaosGen struct {
	g         *eventGen
	rng       *rand.Rand
	ch        int
	originals []testEvent
	kind      map[string]chaosKind // by event id
}

func newChaosGen(g *eventGen, seed uint64) *chaosGen {
	return &chaosGen{g: g, rng: rand.New(rand.NewPCG(seed+1, seed)), kind: map[string]chaosKind{}}
}

func (c *chaosGen) next(i int) testEvent {
	ids := dispatch.ChannelIDs()
	c.ch++
	channel := ids[c.ch%len(ids)]
	tag := "c" + strconv.Itoa(i)
	var ev testEvent
	var k chaosKind
	switch {
	case i%1000 == 500:
		ev, k = c.padded(c.g.valid(channel, tag), chaosBigBytes), kindBig
		ev.key, ev.want = ev.eventID, dispatch.StatusRejected
	case i%500 == 125:
		ev, k = c.padded(c.g.valid(channel, tag), chaosPadBytes), kindPadded
		c.originals = append(c.originals, ev)
	case i%500 == 375:
		ev, k = c.padded(c.g.malformed(channel, tag), chaosPadBytes), kindPadBad
	case i%100 == 33:
		ev, k = c.garbage(channel, i), kindGarbage
	case i%50 == 7:
		ev, k = c.g.malformed(channel, tag), kindMalformed
	case i%10 == 3 && len(c.originals) > 0:
		// A re-send of one of the last 300 events: some are still in flight, some straddle a kill
		// or a Redis restart.
		orig := c.originals[len(c.originals)-1-c.rng.IntN(min(len(c.originals), 300))]
		ev, k = c.g.resend(orig), kindResend
	default:
		ev, k = c.g.valid(channel, tag), kindValid
		c.originals = append(c.originals, ev)
	}
	c.kind[ev.eventID] = k
	return ev
}

// padded returns ev with an unknown envelope field (ignored by the worker) that brings its value
// to about n bytes.
func (c *chaosGen) padded(ev testEvent, n int) testEvent {
	var env map[string]any
	if err := json.Unmarshal(ev.value, &env); err != nil {
		c.g.t.Fatal(err)
	}
	env["padding"] = strings.Repeat("x", max(n-len(ev.value)-16, 0))
	v, err := json.Marshal(env)
	if err != nil {
		c.g.t.Fatal(err)
	}
	ev.value = v
	return ev
}

// garbage returns an undecodable event: cut JSON, invalid UTF-8 or nesting deeper than 32.
func (c *chaosGen) garbage(channel string, i int) testEvent {
	id := "evt-garbage-" + strconv.Itoa(i)
	var v string
	switch (i / 100) % 3 {
	case 0:
		v = `{"event_id":"` + id + `","request":{"order":`
	case 1:
		v = `{"event_id":"` + id + `","request":{"x":"` + "\xff\xfe" + `"}}`
	default:
		v = `{"event_id":"` + id + `","request":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`
	}
	return testEvent{channel: channel, eventID: id, key: id, value: []byte(v), want: dispatch.StatusRejected}
}
