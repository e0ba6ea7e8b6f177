package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/internal/telemetry"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/pipeline"
	"github.com/ordersync/ordersync/pkg/topapi"
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

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes protobuf export requests.
type otlpReceiver struct {
	mu       sync.Mutex
	requests int
	spans    []*tracepb.ResourceSpans
	errs     []string
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		r.errs = append(r.errs, fmt.Sprintf("%s %s (%s)", req.Method, req.URL.Path, req.Header.Get("Content-Type")))
		http.Error(w, "want POST /v1/traces with application/x-protobuf", http.StatusNotFound)
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &msg)
	}
	if err != nil {
		r.errs = append(r.errs, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.requests++
	r.spans = append(r.spans, msg.GetResourceSpans()...)
	resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

// otlpEnv configures the process environment, as a deployment would, for OTLP/HTTP export to
// endpoint and nothing else (not usable with t.Parallel).
func otlpEnv(t *testing.T, endpoint string) {
	t.Helper()
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME",
		"OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_PROPAGATORS", "OTEL_BSP_SCHEDULE_DELAY",
		"POD_NAME", "K8S_POD_NAME"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
}

// Export failures are reported in the worker's JSON log (not by the standard library logger on
// stderr), and do not hold up the event or the shutdown.
func TestObservabilityExportErrorsLogged(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "collector rejects everything", http.StatusBadRequest)
	}))
	defer srv.Close()
	otlpEnv(t, srv.URL)

	e := newE2E(t, 1)
	cfg := e.config("obs-export-error")
	w := e.startWorkerWith(cfg, nil)
	publishWithHeaders(e, newEventGen(t).valid("omni-saas", "exporterr"))
	readRecords(e, "orders.results", 1)
	stopObserved(t, w)

	found := false
	for _, line := range strings.Split(strings.TrimSpace(w.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		msg, _ := rec["msg"].(string)
		text := fmt.Sprint(rec["error"], rec["err"])
		if rec["level"] == "WARN" && (msg == "opentelemetry" || msg == "telemetry shutdown") && strings.Contains(text, "400") {
			found = true
		}
	}
	if !found {
		t.Errorf("no WARN record about the failed export in the worker log:\n%s", w.logs.String())
	}
}

func TestObservabilityOTLPExport(t *testing.T) {
	recv := &otlpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	otlpEnv(t, srv.URL)
	t.Setenv("POD_NAME", "ordersync-7d9f-abcde")

	e := newE2E(t, 1)
	w := e.startWorkerWith(e.config("obs-otlp"), nil) // production setup: everything from the environment
	ev := newEventGen(t).valid("omni-saas", "otlp")
	publishWithHeaders(e, ev, kafka.Header{Key: "traceparent", Value: []byte(upstreamParent)})
	readRecords(e, "orders.results", 1)
	// The batch processor waits 5s before exporting; stopping within that must flush.
	start := time.Now()
	stopObserved(t, w)
	t.Logf("worker stopped in %s", time.Since(start))

	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.errs) > 0 {
		t.Errorf("receiver rejected requests: %q", recv.errs)
	}
	var found *tracepb.Span
	var resource map[string]string
	for _, rs := range recv.spans {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				if s.GetName() == "process orders.omni-saas" && hex.EncodeToString(s.GetTraceId()) == upstreamTraceID {
					found = s
					resource = map[string]string{}
					for _, kv := range rs.GetResource().GetAttributes() {
						resource[kv.GetKey()] = kv.GetValue().GetStringValue()
					}
				}
			}
		}
	}
	if found == nil {
		t.Fatalf("no process span in trace %s among %d exported resource spans (%d requests)", upstreamTraceID, len(recv.spans), recv.requests)
	}
	if got := hex.EncodeToString(found.GetParentSpanId()); got != upstreamSpanID {
		t.Errorf("exported process span parent %s, want %s", got, upstreamSpanID)
	}
	if found.GetKind() != tracepb.Span_SPAN_KIND_CONSUMER {
		t.Errorf("exported process span kind %s, want CONSUMER", found.GetKind())
	}
	host, _ := os.Hostname()
	want := map[string]string{
		"service.name":    "ordersync",
		"service.version": version,
		"host.name":       host,
		"k8s.pod.name":    "ordersync-7d9f-abcde",
	}
	if diff := cmp.Diff(want, pick(resource, want)); diff != "" {
		t.Errorf("exported resource (-want +got):\n%s", diff)
	}
}

