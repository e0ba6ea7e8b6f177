package telemetry

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestKafkaCarrierRoundTrip(t *testing.T) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x00, 0xf0, 2}, TraceFlags: trace.FlagsSampled,
	})
	member, err := baggage.NewMember("pos.store", "hz-001")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc), bag)

	out := kafka.Message{Headers: []kafka.Header{{Key: "content-type", Value: []byte("application/json")}}}
	prop.Inject(ctx, KafkaCarrier(&out.Headers))
	if diff := cmp.Diff([]string{"content-type", "traceparent", "baggage"}, KafkaCarrier(&out.Headers).Keys()); diff != "" {
		t.Errorf("header keys (-want +got):\n%s", diff)
	}

	got := prop.Extract(context.Background(), KafkaCarrier(&out.Headers))
	gotSC := trace.SpanContextFromContext(got)
	if gotSC.TraceID() != sc.TraceID() || gotSC.SpanID() != sc.SpanID() || !gotSC.IsSampled() || !gotSC.IsRemote() {
		t.Errorf("extracted %v, want remote %v", gotSC, sc)
	}
	if v := baggage.FromContext(got).Member("pos.store").Value(); v != "hz-001" {
		t.Errorf("baggage pos.store = %q, want hz-001", v)
	}
}

// Regression guard: a result built from copied inbound headers must end up
// with one traceparent (ours), and the inbound message must not change.
func TestKafkaCarrierSetReplaces(t *testing.T) {
	in := kafka.Message{Headers: []kafka.Header{
		{Key: "traceparent", Value: []byte("upstream-1")},
		{Key: "x-pos", Value: []byte("a")},
		{Key: "Traceparent", Value: []byte("upstream-2")},
	}}
	inCopy := append([]kafka.Header(nil), in.Headers...)
	out := kafka.Message{Headers: in.Headers[:2]} // shares in's array, with spare capacity

	KafkaCarrier(&out.Headers).Set("traceparent", "ours")
	KafkaCarrier(&out.Headers).Set("baggage", "k=v")

	want := []kafka.Header{{Key: "x-pos", Value: []byte("a")}, {Key: "traceparent", Value: []byte("ours")}, {Key: "baggage", Value: []byte("k=v")}}
	if diff := cmp.Diff(want, out.Headers); diff != "" {
		t.Errorf("out headers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(inCopy, in.Headers); diff != "" {
		t.Errorf("inbound headers changed (-want +got):\n%s", diff)
	}
	if got := KafkaCarrier(&in.Headers).Get("TRACEPARENT"); got != "upstream-1" {
		t.Errorf("Get = %q, want the first match upstream-1", got)
	}
	if got := KafkaCarrier(&in.Headers).Get("tracestate"); got != "" {
		t.Errorf("Get(absent) = %q, want empty", got)
	}
}

func TestKafkaCarrierAppendDoesNotClobberShared(t *testing.T) {
	in := []kafka.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}
	out := in[:1] // len 1, cap 2: a plain append would overwrite in[1]
	KafkaCarrier(&out).Set("traceparent", "ours")
	if got := string(in[1].Value); got != "2" {
		t.Errorf("in[1] = %q after Set on a shared prefix, want 2", got)
	}
}
