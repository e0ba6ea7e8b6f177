package consumer_test

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ordersync/ordersync/pkg/consumer"
)

// A transactional producer (a Java producer with transactional.id, Kafka Streams with
// exactly-once) writes commit/abort markers into the log and may abort records. kafka-go's
// Reader hands both to the application; the consumer must see only committed records.
func TestTransactionsAreReadCommitted(t *testing.T) {
	h := newHarness(t, 1)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addr()), kgo.TransactionalID("pos-outbox"), kgo.DefaultProduceTopic(inTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	txn := func(commit bool, values ...string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(true, "c1", "c2")
	txn(false, "aborted1", "aborted2")
	txn(true, "c3")
	if err := h.broker.Produce(ctx, kafka.Message{Topic: inTopic, Key: []byte("plain"), Value: []byte("plain")}); err != nil {
		t.Fatal(err)
	}

	var got []string
	done := make(chan struct{}, 16)
	p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
		got = append(got, string(m.Value)) // one partition, one key each: no concurrency on got within a key... guard below
		done <- struct{}{}
		return consumer.Result{}, nil
	})
	cfg := h.config("g-txn")
	cfg.MaxInFlight = 1 // one at a time: got needs no lock
	_, stop := startConsumer(t, h, cfg, p)
	for range 4 {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("saw %q, want 4 committed records", got)
		}
	}
	// Commits of the marker offsets too: the group's offset passes the last control record.
	h.waitCommitted("g-txn", 1, 9) // 2 + marker + 2 aborted + marker + 1 + marker + plain
	stop()
	select {
	case <-done:
		t.Fatalf("saw an extra record: %q", got)
	default:
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "c1,c2,c3,plain" {
		t.Errorf("processed %q, want only the committed records c1,c2,c3,plain", got)
	}
}

// Lag is the broker's high watermark minus the next offset to fetch: while the processor is
// stuck and fetching stands still, it must keep growing as producers write.
func TestLagGrowsDuringStall(t *testing.T) {
	h := newHarness(t, 1)
	h.produce(5, 5)
	reader := metric.NewManualReader()
	var stuck atomic.Bool
	stuck.Store(true)
	block := make(chan struct{})
	p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
		if stuck.Load() {
			select {
			case <-block:
			case <-ctx.Done():
				return consumer.Result{}, ctx.Err()
			}
		}
		return consumer.Result{}, nil
	})
	cfg := h.config("g-lag")
	cfg.MaxInFlight = 1
	cfg.LagInterval = 100 * time.Millisecond
	cfg.MeterProvider = metric.NewMeterProvider(metric.WithReader(reader))
	_, stop := startConsumer(t, h, cfg, p)
	defer stop()
	defer close(block)

	lag := func() int64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "ordersync.consumer.lag" {
					for _, dp := range g.DataPoints {
						return dp.Value
					}
				}
			}
		}
		return -1
	}
	waitFor(t, 10*time.Second, func() bool { return lag() >= 0 })
	before := lag()
	h.produce(200, 10)
	waitFor(t, 10*time.Second, func() bool { return lag() >= before+200 })
}

// ReadPartition (worker replay) streams the committed records up to the high watermark at its
// start, also when the log ends with transaction markers, and stops there while producers go on.
func TestReadPartitionStopsAtTheStartHighWatermark(t *testing.T) {
	h := newHarness(t, 1)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.Addr()), kgo.TransactionalID("dlq-writer"), kgo.DefaultProduceTopic(inTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	h.produce(3, 3) // plain records 0..2
	for _, commit := range []bool{true, false} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.FormatBool(commit))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err = consumer.ReadPartition(ctx, consumer.ReadConfig{Brokers: []string{h.broker.Addr()}, Topic: inTopic, From: kafka.FirstOffset, To: kafka.LastOffset},
		func(m kafka.Message) error {
			got = append(got, string(m.Value))
			if len(got) == 1 {
				h.produce(2, 2) // written after the start: not read
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "0,1,2,true" {
		t.Errorf("read %q, want the three plain records and the committed one, nothing aborted, no marker, nothing later", got)
	}
}