// scrapeMetrics reads the worker's /metrics over HTTP.
func scrapeMetrics(t *testing.T, addr string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %v", resp.Status, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams, string(body)
}

// metricSeries sums the samples of family name (counter value, gauge value or histogram count)
// by the values of the given labels, joined with "/".
func metricSeries(fams map[string]*dto.MetricFamily, name string, by ...string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		parts := make([]string, len(by))
		for i, b := range by {
			parts[i] = labels[b]
		}
		k := strings.Join(parts, "/")
		switch {
		case m.GetCounter() != nil:
			out[k] += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			out[k] += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			out[k] += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return out
}

func TestObservabilityMetrics(t *testing.T) {
	const partitions = 2
	e := newE2E(t, partitions)
	if err := e.sim.SetFaults(topsim.Faults{ErrorRate: 0.1, ISPRate: 0.2}); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(t)
	events := mix(g, 100, 10, 10)
	e.publish(events)
	w := e.startWorkerWith(e.config("obs-metrics"), &telemetry.Options{SpanExporter: newSpanCollector(), Getenv: noOTelEnv})
	e.outcomes(events, 120*time.Second)

	// What the metrics must say, from the outcomes, the DLQ and the simulator.
	results := readRecords(e, "orders.results", len(events))
	wantOutcomes := map[string]float64{}
	wantRetries := map[string]float64{}
	wantLag := map[string]float64{}
	wantDedupe := map[string]float64{}
	for _, m := range results {
		var o dispatch.Outcome
		if err := json.Unmarshal(m.Value, &o); err != nil {
			t.Fatal(err)
		}
		wantOutcomes[o.Channel+"/"+o.Status]++
		if o.Status == dispatch.StatusSucceeded || o.Status == dispatch.StatusFailed {
			wantDedupe["claimed"]++
			if o.Attempts > 1 {
				wantRetries[o.Method] += float64(o.Attempts - 1)
			}
		}
		if o.Status == dispatch.StatusDuplicate {
			wantDedupe["duplicate"]++
		}
		wantLag[fmt.Sprintf("%s/%d", o.Source.Topic, o.Source.Partition)] = 0
	}
	dlq := readRecords(e, "orders.dlq", countStatus(events)[dispatch.StatusRejected])
	stats := e.sim.Stats()
	wantGateway := map[string]float64{}
	for _, c := range stats.Calls {
		wantGateway[c.Method] += float64(c.Calls)
	}

	var fams map[string]*dto.MetricFamily
	var text string
	checks := func() []string {
		fams, text = scrapeMetrics(t, w.addr)
		var diffs []string
		check := func(what string, want, got map[string]float64) {
			if d := cmp.Diff(want, got); d != "" {
				diffs = append(diffs, fmt.Sprintf("%s (-want +got):\n%s", what, d))
			}
		}
		check("ordersync_outcomes_total by channel/status", wantOutcomes,
			metricSeries(fams, "ordersync_outcomes_total", "ordersync_channel", "ordersync_status"))
		check("messaging_client_consumed_messages_total", map[string]float64{"": float64(len(events))},
			metricSeries(fams, "messaging_client_consumed_messages_total"))
		check("messaging_process_duration_seconds count", map[string]float64{"process/": float64(len(events))},
			metricSeries(fams, "messaging_process_duration_seconds", "messaging_operation_name", "error_type"))
		check("messaging_client_sent_messages_total by topic",
			map[string]float64{"orders.results": float64(len(results)), "orders.dlq": float64(len(dlq))},
			metricSeries(fams, "messaging_client_sent_messages_total", "messaging_destination_name"))
		check("ordersync_gateway_duration_seconds count by method", wantGateway,
			metricSeries(fams, "ordersync_gateway_duration_seconds", "ordersync_top_method"))
		check("ordersync_gateway_retries_total by method", wantRetries,
			metricSeries(fams, "ordersync_gateway_retries_total", "ordersync_top_method"))
		check("ordersync_dedupe_results_total", wantDedupe,
			metricSeries(fams, "ordersync_dedupe_results_total", "ordersync_dedupe_result"))
		check("ordersync_consumer_lag by topic/partition", wantLag,
			metricSeries(fams, "ordersync_consumer_lag", "messaging_destination_name", "messaging_destination_partition_id"))
		return diffs
	}
	var diffs []string
	deadline := time.Now().Add(10 * time.Second)
	for diffs = checks(); len(diffs) > 0 && time.Now().Before(deadline); diffs = checks() {
		time.Sleep(100 * time.Millisecond) // the last measurements land just after the outcomes
	}
	for _, d := range diffs {
		t.Error(d)
	}

	// Gateway results: every simulator success is an "ok" call.
	okCalls := 0.0
	for k, v := range metricSeries(fams, "ordersync_gateway_duration_seconds", "ordersync_result") {
		if k == "ok" {
			okCalls = v
		}
	}
	if okCalls != float64(stats.Succeeded) {
		t.Errorf("ordersync_gateway_duration_seconds{ordersync_result=\"ok\"} count %v, want the simulator's %d successes", okCalls, stats.Succeeded)
	}
	if sumValues(wantRetries) == 0 {
		t.Errorf("no retries under injected faults; the retry counter went untested")
	}
	// Commit lag per partition is exported once the group has committed.
	if got := metricSeries(fams, "ordersync_consumer_commit_lag", "messaging_destination_name", "messaging_destination_partition_id"); len(got) != len(wantLag) {
		t.Errorf("ordersync_consumer_commit_lag series %v, want one per partition in %v", got, wantLag)
	}
	// Low cardinality: no label carries an event id, key or offset.
	for _, ev := range events {
		if strings.Contains(text, ev.eventID) || strings.Contains(text, ev.key) {
			t.Fatalf("/metrics mentions event %s or key %s: labels must be low-cardinality", ev.eventID, ev.key)
		}
	}
	if testing.Verbose() {
		logFamilies(t, fams)
	}
}

func sumValues(m map[string]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

// logFamilies lists the ordersync and messaging metric families with their labels (the
// README's metric table comes from this).
func logFamilies(t *testing.T, fams map[string]*dto.MetricFamily) {
	var names []string
	for n := range fams {
		if strings.HasPrefix(n, "ordersync_") || strings.HasPrefix(n, "messaging_") ||
			strings.HasPrefix(n, "http_client_") || strings.HasPrefix(n, "db_client_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		f := fams[n]
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !strings.HasPrefix(l.GetName(), "otel_scope_") {
					labels[l.GetName()] = true
				}
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		t.Logf("%s %s {%s} %s", n, f.GetType(), strings.Join(ls, ","), f.GetHelp())
	}
}

func TestObservabilityRedaction(t *testing.T) {
	e := newE2E(t, 1)
	if err := e.sim.SetFaults(topsim.Faults{ErrorRate: 0.2, ISPRate: 0.3}); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(t)
	// Upstream systems choose event ids and keys, and some use the buyer's phone: here a buyer
	// phone in a payload, a phone in an event id, idempotency key and message key, a channel
	// that sends a session key, and an invalid event that goes to the DLQ with the phone in it.
	tmall := g.valid("tmall-aliauto", "red1") // buyer_info.user_phone 13912340000 in the seed
	if !bytes.Contains(tmall.value, []byte(buyerPhone)) {
		t.Fatalf("tmall-aliauto seed lost its buyer phone %s", buyerPhone)
	}
	diantao := g.valid("diantao-tripartite", buyerPhone)
	diantao.value = bytes.Replace(diantao.value, []byte(`"15249762486"`), []byte(`"`+buyerPhone+`"`), 1)
	omni := g.valid("omni-saas", "red3")
	bad := g.malformed("tmall-aliauto", "red4")
	bad.key = buyerPhone
	events := []testEvent{tmall, diantao, omni, bad}
	if !strings.Contains(diantao.key, buyerPhone) {
		t.Fatalf("diantao key %q does not contain the phone", diantao.key)
	}

	col := newSpanCollector()
	cfg := e.config("obs-redact")
	cfg.Log.Level = "debug"
	w := e.startWorkerWith(cfg, &telemetry.Options{SpanExporter: col, Getenv: noOTelEnv})
	for _, ev := range events {
		publishWithHeaders(e, ev, kafka.Header{Key: "traceparent", Value: []byte(upstreamParent)})
	}
	got := e.outcomes(events, 60*time.Second)
	e.checkDelivery(events, got, false)
	results := readRecords(e, "orders.results", len(events))
	dlq := readRecords(e, "orders.dlq", 1)
	_, metricsText := scrapeMetrics(t, w.addr)
	stopObserved(t, w)

	logs := w.logs.String()
	spanText := dumpSpans(col.GetSpans())
	captured := map[string]string{
		"logs":     logs,
		"spans":    spanText,
		"outcomes": dumpMessages(results),
		"dlq":      dumpMessages(dlq),
		"metrics":  metricsText,
	}
	for what, text := range captured {
		for _, secret := range []string{e2eSecret, e2eSession} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain the secret %q", what, secret)
			}
		}
	}
	for _, what := range []string{"logs", "spans", "metrics"} {
		if i := strings.Index(captured[what], buyerPhone); i >= 0 {
			text := captured[what]
			t.Errorf("%s contain the raw phone %s: …%s…", what, buyerPhone, text[max(i-200, 0):min(i+100, len(text))])
		}
	}
	// The phone is there, masked, where the key is recorded.
	for _, what := range []string{"logs", "spans"} {
		if !strings.Contains(captured[what], maskedBuyerPhone) {
			t.Errorf("%s do not contain the masked phone %s", what, maskedBuyerPhone)
		}
	}
	checkEventLogsTraced(t, logs)
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

// BenchmarkPipelineTracing measures what tracing costs per event: the pipeline processes a
// seed event (claim in redis-server, one call to the simulator over loopback HTTP, complete)
// under a process span and a send span, as the consumer does, with
//
//   - off: OTEL_SDK_DISABLED=true (no-op tracer provider; trace context still propagated);
//   - no-exporter: the default without OTEL_* (SDK spans with ids, nothing queued or exported);
//   - memory: the SDK with a batch processor and an in-memory exporter (emptied every 256
//     events, so retained spans do not inflate garbage collection);
//   - otlp: the SDK with the real OTLP/HTTP protobuf exporter, sending to a loopback receiver
//     that discards what it gets.
//
// Besides ns/op it reports cpu-ns/op, the CPU time of the whole test process per event, which
// includes the span processing in the batch processor's goroutine.
//
// Run: go test ./cmd/worker -run '^$' -bench PipelineTracing -benchmem -benchtime 3000x -count 8
func BenchmarkPipelineTracing(b *testing.B) {
	discard := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer discard.Close()
	for _, mode := range []struct {
		name string
		env  map[string]string
		exp  func() (sdktrace.SpanExporter, func())
	}{
		{name: "off", env: map[string]string{"OTEL_SDK_DISABLED": "true"}},
		{name: "no-exporter"},
		{name: "memory", exp: func() (sdktrace.SpanExporter, func()) {
			e := tracetest.NewInMemoryExporter()
			return e, e.Reset
		}},
		{name: "otlp", exp: func() (sdktrace.SpanExporter, func()) {
			e, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(discard.URL+"/v1/traces"))
			if err != nil {
				b.Fatal(err)
			}
			return e, nil
		}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			opts := telemetry.Options{Getenv: func(k string) string { return mode.env[k] }}
			var every256 func()
			if mode.exp != nil {
				opts.SpanExporter, every256 = mode.exp()
			}
			benchPipeline(b, opts, every256)
		})
	}
}

