package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/pkg/consumer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// kafka-go keeps idle pooled connections of its shared transport open.
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go/protocol.(*Conn).Read"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*conn).run"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*connGroup).grabConnOrConnect.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

const (
	inTopic  = "orders.test"
	outTopic = "orders.results"
	dlqTopic = "orders.dlq"
)

// echo is a processor that records what it saw and returns one record per message.
type echo struct {
	mu      sync.Mutex
	seen    map[string][]int64 // key -> offsets in processing order
	active  map[string]int
	overlap atomic.Bool // two messages of one key ran at once
	cur     atomic.Int64
	peak    atomic.Int64
	delay   time.Duration
	fail    func(m kafka.Message) error // optional: an error to return before succeeding
	calls   atomic.Int64
}

func newEcho() *echo { return &echo{seen: map[string][]int64{}, active: map[string]int{}} }

func (e *echo) Process(ctx context.Context, m kafka.Message) (consumer.Result, error) {
	e.calls.Add(1)
	if e.fail != nil {
		if err := e.fail(m); err != nil {
			return consumer.Result{}, err
		}
	}
	key := string(m.Key)
	e.mu.Lock()
	e.active[key]++
	if e.active[key] > 1 && key != "" {
		e.overlap.Store(true)
	}
	e.mu.Unlock()
	n := e.cur.Add(1)
	for {
		p := e.peak.Load()
		if n <= p || e.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if e.delay > 0 {
		select {
		case <-time.After(e.delay):
		case <-ctx.Done():
			e.cur.Add(-1)
			e.mu.Lock()
			e.active[key]--
			e.mu.Unlock()
			return consumer.Result{}, ctx.Err()
		}
	}
	e.cur.Add(-1)
	e.mu.Lock()
	e.active[key]--
	e.seen[key] = append(e.seen[key], m.Offset)
	e.mu.Unlock()
	return consumer.Result{Records: []kafka.Message{{
		Topic: outTopic,
		Key:   m.Key,
		Value: fmt.Appendf(nil, "%d/%d", m.Partition, m.Offset),
	}}}, nil
}

type harness struct {
	t      *testing.T
	broker *kafkatest.Broker
	writer *kafka.Writer
}

func newHarness(t *testing.T, partitions int32) *harness {
	t.Helper()
	b := kafkatest.Start(t, partitions, inTopic, outTopic, dlqTopic)
	w := &kafka.Writer{
		Addr:         kafka.TCP(b.Addr()),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 2 * time.Millisecond,
	}
	t.Cleanup(func() { w.Close() })
	return &harness{t: t, broker: b, writer: w}
}

func (h *harness) config(group string) consumer.Config {
	return consumer.Config{
		Brokers:           []string{h.broker.Addr()},
		GroupID:           group,
		Topics:            []string{inTopic},
		Writer:            h.writer,
		DeadLetterTopic:   dlqTopic,
		MaxWait:           50 * time.Millisecond,
		CommitInterval:    100 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond,
		SessionTimeout:    3 * time.Second,
		RebalanceTimeout:  3 * time.Second,
		DrainTimeout:      5 * time.Second,
		Logger:            slog.New(slog.NewTextHandler(testLogOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// produce writes n messages over keys distinct keys ("k0".."k<keys-1>").
func (h *harness) produce(n, keys int) {
	h.t.Helper()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: inTopic, Key: []byte("k" + strconv.Itoa(i%keys)), Value: []byte(strconv.Itoa(i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.broker.Produce(ctx, msgs...); err != nil {
		h.t.Fatalf("produce: %v", err)
	}
}

// start runs a consumer until the returned stop is called; stop waits for Run to return.
func (h *harness) start(cfg consumer.Config, p consumer.Processor) (stop func()) {
	h.t.Helper()
	c, err := consumer.New(cfg, p)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				h.t.Errorf("Run did not return within 30s of cancel")
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// waitOutputs waits until the results topic holds at least n records and returns them.
func (h *harness) waitOutputs(n int) []kafka.Message {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got, err := h.broker.ReadAll(ctx, outTopic, n, 50*time.Second)
	if err != nil {
		h.t.Fatalf("read results: %v", err)
	}
	if len(got) < n {
		h.t.Fatalf("results topic holds %d records, want %d", len(got), n)
	}
	return got
}

// waitCommitted waits until the group's committed offsets sum to want across partitions.
func (h *harness) waitCommitted(group string, partitions int, want int64) map[int]int64 {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		offs, err := h.broker.CommittedOffsets(context.Background(), group, inTopic, partitions)
		if err != nil {
			h.t.Fatal(err)
		}
		var sum int64
		for _, o := range offs {
			if o > 0 {
				sum += o
			}
		}
		if sum == want {
			return offs
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("committed offsets %v sum to %d, want %d", offs, sum, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConsumesEveryMessageInKeyOrder(t *testing.T) {
	h := newHarness(t, 3)
	const n, keys = 600, 40
	h.produce(n, keys)
	e := newEcho()
	e.delay = time.Millisecond
	h.start(h.config("g-order"), e)

	outs := h.waitOutputs(n)
	if len(outs) != n {
		t.Errorf("%d outputs, want exactly %d (one per message)", len(outs), n)
	}
	h.waitCommitted("g-order", 3, n)

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.overlap.Load() {
		t.Error("two messages with the same key ran concurrently")
	}
	for key, offs := range e.seen {
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] {
				t.Fatalf("key %s processed out of offset order: %v", key, offs)
			}
		}
	}
	if p := e.peak.Load(); p < 2 {
		t.Errorf("peak concurrency %d, want different keys to run concurrently", p)
	}
}

func TestMaxInFlightBoundsConcurrency(t *testing.T) {
	h := newHarness(t, 2)
	const n = 200
	h.produce(n, n) // every key distinct
	e := newEcho()
	e.delay = 5 * time.Millisecond
	cfg := h.config("g-bound")
	cfg.MaxInFlight = 4
	h.start(cfg, e)
	h.waitOutputs(n)
	if p := e.peak.Load(); p > 4 || p < 2 {
		t.Errorf("peak concurrency %d, want 2..4 with max_in_flight=4", p)
	}
}

// Regression: the fetch loop of an idle partition took an in-flight slot before waiting for a
// message, so once max_in_flight partitions were idle the worker stopped while others had work.
func TestIdlePartitionsHoldNoSlot(t *testing.T) {
	h := newHarness(t, 4)
	// All messages on one key: one partition has work, three stay idle.
	h.produce(50, 1)
	e := newEcho()
	cfg := h.config("g-idle")
	cfg.MaxInFlight = 1
	h.start(cfg, e)
	h.waitOutputs(50)
}

func TestProcessorErrorIsRetriedAndNotCommittedMeanwhile(t *testing.T) {
	h := newHarness(t, 1)
	h.produce(10, 10)
	var down atomic.Bool
	down.Store(true)
	e := newEcho()
	e.fail = func(m kafka.Message) error {
		if down.Load() && m.Offset == 3 {
			return errors.New("redis: connection refused")
		}
		return nil
	}
	h.start(h.config("g-retry"), e)

	// Everything but offset 3 finishes; the commit must stop at 3.
	h.waitOutputs(9)
	offs := h.waitCommitted("g-retry", 1, 3)
	if offs[0] != 3 {
		t.Fatalf("committed %d while offset 3 is unfinished, want 3", offs[0])
	}
	down.Store(false)
	h.waitOutputs(10)
	h.waitCommitted("g-retry", 1, 10)
}

func TestPanicIsRecoveredAndRetried(t *testing.T) {
	h := newHarness(t, 1)
	h.produce(3, 3)
	var panicked atomic.Bool
	e := newEcho()
	e.fail = func(m kafka.Message) error {
		if m.Offset == 1 && panicked.CompareAndSwap(false, true) {
			panic("boom")
		}
		return nil
	}
	h.start(h.config("g-panic"), e)
	h.waitOutputs(3)
	h.waitCommitted("g-panic", 1, 3)
}

func TestUnavailableResultsTopicBlocksCommit(t *testing.T) {
	h := newHarness(t, 1)
	h.produce(5, 5)
	e := newEcho()
	p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
		res, err := e.Process(ctx, m)
		for i := range res.Records {
			res.Records[i].Topic = "orders.results-late" // does not exist yet
		}
		return res, err
	})
	h.start(h.config("g-late"), p)
	time.Sleep(time.Second)
	offs, err := h.broker.CommittedOffsets(context.Background(), "g-late", inTopic, 1)
	if err != nil {
		t.Fatal(err)
	}
	if offs[0] > 0 {
		t.Fatalf("committed %d with no outcome published", offs[0])
	}
	client := &kafka.Client{Addr: kafka.TCP(h.broker.Addr())}
	if _, err := client.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: "orders.results-late", NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	h.waitCommitted("g-late", 1, 5)
	got, err := h.broker.ReadAll(context.Background(), "orders.results-late", 5, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 5 {
		t.Fatalf("%d outcomes published, want 5", len(got))
	}
}

func TestShutdownDrainsAndCommits(t *testing.T) {
	h := newHarness(t, 2)
	const n = 300
	h.produce(n, 50)
	e := newEcho()
	e.delay = 10 * time.Millisecond
	stop := h.start(h.config("g-stop"), e)
	h.waitOutputs(20)
	stop()

	// Every committed offset must have its output published: committed ≤ finished per partition.
	outs, err := h.broker.ReadAll(context.Background(), outTopic, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	finished := map[int]map[int64]bool{0: {}, 1: {}}
	for _, o := range outs {
		var p int
		var off int64
		fmt.Sscanf(string(o.Value), "%d/%d", &p, &off)
		finished[p][off] = true
	}
	offs, err := h.broker.CommittedOffsets(context.Background(), "g-stop", inTopic, 2)
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range offs {
		for off := int64(0); off < c; off++ {
			if !finished[p][off] {
				t.Fatalf("partition %d committed %d but offset %d has no output", p, c, off)
			}
		}
	}

	// A second consumer in the group finishes the rest.
	h.start(h.config("g-stop"), e)
	h.waitCommitted("g-stop", 2, n)
}

func TestRebalanceKeepsEveryMessage(t *testing.T) {
	h := newHarness(t, 4)
	const n = 800
	h.produce(n, 100)
	e := newEcho()
	e.delay = 2 * time.Millisecond
	stopA := h.start(h.config("g-rebalance"), e)
	h.start(h.config("g-rebalance"), e)
	h.waitOutputs(100)
	stopA()
	h.waitCommitted("g-rebalance", 4, n)

	outs := h.waitOutputs(n)
	seen := map[string]bool{}
	for _, o := range outs {
		seen[string(o.Value)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages have an output, want %d", len(seen), n)
	}
}

var testLogOut io.Writer = io.Discard
