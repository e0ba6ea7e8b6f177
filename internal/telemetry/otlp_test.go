package telemetry

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver collects the spans of every export request it decodes.
type otlpReceiver struct {
	mu       sync.Mutex
	requests int
	spans    []*tracepb.ResourceSpans
}

func (r *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.spans = append(r.spans, req.GetResourceSpans()...)
}

// received returns "service.name/span name" for every span received so far.
func (r *otlpReceiver) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rs := range r.spans {
		svc := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				out = append(out, svc+"/"+s.GetName())
			}
		}
	}
	sort.Strings(out)
	return out
}

// ServeHTTP implements OTLP/HTTP with protobuf bodies (POST /v1/traces).
func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "content type "+ct, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&msg)
	resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

// grpcReceiver implements the OTLP gRPC trace service.
type grpcReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	r *otlpReceiver
}

func (g grpcReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.r.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// emit creates a small trace through Setup's tracer and shuts down, which
// must flush it: the batch processor's 5s delay has not passed.
func emit(t *testing.T) {
	t.Helper()
	tel, err := Setup(context.Background(), Options{ServiceVersion: "test"})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	ctx, parent := tel.Tracer("test").Start(context.Background(), "process orders.omni-saas")
	_, child := tel.Tracer("test").Start(ctx, "send orders.results")
	child.End()
	parent.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

var wantExported = []string{"ordersync/process orders.omni-saas", "ordersync/send orders.results"}

func TestOTLPHTTPExport(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{name: "endpoint only (http/protobuf default)", env: map[string]string{}},
		{name: "explicit http/protobuf", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}},
		{name: "OTEL_TRACES_EXPORTER=otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := &otlpReceiver{}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			cleanEnv(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			emit(t)
			if diff := cmp.Diff(wantExported, rcv.received()); diff != "" {
				t.Errorf("received spans (-want +got):\n%s", diff)
			}
		})
	}
}

// The traces-specific endpoint is used as is (no /v1/traces appended).
func TestOTLPHTTPTracesEndpoint(t *testing.T) {
	rcv := &otlpReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cleanEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.URL+"/v1/traces")
	emit(t)
	if diff := cmp.Diff(wantExported, rcv.received()); diff != "" {
		t.Errorf("received spans (-want +got):\n%s", diff)
	}
}

func TestOTLPGRPCExport(t *testing.T) {
	rcv := &otlpReceiver{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, grpcReceiver{r: rcv})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	defer func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("grpc Serve: %v", err)
		}
	}()
	cleanEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", fmt.Sprintf("http://%s", lis.Addr()))
	emit(t)
	if diff := cmp.Diff(wantExported, rcv.received()); diff != "" {
		t.Errorf("received spans (-want +got):\n%s", diff)
	}
}

// Without an exporter configured (here: Getenv hides the endpoint that the
// process environment has) no exporter is built, so nothing is sent even
// though the OTLP exporter would read that endpoint.
func TestNoExporterSendsNothing(t *testing.T) {
	rcv := &otlpReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cleanEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	tel, err := Setup(context.Background(), Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	_, span := tel.Tracer("test").Start(context.Background(), "op")
	span.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !span.SpanContext().IsValid() {
		t.Error("span has no trace id, want one")
	}
	if got := rcv.received(); len(got) != 0 {
		t.Errorf("received %v, want nothing", got)
	}
}
