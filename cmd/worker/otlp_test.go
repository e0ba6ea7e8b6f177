package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

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
