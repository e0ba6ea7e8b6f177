package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/internal/telemetry"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/pipeline"
	"github.com/ordersync/ordersync/pkg/topapi"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// BenchmarkPipelineTracing measures what tracing costs per event: the pipeline processes a
// seed event (claim in redis-server, one call to the simulator over loopback HTTP, complete)
// under a process span and a send span, as the consumer does, with
//
//   - off: OTEL_SDK_DISABLED=true (no-op tracer provider; trace context still propagated);
//   - no-exporter: the default without OTEL_* (SDK spans with ids, nothing queued or exported);
//   - memory: the SDK with a batch processor and an in-memory exporter (emptied every 256
//     events, so retained spans do not inflate garbage collection);
//   - otlp: the SDK with the real OTLP/HTTP protobuf exporter, sending to a loopback receiver
//     that discards what it gets.
//
// Besides ns/op it reports cpu-ns/op, the CPU time of the whole test process per event, which
// includes the span processing in the batch processor's goroutine.
//
// Run: go test ./cmd/worker -run '^$' -bench PipelineTracing -benchmem -benchtime 3000x -count 8
func BenchmarkPipelineTracing(b *testing.B) {
	discard := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer discard.Close()
	for _, mode := range []struct {
		name string
		env  map[string]string
		exp  func() (sdktrace.SpanExporter, func())
	}{
		{name: "off", env: map[string]string{"OTEL_SDK_DISABLED": "true"}},
		{name: "no-exporter"},
		{name: "memory", exp: func() (sdktrace.SpanExporter, func()) {
			e := tracetest.NewInMemoryExporter()
			return e, e.Reset
		}},
		{name: "otlp", exp: func() (sdktrace.SpanExporter, func()) {
			e, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(discard.URL+"/v1/traces"))
			if err != nil {
				b.Fatal(err)
			}
			return e, nil
		}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			opts := telemetry.Options{Getenv: func(k string) string { return mode.env[k] }}
			var every256 func()
			if mode.exp != nil {
				opts.SpanExporter, every256 = mode.exp()
			}
			benchPipeline(b, opts, every256)
		})
	}
}

func benchPipeline(b *testing.B, topts telemetry.Options, every256 func()) {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, topts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	tp, mp := tel.TracerProvider(), tel.MeterProvider()

	reg, err := dispatch.NewRegistry(nil)
	if err != nil {
		b.Fatal(err)
	}
	sim, err := topsim.New(topsim.Config{AppKey: e2eAppKey, AppSecret: e2eSecret, Sessions: []string{e2eSession}, Rules: reg, Seed: 7})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)

	rs := redistest.Start(b)
	rdb := rs.Client()
	b.Cleanup(func() { _ = rdb.Close() })
	if err := telemetry.InstrumentRedis(rdb, tp, mp); err != nil {
		b.Fatal(err)
	}
	store, err := dedupe.New(rdb, dedupe.Config{})
	if err != nil {
		b.Fatal(err)
	}
	client, err := topapi.New(topapi.Config{
		Gateway:    srv.URL + "/router/rest",
		AppKey:     e2eAppKey,
		AppSecret:  e2eSecret,
		HTTPClient: &http.Client{Transport: telemetry.HTTPTransport(topapi.NewTransport(), tp, mp)},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(client.CloseIdleConnections)
	pipeline, err := pipeline.New(pipeline.Config{
		Registry: reg, Dedupe: store, Gateways: []pipeline.Gateway{{Name: "sim", Caller: client}}, AppKey: e2eAppKey,
		Sessions: pipeline.NewSessions(map[string]string{e2eSeller: e2eSession}), DefaultSeller: e2eSeller,
		ResultsTopic:   "orders.results",
		Logger:         telemetry.NewLogger(io.Discard, "json", 0),
		TracerProvider: tp, MeterProvider: mp,
	})
	if err != nil {
		b.Fatal(err)
	}

	// The seed event, with its idempotency key (request_no) made unique per iteration.
	seed := dispatch.SeedEvents()["omni-saas"]
	const seedKey = "REQ-3436967"
	if !bytes.Contains(seed, []byte(seedKey)) {
		b.Fatalf("omni-saas seed event lacks request_no %s", seedKey)
	}
	ch, _ := reg.ByID("omni-saas")
	tracer := tp.Tracer("github.com/ordersync/ordersync/pkg/consumer")
	prop := tel.Propagator()
	run := func(i int) {
		key := "REQ-b" + strconv.Itoa(i)
		m := kafka.Message{
			Topic: ch.Topic, Partition: 0, Offset: int64(i), Key: []byte(key),
			Value:   bytes.Replace(seed, []byte(seedKey), []byte(key), 1),
			Headers: []kafka.Header{{Key: "traceparent", Value: []byte(upstreamParent)}},
		}
		// What consumer.partition.handle and publish do around the processor.
		pctx := prop.Extract(ctx, consumer.HeaderCarrier{Headers: &m.Headers})
		pctx, span := tracer.Start(pctx, "process "+m.Topic, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", m.Topic),
			attribute.String("messaging.destination.partition.id", "0"),
			attribute.Int64("messaging.kafka.offset", m.Offset),
			attribute.String("messaging.kafka.message.key", key),
		))
		res, err := pipeline.Process(pctx, m)
		if err != nil {
			b.Fatal(err)
		}
		outs := res.Records
		for j := range outs {
			_, s := tracer.Start(pctx, "send "+outs[j].Topic, trace.WithSpanKind(trace.SpanKindProducer))
			prop.Inject(trace.ContextWithSpan(pctx, s), consumer.HeaderCarrier{Headers: &outs[j].Headers})
			s.End()
		}
		span.End()
		if i == 0 {
			var o dispatch.Outcome
			if err := json.Unmarshal(outs[0].Value, &o); err != nil || o.Status != dispatch.StatusSucceeded {
				b.Fatalf("benchmark event: %s (%v)", outs[0].Value, err)
			}
		}
	}
	run(0) // warm up connections
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	i := 1
	for b.Loop() {
		run(i)
		if every256 != nil && i%256 == 0 {
			every256()
		}
		i++
	}
	// Wall time is mostly loopback round trips to Redis and the simulator; the CPU time of this
	// process (pipeline, simulator, span processing and export) shows the work tracing adds.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(i-1), "cpu-ns/op")
}

// cpuTime is the user+system CPU time this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
