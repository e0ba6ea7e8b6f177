package consumer

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestHeaderCarrierRoundTrip(t *testing.T) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})

	// An outbound record built from copied inbound headers that already hold a traceparent.
	hs := []kafka.Header{{Key: "traceparent", Value: []byte("00-11111111111111111111111111111111-2222222222222222-01")}, {Key: "x", Value: []byte("y")}}
	prop.Inject(trace.ContextWithSpanContext(context.Background(), sc), HeaderCarrier{Headers: &hs})

	var n int
	for _, h := range hs {
		if h.Key == "traceparent" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d traceparent headers after inject, want 1", n)
	}
	got := trace.SpanContextFromContext(prop.Extract(context.Background(), HeaderCarrier{Headers: &hs}))
	if got.TraceID() != tid || got.SpanID() != sid {
		t.Errorf("extracted %s/%s, want %s/%s", got.TraceID(), got.SpanID(), tid, sid)
	}
	if diff := cmp.Diff([]string{"x", "traceparent"}, HeaderCarrier{Headers: &hs}.Keys()); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}
