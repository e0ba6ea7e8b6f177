package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersync/ordersync/internal/telemetry"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// The observability tests run the whole worker through serve against the e2e world (kfake over
// TCP, redis-server, the simulator over HTTP) and look at what an operator would see: the trace
// in Jaeger, the /metrics scrape, the logs.

const (
	upstreamTraceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	upstreamSpanID   = "00f067aa0ba902b7"
	upstreamParent   = "00-" + upstreamTraceID + "-" + upstreamSpanID + "-01"
	omniSaasMethod   = "alibaba.omni.saas.order.create"
	buyerPhone       = "13912340000"
	maskedBuyerPhone = "139****0000"
)

// noOTelEnv is a Getenv that sees no variable: a hermetic telemetry setup.
func noOTelEnv(string) string { return "" }

// spanCollector is an in-memory span exporter that keeps its spans when the worker shuts it down
// (tracetest.InMemoryExporter forgets them on Shutdown).
type spanCollector struct{ *tracetest.InMemoryExporter }

func newSpanCollector() spanCollector {
	return spanCollector{tracetest.NewInMemoryExporter()}
}

func (spanCollector) Shutdown(context.Context) error { return nil }

// publishWithHeaders publishes ev to its channel topic with the given headers.
func publishWithHeaders(e *e2e, ev testEvent, headers ...kafka.Header) {
	e.t.Helper()
	ch, _ := e.registry.ByID(ev.channel)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.broker.Produce(ctx, kafka.Message{Topic: ch.Topic, Key: []byte(ev.key), Value: ev.value, Headers: headers}); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

// readRecords returns the records on topic once it holds at least n.
func readRecords(e *e2e, topic string, n int) []kafka.Message {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	msgs, err := e.broker.ReadAll(ctx, topic, n, 60*time.Second)
	if err != nil || len(msgs) < n {
		e.t.Fatalf("%s holds %d records, want ≥ %d (err %v)", topic, len(msgs), n, err)
	}
	return msgs
}

// stopObserved stops w and fails the test if it does not stop cleanly.
func stopObserved(t *testing.T, w *worker) {
	t.Helper()
	if err := w.stop(); err != nil {
		t.Fatalf("stop worker: %v\n%s", err, w.logs.String())
	}
}

// obsWaitUntil polls cond every 5ms until it holds or wait passes.
func obsWaitUntil(t *testing.T, wait time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// failFirstCalls makes the simulator fail every call (HTTP 503 or code 15 isp.*) until it has
// seen n calls, then answer normally again. It returns once the faults are off.
func failFirstCalls(t *testing.T, e *e2e, n int, publish func()) {
	t.Helper()
	if err := e.sim.SetFaults(topsim.Faults{ErrorRate: 0.4, ISPRate: 1}); err != nil {
		t.Fatal(err)
	}
	publish()
	obsWaitUntil(t, 30*time.Second, fmt.Sprintf("%d gateway calls", n), func() bool { return e.sim.Stats().Total >= n })
	if err := e.sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
}

// spanAttrs renders span attributes as strings for comparison.
func spanAttrs(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// pick returns the entries of got named in want, for cmp.Diff against want.
func pick(got, want map[string]string) map[string]string {
	out := make(map[string]string, len(want))
	for k := range want {
		if v, ok := got[k]; ok {
			out[k] = v
		}
	}
	return out
}

type obsSpans []tracetest.SpanStub

func (ss obsSpans) where(keep func(tracetest.SpanStub) bool) obsSpans {
	var out obsSpans
	for _, s := range ss {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

func (ss obsSpans) named(name string) obsSpans {
	return ss.where(func(s tracetest.SpanStub) bool { return s.Name == name })
}

func (ss obsSpans) childrenOf(parent tracetest.SpanStub) obsSpans {
	id := parent.SpanContext.SpanID()
	return ss.where(func(s tracetest.SpanStub) bool { return s.Parent.SpanID() == id })
}

func (ss obsSpans) names() []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

// one returns the single span of ss, failing the test otherwise.
func (ss obsSpans) one(t *testing.T, what string) tracetest.SpanStub {
	t.Helper()
	if len(ss) != 1 {
		t.Fatalf("%s: got %d spans %q, want 1", what, len(ss), ss.names())
	}
	return ss[0]
}

func TestObservabilityTrace(t *testing.T) {
	e := newE2E(t, 1)
	col := newSpanCollector()
	cfg := e.config("obs-trace")
	cfg.Worker.ClientTelemetry = true // the Redis command and HTTP request spans too
	cfg.Redis.AutoPipeline = false    // pipelined, a command runs for many events: its span has no one parent
	cfg.Log.Outcomes = "all"          // a record per outcome
	w := e.startWorkerWith(cfg, &telemetry.Options{SpanExporter: col, Getenv: noOTelEnv})

	ev := newEventGen(t).valid("omni-saas", "trace")
	failFirstCalls(t, e, 3, func() {
		publishWithHeaders(e, ev,
			kafka.Header{Key: "traceparent", Value: []byte(upstreamParent)},
			kafka.Header{Key: "tracestate", Value: []byte("pos=till-2")},
			kafka.Header{Key: "baggage", Value: []byte("store=1047384")},
		)
	})
	out := readRecords(e, "orders.results", 1)[0]
	stopObserved(t, w) // flushes the batch span processor

	// The outcome continues the upstream trace, from its send span.
	var o dispatch.Outcome
	if err := json.Unmarshal(out.Value, &o); err != nil {
		t.Fatal(err)
	}
	if o.Status != dispatch.StatusSucceeded || o.TraceID != upstreamTraceID {
		t.Fatalf("outcome status %s trace_id %q, want succeeded in trace %s", o.Status, o.TraceID, upstreamTraceID)
	}
	if o.Attempts < 3 {
		t.Fatalf("outcome after %d attempts, want ≥ 3 (the first calls were failed)", o.Attempts)
	}
	tp := consumer.Header(out, "traceparent")
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[1] != upstreamTraceID || parts[3] != "01" {
		t.Fatalf("outcome traceparent %q, want one in trace %s, sampled", tp, upstreamTraceID)
	}
	if got := consumer.Header(out, "tracestate"); got != "pos=till-2" {
		t.Errorf("outcome tracestate %q, want the upstream pos=till-2", got)
	}
	if got := consumer.Header(out, "baggage"); got != "store=1047384" {
		t.Errorf("outcome baggage %q, want the upstream store=1047384", got)
	}

	all := obsSpans(col.GetSpans())
	tid, _ := trace.TraceIDFromHex(upstreamTraceID)
	tr := all.where(func(s tracetest.SpanStub) bool { return s.SpanContext.TraceID() == tid })
	if len(tr) == 0 {
		t.Fatalf("no span in trace %s; got %q", upstreamTraceID, all.names())
	}
	t.Logf("trace %s: %q", upstreamTraceID, tr.names())

	// The trace's root is the upstream span: exactly one span, the process span, has a parent
	// outside the trace's recorded spans, and that parent is the (remote) upstream span.
	ids := map[trace.SpanID]bool{}
	for _, s := range tr {
		ids[s.SpanContext.SpanID()] = true
	}
	roots := tr.where(func(s tracetest.SpanStub) bool { return !ids[s.Parent.SpanID()] })
	process := roots.one(t, "spans parented outside the trace")
	if process.Name != "process orders.omni-saas" || process.SpanKind != trace.SpanKindConsumer {
		t.Fatalf("root span %q kind %s, want process orders.omni-saas CONSUMER", process.Name, process.SpanKind)
	}
	if got := process.Parent.SpanID().String(); got != upstreamSpanID || !process.Parent.IsRemote() {
		t.Errorf("process span parent %s (remote %t), want the upstream span %s", got, process.Parent.IsRemote(), upstreamSpanID)
	}
	if len(process.Links) != 1 || process.Links[0].SpanContext.SpanID().String() != upstreamSpanID {
		t.Errorf("process span links %+v, want one link to the upstream span", process.Links)
	}
	wantProcess := map[string]string{
		"messaging.system":                   "kafka",
		"messaging.operation.name":           "process",
		"messaging.operation.type":           "process",
		"messaging.destination.name":         "orders.omni-saas",
		"messaging.destination.partition.id": "0",
		"messaging.kafka.offset":             "0",
		"messaging.kafka.message.key":        ev.key,
		"messaging.consumer.group.name":      "obs-trace",
		"messaging.message.id":               ev.eventID,
		"ordersync.channel":                  "omni-saas",
		"ordersync.status":                   dispatch.StatusSucceeded,
	}
	if diff := cmp.Diff(wantProcess, pick(spanAttrs(process.Attributes), wantProcess)); diff != "" {
		t.Errorf("process span attributes (-want +got):\n%s", diff)
	}
	if process.Status.Code == codes.Error {
		t.Errorf("process span status %v, want not an error (succeeded after retries)", process.Status)
	}

	children := tr.childrenOf(process)

	// Dedupe: a claim span with the Redis command spans under it, never a payload.
	claim := children.named("dedupe claim").one(t, "dedupe claim")
	if got := spanAttrs(claim.Attributes)["ordersync.dedupe.result"]; got != "claimed" {
		t.Errorf("dedupe claim result %q, want claimed", got)
	}
	redisSpans := tr.where(func(s tracetest.SpanStub) bool {
		return strings.Contains(s.InstrumentationScope.Name, "redisotel")
	})
	if len(tr.childrenOf(claim).where(func(s tracetest.SpanStub) bool {
		return strings.Contains(s.InstrumentationScope.Name, "redisotel")
	})) == 0 {
		t.Errorf("dedupe claim has no redis child span; its children: %q", tr.childrenOf(claim).names())
	}
	children.named("dedupe complete").one(t, "dedupe complete")
	for _, s := range redisSpans {
		// go-redis falls back from EVALSHA to EVAL on NOSCRIPT (first use after a Redis start);
		// nothing else may fail in a successful event's trace — connection set-up commands
		// (HELLO, CLIENT SETINFO …) that old servers reject are not traced.
		if s.Status.Code == codes.Error && !strings.HasPrefix(s.Status.Description, "NOSCRIPT") {
			t.Errorf("redis span %q failed: %s", s.Name, s.Status.Description)
		}
		a := spanAttrs(s.Attributes)
		if a["db.system"] != "redis" && a["db.system.name"] != "redis" {
			t.Errorf("redis span %q lacks db.system=redis: %v", s.Name, a)
		}
		for k, v := range a {
			if k == "db.statement" || k == "db.query.text" || strings.HasPrefix(k, "code.") ||
				strings.Contains(v, ev.key) || strings.Contains(v, "fingerprint") || strings.Contains(v, "{omni-saas:") {
				t.Errorf("redis span %q carries %s=%q: commands and payloads must stay out of traces", s.Name, k, v)
			}
		}
	}

	// One client span per gateway attempt, numbered 1..n, each with its HTTP span as its child.
	attempts := children.named("top " + omniSaasMethod)
	sort.Slice(attempts, func(i, j int) bool { return attempts[i].StartTime.Before(attempts[j].StartTime) })
	if len(attempts) != o.Attempts {
		t.Fatalf("%d gateway attempt spans, want the outcome's %d attempts", len(attempts), o.Attempts)
	}
	platformErrors := 0
	for i, s := range attempts {
		a := spanAttrs(s.Attributes)
		last := i == len(attempts)-1
		if s.SpanKind != trace.SpanKindClient || a["ordersync.top.method"] != omniSaasMethod || a["ordersync.top.attempt"] != strconv.Itoa(i+1) {
			t.Errorf("attempt span %d: kind %s attributes %v, want CLIENT with ordersync.top.method and ordersync.top.attempt=%d", i+1, s.SpanKind, a, i+1)
		}
		switch {
		case last && (s.Status.Code == codes.Error || a["ordersync.top.request_id"] == ""):
			t.Errorf("last attempt span: status %v, request id %q; want ok with the platform's request id", s.Status, a["ordersync.top.request_id"])
		case !last && (s.Status.Code != codes.Error || a["error.type"] == ""):
			t.Errorf("failed attempt %d: status %v error.type %q, want an error status and error.type", i+1, s.Status, a["error.type"])
		case !last && a["error.type"] == "platform_error":
			platformErrors++
			if a["ordersync.top.code"] != "15" || a["ordersync.top.sub_code"] != "isp.top-remote-connection-timeout" || a["ordersync.top.request_id"] == "" {
				t.Errorf("failed attempt %d: %v, want ordersync.top.code=15, sub_code isp.top-remote-connection-timeout and a request id", i+1, a)
			}
		}
		httpSpan := tr.childrenOf(s).one(t, fmt.Sprintf("HTTP span of attempt %d", i+1))
		ha := spanAttrs(httpSpan.Attributes)
		if httpSpan.SpanKind != trace.SpanKindClient || httpSpan.Name != "POST /router/rest" || ha["http.request.method"] != "POST" {
			t.Errorf("attempt %d HTTP span %q kind %s %v, want the otelhttp POST /router/rest CLIENT span", i+1, httpSpan.Name, httpSpan.SpanKind, ha)
		}
		if u := ha["url.full"]; u == "" || strings.ContainsAny(u, "?#") {
			t.Errorf("attempt %d HTTP span url.full %q, want the gateway URL without a query", i+1, u)
		}
	}
	if platformErrors == 0 {
		t.Errorf("no failed attempt carried a platform code; the simulator answered isp errors")
	}

	// Backoff waits are events on the process span, one before each retry.
	var backoffs []string
	for _, ev := range process.Events {
		if ev.Name == "backoff" {
			backoffs = append(backoffs, spanAttrs(ev.Attributes)["ordersync.top.attempt"])
		}
	}
	var wantBackoffs []string
	for i := 1; i < o.Attempts; i++ {
		wantBackoffs = append(wantBackoffs, strconv.Itoa(i))
	}
	if diff := cmp.Diff(wantBackoffs, backoffs); diff != "" {
		t.Errorf("backoff events by attempt (-want +got):\n%s", diff)
	}

	// The outcome is sent under a PRODUCER span whose context is in the outcome's headers.
	send := children.named("send orders.results").one(t, "send orders.results")
	if send.SpanKind != trace.SpanKindProducer {
		t.Errorf("send span kind %s, want PRODUCER", send.SpanKind)
	}
	wantSend := map[string]string{
		"messaging.system":            "kafka",
		"messaging.operation.type":    "send",
		"messaging.destination.name":  "orders.results",
		"messaging.kafka.message.key": ev.key,
	}
	if diff := cmp.Diff(wantSend, pick(spanAttrs(send.Attributes), wantSend)); diff != "" {
		t.Errorf("send span attributes (-want +got):\n%s", diff)
	}
	if parts[2] != send.SpanContext.SpanID().String() {
		t.Errorf("outcome traceparent parent id %s, want the send span %s", parts[2], send.SpanContext.SpanID())
	}

	// Every record logged for this event carries the trace.
	checkEventLogsTraced(t, w.logs.String())
}

// A rejected event's trace: the process span fails with error.type, nothing is claimed or
// called, and the outcome and the dead letter each carry the context of their own send span
// (one traceparent, replacing the copied upstream one).
func TestObservabilityDeadLetterTrace(t *testing.T) {
	e := newE2E(t, 1)
	col := newSpanCollector()
	w := e.startWorkerWith(e.config("obs-dlq"), &telemetry.Options{SpanExporter: col, Getenv: noOTelEnv})
	bad := newEventGen(t).malformed("tmall-aliauto", "dlq")
	publishWithHeaders(e, bad, kafka.Header{Key: "traceparent", Value: []byte(upstreamParent)})
	out := readRecords(e, "orders.results", 1)[0]
	dead := readRecords(e, "orders.dlq", 1)[0]
	stopObserved(t, w)

	tid, _ := trace.TraceIDFromHex(upstreamTraceID)
	tr := obsSpans(col.GetSpans()).where(func(s tracetest.SpanStub) bool { return s.SpanContext.TraceID() == tid })
	process := tr.named("process orders.tmall-aliauto").one(t, "process span")
	if process.Status.Code != codes.Error || spanAttrs(process.Attributes)["error.type"] != dispatch.KindValidation {
		t.Errorf("process span status %v error.type %q, want an error status and error.type=validation",
			process.Status, spanAttrs(process.Attributes)["error.type"])
	}
	if got := tr.childrenOf(process).names(); !cmp.Equal(sortedNames(got), []string{"send orders.dlq", "send orders.results"}) {
		t.Errorf("process span children %q, want only the two send spans (rejected events never claim or call)", got)
	}
	for _, m := range []kafka.Message{out, dead} {
		var tps []string
		for _, h := range m.Headers {
			if h.Key == "traceparent" {
				tps = append(tps, string(h.Value))
			}
		}
		send := tr.named("send "+m.Topic).one(t, "send span of "+m.Topic)
		want := "00-" + upstreamTraceID + "-" + send.SpanContext.SpanID().String() + "-01"
		if !cmp.Equal(tps, []string{want}) {
			t.Errorf("%s record traceparent headers %q, want exactly [%s] (its send span)", m.Topic, tps, want)
		}
	}
}

// By default an event's trace holds the worker's own spans only: no span per Redis command or
// per HTTP request (worker.client_telemetry).
func TestObservabilityDefaultSpans(t *testing.T) {
	e := newE2E(t, 1)
	col := newSpanCollector()
	w := e.startWorkerWith(e.config("obs-default"), &telemetry.Options{SpanExporter: col, Getenv: noOTelEnv})
	ev := newEventGen(t).valid("omni-saas", "default-spans")
	publishWithHeaders(e, ev, kafka.Header{Key: "traceparent", Value: []byte(upstreamParent)})
	readRecords(e, "orders.results", 1)
	stopObserved(t, w)

	tid, _ := trace.TraceIDFromHex(upstreamTraceID)
	got := obsSpans(col.GetSpans()).where(func(s tracetest.SpanStub) bool { return s.SpanContext.TraceID() == tid }).names()
	want := []string{"dedupe claim", "dedupe complete", "process orders.omni-saas", "send orders.results", "top alibaba.omni.saas.order.create"}
	if !cmp.Equal(sortedNames(got), want) {
		t.Errorf("spans %q, want %q", sortedNames(got), want)
	}
}

func sortedNames(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}

// checkEventLogsTraced asserts that every log record tied to an event (one naming an event id,
// offset or dedupe key) has trace_id and span_id, and that there is one "outcome" record per
// event at info.
func checkEventLogsTraced(t *testing.T, logs string) {
	t.Helper()
	outcomes := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		_, eid := rec["event_id"]
		_, off := rec["offset"]
		_, key := rec["key"]
		if rec["msg"] == "outcome" {
			outcomes++
			if rec["level"] != "INFO" {
				t.Errorf("outcome record at %v, want INFO", rec["level"])
			}
		}
		if !eid && !off && !key {
			continue
		}
		if tid, _ := rec["trace_id"].(string); len(tid) != 32 {
			t.Errorf("event record without trace_id: %s", line)
		}
		if sid, _ := rec["span_id"].(string); len(sid) != 16 {
			t.Errorf("event record without span_id: %s", line)
		}
	}
	if outcomes == 0 {
		t.Errorf("no outcome record in the logs")
	}
}

// dumpSpans renders everything a span exporter would send: names, attributes, events, links,
// status and resource.
func dumpSpans(ss []tracetest.SpanStub) string {
	var b strings.Builder
	kv := func(kvs []attribute.KeyValue) {
		for _, a := range kvs {
			fmt.Fprintf(&b, " %s=%s", a.Key, a.Value.String())
		}
	}
	for _, s := range ss {
		fmt.Fprintf(&b, "span %q kind=%s status=%s %q", s.Name, s.SpanKind, s.Status.Code, s.Status.Description)
		kv(s.Attributes)
		for _, e := range s.Events {
			fmt.Fprintf(&b, "\n  event %q", e.Name)
			kv(e.Attributes)
		}
		for _, l := range s.Links {
			fmt.Fprintf(&b, "\n  link %s", l.SpanContext.SpanID())
			kv(l.Attributes)
		}
		if s.Resource != nil {
			b.WriteString("\n  resource")
			kv(s.Resource.Attributes())
		}
		b.WriteString("\n")
	}
	return b.String()
}

// dumpMessages renders Kafka records with their keys and headers.
func dumpMessages(msgs []kafka.Message) string {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%s/%d/%d key=%s", m.Topic, m.Partition, m.Offset, m.Key)
		for _, h := range m.Headers {
			fmt.Fprintf(&b, " %s=%s", h.Key, h.Value)
		}
		fmt.Fprintf(&b, "\n%s\n", m.Value)
	}
	return b.String()
}
