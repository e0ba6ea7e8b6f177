package telemetry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// otelEnv lists every variable Setup or the SDK reads; cleanEnv blanks them so
// a developer's shell (say, an exported OTEL_EXPORTER_OTLP_ENDPOINT) cannot
// change a test. The SDK and autoexport treat "" as unset.
var otelEnv = []string{
	"OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_PROPAGATORS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
	"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
	"OTEL_BSP_SCHEDULE_DELAY", "OTEL_METRICS_EXEMPLAR_FILTER",
	"POD_NAME", "K8S_POD_NAME",
}

// cleanEnv blanks the OTel variables for the test (not usable with t.Parallel).
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
}

// setup runs Setup with an in-memory exporter and shuts it down at cleanup.
func setup(t *testing.T, opts Options) (*Telemetry, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	if opts.SpanExporter == nil {
		opts.SpanExporter = exp
	}
	tel, err := Setup(context.Background(), opts)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tel, exp
}

// endSpan starts and ends one span and flushes it.
func endSpan(t *testing.T, tel *Telemetry) trace.SpanContext {
	t.Helper()
	_, span := tel.Tracer("test").Start(context.Background(), "process orders")
	span.End()
	if err := tel.ForceFlush(context.Background()); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	return span.SpanContext()
}

func resourceAttrs(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Resource.Attributes() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

func TestSetupResource(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		version string
		want    map[string]string // subset of the resource
		absent  []string
	}{
		{
			name:    "defaults",
			version: "v1.2.3",
			want:    map[string]string{"service.name": "ordersync", "service.version": "v1.2.3", "host.name": host, "telemetry.sdk.language": "go"},
			absent:  []string{"k8s.pod.name"},
		},
		{
			name:   "no version",
			want:   map[string]string{"service.name": "ordersync"},
			absent: []string{"service.version"},
		},
		{
			name: "OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES",
			env: map[string]string{
				"OTEL_SERVICE_NAME":        "ordersync-canary",
				"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging,service.name=ignored,service.version=v9",
			},
			version: "v1.2.3",
			want:    map[string]string{"service.name": "ordersync-canary", "deployment.environment.name": "staging", "service.version": "v9"},
		},
		{
			name: "POD_NAME",
			env:  map[string]string{"POD_NAME": "ordersync-7d9f-abcde", "K8S_POD_NAME": "other"},
			want: map[string]string{"k8s.pod.name": "ordersync-7d9f-abcde"},
		},
		{
			name: "K8S_POD_NAME",
			env:  map[string]string{"K8S_POD_NAME": "ordersync-7d9f-xyz"},
			want: map[string]string{"k8s.pod.name": "ordersync-7d9f-xyz"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			tel, exp := setup(t, Options{ServiceVersion: tt.version})
			endSpan(t, tel)
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("got %d spans, want 1", len(spans))
			}
			got := resourceAttrs(spans[0])
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("resource %s = %q, want %q", k, got[k], want)
				}
			}
			for _, k := range tt.absent {
				if v, ok := got[k]; ok {
					t.Errorf("resource has %s = %q, want none", k, v)
				}
			}
		})
	}
}

// Getenv decides what Setup interprets itself; here the process environment
// has no pod name but Getenv does.
func TestSetupGetenv(t *testing.T) {
	cleanEnv(t)
	env := map[string]string{"POD_NAME": "from-getenv"}
	tel, exp := setup(t, Options{Getenv: func(k string) string { return env[k] }})
	endSpan(t, tel)
	if got := resourceAttrs(exp.GetSpans()[0])["k8s.pod.name"]; got != "from-getenv" {
		t.Errorf("k8s.pod.name = %q, want from-getenv", got)
	}
}

func TestSetupTracerProvider(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		wantSDK     bool // an *sdktrace.TracerProvider
		wantValid   bool // root spans get trace ids
		wantSampled bool
	}{
		// Without an exporter, spans record nothing but still get ids.
		{name: "no exporter configured", wantValid: true},
		{name: "exporter none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}, wantValid: true},
		{name: "sampler always_off", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, wantValid: true},
		{name: "exporter configured", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, wantSDK: true, wantValid: true, wantSampled: true},
		{name: "exporter configured, sampler ratio 0", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
			"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, wantSDK: true, wantValid: true},
		{name: "SDK disabled", env: map[string]string{"OTEL_SDK_DISABLED": "TRUE"}},
		{name: "SDK disabled=false", env: map[string]string{"OTEL_SDK_DISABLED": "false"}, wantValid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			tel, err := Setup(context.Background(), Options{})
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			defer func() {
				if err := tel.Shutdown(context.Background()); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			}()
			_, isSDK := tel.TracerProvider().(*sdktrace.TracerProvider)
			if isSDK != tt.wantSDK {
				t.Errorf("TracerProvider is %T, want SDK provider: %v", tel.TracerProvider(), tt.wantSDK)
			}
			if got := otel.GetTracerProvider(); got != tel.TracerProvider() {
				t.Errorf("global tracer provider = %T, want the one from Setup", got)
			}
			_, span := tel.Tracer("test").Start(context.Background(), "op")
			span.End()
			sc := span.SpanContext()
			if sc.IsValid() != tt.wantValid || sc.IsSampled() != tt.wantSampled {
				t.Errorf("span context valid=%v sampled=%v, want valid=%v sampled=%v", sc.IsValid(), sc.IsSampled(), tt.wantValid, tt.wantSampled)
			}
		})
	}
}