func benchPipeline(b *testing.B, topts telemetry.Options, every256 func()) {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, topts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	tp, mp := tel.TracerProvider(), tel.MeterProvider()

	reg, err := dispatch.NewRegistry(nil)
	if err != nil {
		b.Fatal(err)
	}
	sim, err := topsim.New(topsim.Config{AppKey: e2eAppKey, AppSecret: e2eSecret, Sessions: []string{e2eSession}, Rules: reg, Seed: 7})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)

	rs := redistest.Start(b)
	rdb := rs.Client()
	b.Cleanup(func() { _ = rdb.Close() })
	if err := telemetry.InstrumentRedis(rdb, tp, mp); err != nil {
		b.Fatal(err)
	}
	store, err := dedupe.New(rdb, dedupe.Config{})
	if err != nil {
		b.Fatal(err)
	}
	client, err := topapi.New(topapi.Config{
		Gateway:    srv.URL + "/router/rest",
		AppKey:     e2eAppKey,
		AppSecret:  e2eSecret,
		HTTPClient: &http.Client{Transport: telemetry.HTTPTransport(topapi.NewTransport(), tp, mp)},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(client.CloseIdleConnections)
	pipeline, err := pipeline.New(pipeline.Config{
		Registry: reg, Dedupe: store, Gateways: []pipeline.Gateway{{Name: "sim", Caller: client}}, AppKey: e2eAppKey,
		Sessions: pipeline.NewSessions(map[string]string{e2eSeller: e2eSession}), DefaultSeller: e2eSeller,
		ResultsTopic:   "orders.results",
		Logger:         telemetry.NewLogger(io.Discard, "json", 0),
		TracerProvider: tp, MeterProvider: mp,
	})
	if err != nil {
		b.Fatal(err)
	}

	// The seed event, with its idempotency key (request_no) made unique per iteration.
	seed := dispatch.SeedEvents()["omni-saas"]
	const seedKey = "REQ-3436967"
	if !bytes.Contains(seed, []byte(seedKey)) {
		b.Fatalf("omni-saas seed event lacks request_no %s", seedKey)
	}
	ch, _ := reg.ByID("omni-saas")
	tracer := tp.Tracer("github.com/ordersync/ordersync/pkg/consumer")
	prop := tel.Propagator()
	run := func(i int) {
		key := "REQ-b" + strconv.Itoa(i)
		m := kafka.Message{
			Topic: ch.Topic, Partition: 0, Offset: int64(i), Key: []byte(key),
			Value:   bytes.Replace(seed, []byte(seedKey), []byte(key), 1),
			Headers: []kafka.Header{{Key: "traceparent", Value: []byte(upstreamParent)}},
		}
		// What consumer.partition.handle and publish do around the processor.
		pctx := prop.Extract(ctx, consumer.HeaderCarrier{Headers: &m.Headers})
		pctx, span := tracer.Start(pctx, "process "+m.Topic, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", m.Topic),
			attribute.String("messaging.destination.partition.id", "0"),
			attribute.Int64("messaging.kafka.offset", m.Offset),
			attribute.String("messaging.kafka.message.key", key),
		))
		res, err := pipeline.Process(pctx, m)
		if err != nil {
			b.Fatal(err)
		}
		outs := res.Records
		for j := range outs {
			_, s := tracer.Start(pctx, "send "+outs[j].Topic, trace.WithSpanKind(trace.SpanKindProducer))
			prop.Inject(trace.ContextWithSpan(pctx, s), consumer.HeaderCarrier{Headers: &outs[j].Headers})
			s.End()
		}
		span.End()
		if i == 0 {
			var o dispatch.Outcome
			if err := json.Unmarshal(outs[0].Value, &o); err != nil || o.Status != dispatch.StatusSucceeded {
				b.Fatalf("benchmark event: %s (%v)", outs[0].Value, err)
			}
		}
	}
	run(0) // warm up connections
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	i := 1
	for b.Loop() {
		run(i)
		if every256 != nil && i%256 == 0 {
			every256()
		}
		i++
	}
	// Wall time is mostly loopback round trips to Redis and the simulator; the CPU time of this
	// process (pipeline, simulator, span processing and export) shows the work tracing adds.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(i-1), "cpu-ns/op")
}

// cpuTime is the user+system CPU time this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
