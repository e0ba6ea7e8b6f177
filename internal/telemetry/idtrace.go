package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// idTracerProvider is the tracer provider when no span exporter is configured: its spans record
// nothing, but every trace still has ids — the trace_id of an outcome, the trace_id of a log
// line and the traceparent the worker writes on its records stay meaningful, and a producer's
// trace continues through the worker. The SDK without an exporter would record every span in
// full (attributes, events, status) only to drop it at the end.
//
// A span started in a context holding a local span (one of these) is that same span: only the
// first span of an event, the one that continues a remote parent or starts a trace, gets an id of
// its own. Nothing here allocates but that span.
type idTracerProvider struct{ embedded.TracerProvider }

func (idTracerProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return idTracer{} }

type idTracer struct{ embedded.Tracer }

func (idTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	psc := parent.SpanContext()
	newRoot := false
	if len(opts) > 0 {
		cfg := trace.NewSpanStartConfig(opts...)
		newRoot = cfg.NewRoot()
	}
	if psc.IsValid() && !psc.IsRemote() && !newRoot {
		return ctx, parent
	}
	cfg := trace.SpanContextConfig{SpanID: newSpanID()}
	if psc.IsValid() && !newRoot {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = psc.TraceID(), psc.TraceFlags(), psc.TraceState()
	} else {
		cfg.TraceID = newTraceID()
	}
	span := idSpan{sc: trace.NewSpanContext(cfg)}
	return trace.ContextWithSpan(ctx, span), span
}

// idSpan is a span that records nothing and has ids.
type idSpan struct {
	noop.Span
	sc trace.SpanContext
}

func (s idSpan) SpanContext() trace.SpanContext     { return s.sc }
func (idSpan) TracerProvider() trace.TracerProvider { return idTracerProvider{} }

func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
