package telemetry

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// exportedSpan is what a span exporter sees of a span, flattened for cmp.
type exportedSpan struct {
	Name   string
	Status string
	Attrs  map[string]string
	Events map[string]map[string]string
	Links  []map[string]string
}

func flatten(s sdktrace.ReadOnlySpan) exportedSpan {
	kv := func(kvs []attribute.KeyValue) map[string]string {
		m := map[string]string{}
		for _, a := range kvs {
			m[string(a.Key)] = a.Value.String()
		}
		return m
	}
	out := exportedSpan{Name: s.Name(), Status: s.Status().Description, Attrs: kv(s.Attributes()), Events: map[string]map[string]string{}}
	for _, e := range s.Events() {
		out.Events[e.Name] = kv(e.Attributes)
	}
	for _, l := range s.Links() {
		out.Links = append(out.Links, kv(l.Attributes))
	}
	return out
}

func TestSetupMasksPhonesInSpans(t *testing.T) {
	cleanEnv(t)
	tel, exp := setup(t, Options{})
	tr := tel.Tracer("test")
	_, link := tr.Start(context.Background(), "upstream")
	link.End()
	_, span := tr.Start(context.Background(), "process 13912340000",
		trace.WithAttributes(
			attribute.String("messaging.kafka.message.key", "DT-13912340000:true"),
			attribute.StringSlice("phones", []string{"none", "+86 139-1234-0000"}),
			attribute.Int64("messaging.kafka.offset", 13912340000), // a number, not a string: kept
			attribute.String("order", "2024091167897678768"),
		),
		trace.WithLinks(trace.Link{SpanContext: link.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("buyer", "13912340000")}}),
	)
	span.AddEvent("backoff", trace.WithAttributes(attribute.String("error", "isv.invalid-parameter: user_phone 13912340000")))
	span.AddEvent("retry")
	span.SetStatus(codes.Error, "phone 8613912340000 rejected")
	span.End()
	_, clean := tr.Start(context.Background(), "clean", trace.WithAttributes(attribute.String("k", "v")))
	clean.End()
	if err := tel.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}

	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("got %d spans, want 3", len(spans))
	}
	got := flatten(spans[1].Snapshot())
	want := exportedSpan{
		Name:   "process 139****0000",
		Status: "phone 86139****0000 rejected",
		Attrs: map[string]string{
			"messaging.kafka.message.key": "DT-139****0000:true",
			"phones":                      `["none","+86 139-****-0000"]`,
			"messaging.kafka.offset":      "13912340000",
			"order":                       "2024091167897678768",
		},
		Events: map[string]map[string]string{
			"backoff": {"error": "isv.invalid-parameter: user_phone 139****0000"},
			"retry":   {},
		},
		Links: []map[string]string{{"buyer": "139****0000"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("exported span (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(exportedSpan{Name: "clean", Attrs: map[string]string{"k": "v"}, Events: map[string]map[string]string{}}, flatten(spans[2].Snapshot())); diff != "" {
		t.Errorf("span without phones (-want +got):\n%s", diff)
	}
}

// A span with nothing to mask reaches the exporter as the SDK made it, and a
// batch without any phone is passed on without copying.
func TestMaskingExporterPassesCleanSpansThrough(t *testing.T) {
	rec := &recordingExporter{}
	exp := maskingExporter{next: rec}
	clean := tracetest.SpanStub{Name: "send orders.results", Attributes: []attribute.KeyValue{attribute.String("k", "REQ-3436967")}}.Snapshot()
	dirty := tracetest.SpanStub{Name: "process", Attributes: []attribute.KeyValue{attribute.String("k", "13912340000")}}.Snapshot()

	batch := []sdktrace.ReadOnlySpan{clean, clean}
	if err := exp.ExportSpans(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if &rec.got[0] != &batch[0] {
		t.Errorf("a clean batch was copied")
	}
	batch = []sdktrace.ReadOnlySpan{clean, dirty}
	if err := exp.ExportSpans(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if _, masked := rec.got[0].(*maskedSpan); masked {
		t.Errorf("the clean span was copied")
	}
	if _, masked := rec.got[1].(*maskedSpan); !masked {
		t.Errorf("got %T for the span with a phone, want a masked copy", rec.got[1])
	}
	if _, masked := batch[1].(*maskedSpan); masked || dirty.Attributes()[0].Value.AsString() != "13912340000" {
		t.Errorf("the exporter modified the batch or span it was given")
	}
	if got := rec.got[1].Attributes()[0].Value.AsString(); got != "139****0000" {
		t.Errorf("masked attribute %q, want 139****0000", got)
	}
}

type recordingExporter struct{ got []sdktrace.ReadOnlySpan }

func (r *recordingExporter) ExportSpans(_ context.Context, s []sdktrace.ReadOnlySpan) error {
	r.got = s
	return nil
}

func (*recordingExporter) Shutdown(context.Context) error { return nil }

func BenchmarkMaskingExporter(b *testing.B) {
	spans := make([]sdktrace.ReadOnlySpan, 512)
	for i := range spans {
		spans[i] = tracetest.SpanStub{Name: "top alibaba.omni.saas.order.create", Attributes: []attribute.KeyValue{
			attribute.String("messaging.kafka.message.key", "REQ-3436967"),
			attribute.String("ordersync.top.method", "alibaba.omni.saas.order.create"),
			attribute.Int("ordersync.top.attempt", 1),
			attribute.String("url.full", "http://127.0.0.1:18080/router/rest"),
		}}.Snapshot()
	}
	exp := maskingExporter{next: &recordingExporter{}}
	b.ReportAllocs()
	for b.Loop() {
		_ = exp.ExportSpans(context.Background(), spans)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(spans)), "ns/span")
}