// A disabled SDK still carries the caller's trace context through.
func TestSetupDisabledPropagates(t *testing.T) {
	cleanEnv(t)
	t.Setenv("OTEL_SDK_DISABLED", "true")
	tel, _ := setup(t, Options{})
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	_, span := tel.Tracer("test").Start(ctx, "op")
	defer span.End()
	if got := span.SpanContext().TraceID(); got != parent.TraceID() {
		t.Errorf("trace id = %s, want %s", got, parent.TraceID())
	}
}

// Setup reports asynchronous OTel errors to Options.Logger.
func TestSetupLogger(t *testing.T) {
	cleanEnv(t)
	var buf bytes.Buffer
	setup(t, Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	otel.Handle(errors.New("export failed"))
	if got := buf.String(); !strings.Contains(got, `"level":"WARN"`) || !strings.Contains(got, `"error":"export failed"`) {
		t.Errorf("log = %q, want a warning with the error", got)
	}
}

func TestSetupPropagator(t *testing.T) {
	tests := []struct {
		env  string
		want []string
	}{
		{env: "", want: []string{"baggage", "traceparent", "tracestate"}},
		{env: "tracecontext", want: []string{"traceparent", "tracestate"}},
		{env: "b3, tracecontext", want: []string{"b3", "traceparent", "tracestate"}},
		{env: "none", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv("OTEL_PROPAGATORS", tt.env)
			tel, _ := setup(t, Options{})
			got := tel.Propagator().Fields()
			sort.Strings(got)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(got, sorted(otel.GetTextMapPropagator().Fields())); diff != "" {
				t.Errorf("global propagator differs (-setup +global):\n%s", diff)
			}
		})
	}
}

func sorted(s []string) []string { sort.Strings(s); return s }

func TestSetupInvalidEnv(t *testing.T) {
	tests := []struct {
		name, key, value string
	}{
		{"sampler", "OTEL_TRACES_SAMPLER", "always_sometimes"},
		{"sampler arg", "OTEL_TRACES_SAMPLER_ARG", "1.5"},
		{"propagator", "OTEL_PROPAGATORS", "tracecontext,w3c"},
		{"exporter", "OTEL_TRACES_EXPORTER", "zipkin"},
		{"protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"},
		{"resource", "OTEL_RESOURCE_ATTRIBUTES", "broken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv("OTEL_TRACES_SAMPLER", "traceidratio") // lets OTEL_TRACES_SAMPLER_ARG matter
			if tt.key == "OTEL_EXPORTER_OTLP_PROTOCOL" {
				t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			}
			t.Setenv(tt.key, tt.value)
			tel, err := Setup(context.Background(), Options{})
			if err == nil {
				_ = tel.Shutdown(context.Background())
				t.Fatalf("Setup with %s=%q succeeded, want an error", tt.key, tt.value)
			}
			if !strings.Contains(err.Error(), strings.SplitN(tt.key, "_", 3)[0]+"_") {
				t.Errorf("error %q does not name an OTEL_ variable", err)
			}
			t.Logf("%s=%q: %v", tt.key, tt.value, err)
		})
	}
}

// countingExporter counts exported spans and records Shutdown.
type countingExporter struct {
	spans    int
	shutdown bool
}

func (e *countingExporter) ExportSpans(_ context.Context, s []sdktrace.ReadOnlySpan) error {
	e.spans += len(s)
	return nil
}

func (e *countingExporter) Shutdown(context.Context) error {
	if e.shutdown {
		return errors.New("shut down twice")
	}
	e.shutdown = true
	return nil
}

func TestShutdownFlushesAndStopsExporter(t *testing.T) {
	for _, disabled := range []string{"", "true"} {
		t.Run("OTEL_SDK_DISABLED="+disabled, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv("OTEL_SDK_DISABLED", disabled)
			exp := &countingExporter{}
			tel, err := Setup(context.Background(), Options{SpanExporter: exp})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				_, span := tel.Tracer("test").Start(context.Background(), "op", trace.WithAttributes(attribute.Int("n", 1)))
				span.End()
			}
			if err := tel.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := tel.Shutdown(context.Background()); err != nil {
				t.Fatalf("second Shutdown: %v", err)
			}
			want := 3
			if disabled == "true" {
				want = 0
			}
			if exp.spans != want || !exp.shutdown {
				t.Errorf("exported %d spans, shut down %v; want %d, true", exp.spans, exp.shutdown, want)
			}
		})
	}
}
