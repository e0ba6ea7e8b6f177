package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// discardExporter accepts and drops every span.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// benchProviders are the three tracing set-ups Setup can produce.
func benchProviders(b *testing.B) []struct {
	name string
	tp   trace.TracerProvider
} {
	noExporter := sdktrace.NewTracerProvider()
	batch := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
	b.Cleanup(func() {
		_ = noExporter.Shutdown(context.Background())
		_ = batch.Shutdown(context.Background())
	})
	return []struct {
		name string
		tp   trace.TracerProvider
	}{
		{"off_noop", noop.NewTracerProvider()},
		{"sdk_no_exporter", noExporter},
		{"sdk_batch_discard", batch},
	}
}

// BenchmarkSpan measures starting and ending one span with the attributes of
// a `process <topic>` span.
func BenchmarkSpan(b *testing.B) {
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", "orders.omni-saas"),
		attribute.String("messaging.destination.partition.id", "3"),
		attribute.Int64("messaging.kafka.offset", 123456),
		attribute.String("messaging.kafka.message.key", "seller-1:order-42"),
		attribute.String("messaging.consumer.group.name", "ordersync"),
		attribute.String("messaging.message.id", "evt-0001"),
	}
	for _, p := range benchProviders(b) {
		tr := p.tp.Tracer("bench")
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				_, span := tr.Start(ctx, "process orders.omni-saas", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
				span.End()
			}
		})
	}
}

// BenchmarkEventSpans measures the spans of one event as the pipeline makes
// them: process (8 attributes), a dedupe claim and complete (2 Redis
// spans), one gateway attempt (5 attributes and a status) and send
// (4 attributes), plus reading the trace id for the outcome. This is the
// per-event "tracing on vs off" cost; everything else in the event is
// untouched by tracing.
func BenchmarkEventSpans(b *testing.B) {
	proc := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", "orders.omni-saas"),
		attribute.String("messaging.destination.partition.id", "3"),
		attribute.Int64("messaging.kafka.offset", 123456),
		attribute.String("messaging.kafka.message.key", "seller-1:order-42"),
		attribute.String("messaging.consumer.group.name", "ordersync"),
		attribute.String("messaging.message.id", "evt-0001"),
	}
	redisAttrs := []attribute.KeyValue{
		attribute.String("db.system", "redis"),
		attribute.String("db.connection_string", "redis://127.0.0.1:6379"),
		attribute.String("server.address", "127.0.0.1"),
		attribute.Int("server.port", 6379),
	}
	gw := []attribute.KeyValue{
		attribute.String("http.request.method", "POST"),
		attribute.String("url.full", "https://eco.taobao.com/router/rest"),
		attribute.String("server.address", "eco.taobao.com"),
		attribute.String("ordersync.top.method", "alibaba.omni.saas.order.create"),
		attribute.Int("http.request.resend_count", 0),
	}
	send := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.destination.name", "orders.results"),
		attribute.String("messaging.kafka.message.key", "seller-1:order-42"),
	}
	for _, p := range benchProviders(b) {
		tr := p.tp.Tracer("bench")
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := tr.Start(context.Background(), "process orders.omni-saas", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(proc...))
				for _, name := range []string{"evalsha", "evalsha"} {
					_, s := tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(redisAttrs...))
					s.End()
				}
				_, s := tr.Start(ctx, "POST /router/rest", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(gw...))
				s.SetAttributes(attribute.Int("http.response.status_code", 200))
				s.End()
				_, s = tr.Start(ctx, "send orders.results", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(send...))
				s.End()
				_ = span.SpanContext().TraceID().String()
				span.End()
			}
		})
	}
}
