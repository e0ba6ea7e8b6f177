package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestIDTracer(t *testing.T) {
	tr := idTracerProvider{}.Tracer("test")
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})

	t.Run("root", func(t *testing.T) {
		_, span := tr.Start(context.Background(), "process")
		sc := span.SpanContext()
		if !sc.IsValid() || sc.IsSampled() || span.IsRecording() {
			t.Errorf("root span: valid %v sampled %v recording %v, want a valid, unsampled, non-recording span", sc.IsValid(), sc.IsSampled(), span.IsRecording())
		}
	})
	t.Run("continues a remote parent", func(t *testing.T) {
		ctx, span := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "process")
		sc := span.SpanContext()
		if sc.TraceID() != remote.TraceID() || sc.SpanID() == remote.SpanID() || !sc.IsSampled() || sc.IsRemote() {
			t.Errorf("child of a remote parent: %v; want the parent's trace id and flags, a span id of its own", sc)
		}
		// A span started below a local one is that same span: no ids, no allocation.
		_, child := tr.Start(ctx, "dedupe claim")
		if !child.SpanContext().Equal(sc) {
			t.Errorf("child of a local span has %v, want the parent's %v", child.SpanContext(), sc)
		}
		// A new root leaves the trace.
		_, root := tr.Start(ctx, "other", trace.WithNewRoot())
		if root.SpanContext().TraceID() == sc.TraceID() {
			t.Error("WithNewRoot kept the trace id")
		}
	})
}

func BenchmarkIDTracerChild(b *testing.B) {
	tr := idTracerProvider{}.Tracer("test")
	ctx, _ := tr.Start(context.Background(), "process")
	b.ReportAllocs()
	for b.Loop() {
		_, s := tr.Start(ctx, "dedupe claim")
		s.End()
	}
}
