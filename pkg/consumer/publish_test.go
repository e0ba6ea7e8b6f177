package consumer_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/pkg/consumer"
)

func TestFitDeadLetter(t *testing.T) {
	const limit = consumer.MinRecordBytes
	src := kafka.Message{Topic: "orders.x", Partition: 2, Offset: 41, Key: []byte("k-1"),
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}, {Key: "x-pos", Value: []byte("7")}}}
	tests := []struct {
		name      string
		value     int    // bytes of the original value
		bigHeader int    // bytes of an extra original header
		wantValue int    // -1: the value is whole
		wantX     string // the x-pos header after reduction ("" when dropped)
	}{
		{name: "fits", value: 1000, wantValue: -1, wantX: "7"},
		{name: "value cut", value: 100_000, wantValue: 1, wantX: "7"},
		{name: "headers alone too large: value and foreign headers dropped", value: 100_000, bigHeader: 2 * limit, wantValue: 0, wantX: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := src
			m.Value = bytes.Repeat([]byte("v"), tt.value)
			if tt.bigHeader > 0 {
				m.Headers = append(m.Headers[:2:2], kafka.Header{Key: "x-big", Value: bytes.Repeat([]byte("h"), tt.bigHeader)})
			}
			d := consumer.FitDeadLetter(consumer.DeadLetter("orders.dlq", m, "too large"), limit)
			if n := consumer.RecordSize(d); n > limit {
				t.Fatalf("reduced to %d bytes, want ≤ %d", n, limit)
			}
			switch {
			case tt.wantValue < 0:
				if len(d.Value) != tt.value || consumer.Header(d, consumer.HeaderValueTruncated) != "" {
					t.Errorf("value %d bytes (truncated %q), want it whole", len(d.Value), consumer.Header(d, consumer.HeaderValueTruncated))
				}
			default:
				if tt.wantValue == 0 && len(d.Value) != 0 || tt.wantValue > 0 && (len(d.Value) == 0 || len(d.Value) >= tt.value) {
					t.Errorf("value %d bytes, want %s", len(d.Value), map[bool]string{true: "dropped", false: "cut"}[tt.wantValue == 0])
				}
				if got := consumer.Header(d, consumer.HeaderValueBytes); got != strconv.Itoa(tt.value) {
					t.Errorf("%s = %q, want %d", consumer.HeaderValueBytes, got, tt.value)
				}
				if consumer.Header(d, consumer.HeaderValueTruncated) != "true" {
					t.Errorf("%s missing", consumer.HeaderValueTruncated)
				}
			}
			for _, h := range []string{consumer.HeaderSourceTopic, consumer.HeaderSourcePartition, consumer.HeaderSourceOffset, consumer.HeaderError, "traceparent"} {
				if consumer.Header(d, h) == "" {
					t.Errorf("header %s lost", h)
				}
			}
			if got := consumer.Header(d, "x-pos"); got != tt.wantX {
				t.Errorf("x-pos = %q, want %q", got, tt.wantX)
			}
			if again := consumer.FitDeadLetter(d, limit/2); consumer.Header(again, consumer.HeaderValueBytes) != consumer.Header(d, consumer.HeaderValueBytes) && tt.wantValue >= 0 {
				t.Errorf("reducing again lost the original size")
			}
		})
	}
}

// bigHarness is a harness whose broker accepts records up to brokerMax bytes and whose writer up
// to writerMax.
func bigHarness(t *testing.T, brokerMax, writerMax int) *harness {
	t.Helper()
	b := kafkatest.StartWith(t, 1, []string{inTopic, outTopic, dlqTopic},
		kafkatest.WithBrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(brokerMax)}))
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr()), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 2 * time.Millisecond, BatchBytes: int64(writerMax), MaxAttempts: 2}
	t.Cleanup(func() { w.Close() })
	return &harness{t: t, broker: b, writer: w}
}

