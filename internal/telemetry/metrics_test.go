package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// scrape GETs the metrics handler over a real socket.
func scrape(t *testing.T, tel *Telemetry, accept string) (string, string) {
	t.Helper()
	srv := httptest.NewServer(tel.MetricsHandler())
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	return string(body), resp.Header.Get("Content-Type")
}

// recordSample records the kinds of instruments the worker uses.
func recordSample(t *testing.T, ctx context.Context, tel *Telemetry) {
	t.Helper()
	m := tel.Meter("github.com/ordersync/ordersync/pkg/consumer")
	consumed, err := m.Int64Counter("ordersync.events.consumed", metric.WithUnit("{event}"), metric.WithDescription("Events consumed."))
	if err != nil {
		t.Fatal(err)
	}
	process, err := m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"), metric.WithDescription("Processing duration."))
	if err != nil {
		t.Fatal(err)
	}
	gateway, err := m.Float64Histogram("ordersync.top.call.duration", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	inflight, err := m.Int64UpDownCounter("ordersync.events.in_flight", metric.WithUnit("{event}"))
	if err != nil {
		t.Fatal(err)
	}
	lag, err := m.Int64Gauge("messaging.kafka.consumer.lag", metric.WithUnit("{message}"))
	if err != nil {
		t.Fatal(err)
	}
	bytes, err := m.Int64Counter("ordersync.outcome.size", metric.WithUnit("By"))
	if err != nil {
		t.Fatal(err)
	}
	attrs := metric.WithAttributes(attribute.String("ordersync.channel", "omni-saas"), attribute.String("ordersync.status", "succeeded"))
	consumed.Add(ctx, 2, attrs)
	consumed.Add(ctx, 1, attrs)
	process.Record(ctx, 0.003, metric.WithAttributes(attribute.String("messaging.destination.name", "orders.omni-saas")))
	process.Record(ctx, 0.3, metric.WithAttributes(attribute.String("messaging.destination.name", "orders.omni-saas")))
	gateway.Record(ctx, 0.02)
	inflight.Add(ctx, 5)
	inflight.Add(ctx, -2)
	lag.Record(ctx, 42, metric.WithAttributes(attribute.String("messaging.destination.partition.id", "3")))
	bytes.Add(ctx, 512)
}

func TestMetricsHandler(t *testing.T) {
	cleanEnv(t)
	tel, _ := setup(t, Options{ServiceVersion: "v1.2.3"})
	recordSample(t, context.Background(), tel)
	body, ctype := scrape(t, tel, "")
	if !strings.HasPrefix(ctype, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ctype)
	}
	scope := `otel_scope_name="github.com/ordersync/ordersync/pkg/consumer",otel_scope_schema_url="",otel_scope_version=""`
	for _, want := range []string{
		// counter: dots → underscores, "{event}" adds nothing, _total added
		`# TYPE ordersync_events_consumed_total counter`,
		`ordersync_events_consumed_total{ordersync_channel="omni-saas",ordersync_status="succeeded",` + scope + `} 3`,
		// histogram in seconds: _seconds, messaging buckets from the View
		`# TYPE messaging_process_duration_seconds histogram`,
		`messaging_process_duration_seconds_bucket{messaging_destination_name="orders.omni-saas",` + scope + `,le="0.005"} 1`,
		`messaging_process_duration_seconds_bucket{messaging_destination_name="orders.omni-saas",` + scope + `,le="0.25"} 1`,
		`messaging_process_duration_seconds_bucket{messaging_destination_name="orders.omni-saas",` + scope + `,le="0.5"} 2`,
		`messaging_process_duration_seconds_bucket{messaging_destination_name="orders.omni-saas",` + scope + `,le="10"} 2`,
		`messaging_process_duration_seconds_count{messaging_destination_name="orders.omni-saas",` + scope + `} 2`,
		`ordersync_top_call_duration_seconds_bucket{` + scope + `,le="0.025"} 1`,
		// up-down counter: a gauge, no _total
		`# TYPE ordersync_events_in_flight gauge`,
		`ordersync_events_in_flight{` + scope + `} 3`,
		// gauge
		`messaging_kafka_consumer_lag{messaging_destination_partition_id="3",` + scope + `} 42`,
		// unit By → _bytes before _total
		`ordersync_outcome_size_bytes_total{` + scope + `} 512`,
		// resource once, as target_info
		`target_info{`,
		`service_name="ordersync"`,
		`service_version="v1.2.3"`,
		// Go runtime and process collectors
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, `le="5000"`) {
		t.Error("a seconds histogram has the SDK's millisecond default buckets")
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("scrape:\n%s", body)
	}
}

// A measurement made inside a sampled span carries an exemplar with the trace
// id in the OpenMetrics format.
func TestMetricsExemplar(t *testing.T) {
	cleanEnv(t)
	tel, _ := setup(t, Options{})
	ctx, span := tel.Tracer("test").Start(context.Background(), "process orders.omni-saas")
	recordSample(t, ctx, tel)
	span.End()
	body, ctype := scrape(t, tel, "application/openmetrics-text;version=1.0.0")
	if !strings.HasPrefix(ctype, "application/openmetrics-text") {
		t.Fatalf("Content-Type = %q, want OpenMetrics", ctype)
	}
	want := `# {trace_id="` + span.SpanContext().TraceID().String() + `"`
	if !strings.Contains(body, "messaging_process_duration_seconds_bucket") || !strings.Contains(body, want) {
		t.Errorf("OpenMetrics scrape lacks an exemplar %q:\n%s", want, body)
	}
}