// Regression: a large event wedged its key and partition forever — the dead letter copied the
// whole value, the writer refused it (MessageTooLarge) and publishing was retried without end.
func TestOversizedRecordsAreReducedNotRetriedForever(t *testing.T) {
	const limit = 64 << 10
	tests := []struct {
		name      string
		brokerMax int // the broker's message.max.bytes
		value     int // the event's size
		outcome   int // the outcome record's size
		reduced   bool
	}{
		{name: "dead letter over the producer limit", brokerMax: 16 << 20, value: 2 << 20, outcome: 200, reduced: true},
		{name: "outcome over the producer limit", brokerMax: 16 << 20, value: 100, outcome: 3 << 20},
		{name: "dead letter over the broker's limit", brokerMax: 32 << 10, value: 32<<10 - 100, outcome: 200, reduced: true},
		{name: "outcome over the broker's limit", brokerMax: 32 << 10, value: 100, outcome: 40 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := bigHarness(t, max(tt.brokerMax, 4<<20), limit)
			if tt.brokerMax < 4<<20 {
				// The input fits; the results and DLQ topics take less.
				for _, topic := range []string{outTopic, dlqTopic} {
					if err := alterMaxMessageBytes(h, topic, tt.brokerMax); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := h.broker.Produce(context.Background(), kafka.Message{Topic: inTopic, Key: []byte("big"), Value: bytes.Repeat([]byte("x"), tt.value)},
				kafka.Message{Topic: inTopic, Key: []byte("next"), Value: []byte("small")}); err != nil {
				t.Fatal(err)
			}
			var fellBack atomic.Bool
			p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
				out := kafka.Message{Topic: outTopic, Key: m.Key, Value: bytes.Repeat([]byte("o"), tt.outcome)}
				if string(m.Key) == "next" {
					out.Value = []byte("next-outcome")
				}
				return consumer.Result{
					Records:    []kafka.Message{out},
					DeadLetter: "rejected: too large",
					Fallback: func() []kafka.Message {
						fellBack.Store(true)
						return []kafka.Message{{Topic: outTopic, Key: m.Key, Value: []byte("fallback")}}
					},
				}, nil
			})
			cfg := h.config("g-big")
			cfg.MaxRecordBytes = limit
			logs := &syncWriter{}
			cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
			h.start(cfg, p)
			outs := h.waitOutputs(2)
			h.waitCommitted("g-big", 1, 2)
			dlq, err := h.broker.ReadAll(context.Background(), dlqTopic, 2, 10*time.Second)
			if err != nil || len(dlq) != 2 {
				t.Fatalf("dead letters %d (err %v), want 2", len(dlq), err)
			}
			var big kafka.Message
			for _, d := range dlq {
				if string(d.Key) == "big" {
					big = d
				}
			}
			reduced := len(big.Value) < tt.value
			if reduced != tt.reduced || reduced != (consumer.Header(big, consumer.HeaderValueTruncated) == "true") {
				t.Errorf("dead letter of %d of %d bytes, truncated header %q: want reduced %v, the header exactly when reduced",
					len(big.Value), tt.value, consumer.Header(big, consumer.HeaderValueTruncated), tt.reduced)
			}
			if reduced && consumer.Header(big, consumer.HeaderValueBytes) != strconv.Itoa(tt.value) {
				t.Errorf("%s = %q, want %d", consumer.HeaderValueBytes, consumer.Header(big, consumer.HeaderValueBytes), tt.value)
			}
			wantFallback := tt.outcome > limit || tt.outcome > tt.brokerMax
			if fellBack.Load() != wantFallback {
				t.Errorf("fallback used %v, want %v", fellBack.Load(), wantFallback)
			}
			for _, o := range outs {
				if string(o.Key) == "big" && (string(o.Value) == "fallback") != wantFallback {
					t.Errorf("outcome of %d bytes published, fallback wanted %v", len(o.Value), wantFallback)
				}
			}
			if n := strings.Count(logs.String(), "publish failed"); n > 3 {
				t.Errorf("%d failed publish attempts logged, want a bounded few", n)
			}
		})
	}
}

// alterMaxMessageBytes sets a topic's max.message.bytes.
func alterMaxMessageBytes(h *harness, topic string, n int) error {
	client := &kafka.Client{Addr: kafka.TCP(h.broker.Addr()), Timeout: 10 * time.Second}
	res, err := client.AlterConfigs(context.Background(), &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: strconv.Itoa(n)}},
	}}})
	if err != nil {
		return err
	}
	for _, e := range res.Errors {
		if e != nil {
			return e
		}
	}
	return nil
}

// A results topic that cannot be written pauses intake (readiness says why) and is retried at
// probe pace, not in a hot loop; once it can be written, everything flows.
func TestUnwritableTopicPausesIntake(t *testing.T) {
	h := newHarness(t, 1)
	h.produce(20, 20)
	var writes atomic.Int64
	e := newEcho()
	p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
		res, err := e.Process(ctx, m)
		for i := range res.Records {
			res.Records[i].Topic = "orders.results-late" // does not exist yet
		}
		writes.Add(1)
		return res, err
	})
	cfg := h.config("g-unwritable")
	cfg.MaxInFlight = 4
	cfg.ProbeInterval = 200 * time.Millisecond
	cfg.MaxProbeInterval = 500 * time.Millisecond
	c, stop := startConsumer(t, h, cfg, p)
	defer stop()
	waitFor(t, 20*time.Second, func() bool {
		ps := c.Paused()
		return len(ps) == 1 && ps[0].Reason == "unwritable" && strings.Contains(ps[0].Err, "orders.results-late")
	})
	time.Sleep(2 * time.Second)
	if n := writes.Load(); n > int64(cfg.MaxInFlight)+2 {
		t.Errorf("%d messages processed while nothing could be published, want ≤ %d (intake paused)", n, cfg.MaxInFlight+2)
	}
	client := &kafka.Client{Addr: kafka.TCP(h.broker.Addr())}
	if _, err := client.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: "orders.results-late", NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	h.waitCommitted("g-unwritable", 1, 20)
	waitFor(t, 10*time.Second, func() bool { return c.Paused() == nil })
}

// syncWriter is a goroutine-safe log sink.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
