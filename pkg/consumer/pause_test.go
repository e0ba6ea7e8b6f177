package consumer_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/pkg/consumer"
)

// ban is a processor wrapper that answers every message with a pause until the ban ends, as the
// pipeline does for a flow-control ban longer than top.max_ban_wait.
type ban struct {
	next   consumer.Processor
	until  atomic.Int64 // unix nanos; 0 = no ban
	during atomic.Int64 // Process calls that met the ban
	mu     sync.Mutex
	order  map[string][]int64 // key → offsets in the order they passed the ban
}

func newBan(next consumer.Processor, d time.Duration) *ban {
	b := &ban{next: next, order: map[string][]int64{}}
	b.until.Store(time.Now().Add(d).UnixNano())
	return b
}

func (b *ban) Process(ctx context.Context, m kafka.Message) (consumer.Result, error) {
	if until := time.Unix(0, b.until.Load()); time.Now().Before(until) {
		b.during.Add(1)
		return consumer.Result{}, &consumer.Pause{Scope: "ban app test", Reason: "ban", Until: until, Err: errors.New("app call limited")}
	}
	b.mu.Lock()
	b.order[string(m.Key)] = append(b.order[string(m.Key)], m.Offset)
	b.mu.Unlock()
	return b.next.Process(ctx, m)
}

// Regression: a deferred head gave its in-flight slot back while followers queued behind busy
// keys each held one; once all slots were held the heads waited for a slot forever — with
// max_in_flight=2 and keys k0,k1,k0,k1, none of the 4 messages finished after a long ban.
func TestLongBanWithRepeatingKeysDoesNotDeadlock(t *testing.T) {
	h := newHarness(t, 1)
	h.produce(4, 2) // k0, k1, k0, k1
	b := newBan(newEcho(), 1500*time.Millisecond)
	cfg := h.config("g-deadlock")
	cfg.MaxInFlight = 2
	cfg.RampStep = 10 * time.Millisecond
	h.start(cfg, b)

	h.waitOutputs(4)
	h.waitCommitted("g-deadlock", 1, 4)
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, offs := range b.order {
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] {
				t.Errorf("key %s resumed out of offset order: %v", key, offs)
			}
		}
	}
}

func TestPauseStopsIntakeAndHoldsNoSlot(t *testing.T) {
	h := newHarness(t, 2)
	const n = 200
	h.produce(n, n)
	e := newEcho()
	b := newBan(e, 2*time.Second)
	cfg := h.config("g-pause")
	cfg.MaxInFlight = 8
	cfg.RampStep = 20 * time.Millisecond
	c, stop := startConsumer(t, h, cfg, b)
	defer stop()

	// During the ban: the messages that reached the processor before intake paused met the ban and
	// were given back (slot freed, partition rewound); nothing else was fetched, published or
	// committed.
	time.Sleep(time.Second)
	if got := b.during.Load(); got < 1 || got > int64(cfg.MaxInFlight) {
		t.Errorf("%d messages met the ban, want 1..%d (fetching stops once intake pauses)", got, cfg.MaxInFlight)
	}
	paused := c.Paused()
	if len(paused) != 1 || paused[0].Reason != "ban" || paused[0].Scope != "ban app test" {
		t.Errorf("Paused() = %+v, want the one ban", paused)
	}
	if outs, _ := h.broker.ReadAll(context.Background(), outTopic, 0, 0); len(outs) != 0 {
		t.Errorf("%d outcomes published during the ban, want 0", len(outs))
	}

	h.waitOutputs(n)
	h.waitCommitted("g-pause", 2, n)
	if e.calls.Load() != n {
		t.Errorf("processor called %d times after the ban, want once per message (%d)", e.calls.Load(), n)
	}
	if got := c.Paused(); got != nil {
		t.Errorf("Paused() = %+v after the ban, want nil", got)
	}
}

func TestProbeEndsPauseWithoutEndTime(t *testing.T) {
	h := newHarness(t, 1)
	const n = 30
	h.produce(n, n)
	var broken atomic.Bool
	broken.Store(true)
	var refused atomic.Int64
	e := newEcho()
	p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
		if broken.Load() {
			refused.Add(1)
			return consumer.Result{}, &consumer.Pause{Scope: "credentials gw", Reason: "credentials", Err: errors.New("invalid signature")}
		}
		return e.Process(ctx, m)
	})
	cfg := h.config("g-probe")
	cfg.MaxInFlight = 4
	cfg.ProbeInterval = 100 * time.Millisecond
	cfg.MaxProbeInterval = 200 * time.Millisecond
	cfg.RampStep = 10 * time.Millisecond
	c, stop := startConsumer(t, h, cfg, p)
	defer stop()

	time.Sleep(time.Second)
	// Up to max_in_flight messages met the condition on arrival; after that only one probe at a
	// time tries, every ≤ 200ms.
	if got := refused.Load(); got > int64(cfg.MaxInFlight)+8 {
		t.Errorf("%d refused calls in 1s, want at most %d arrivals plus one probe per interval", got, cfg.MaxInFlight)
	}
	if ps := c.Paused(); len(ps) != 1 || ps[0].Reason != "credentials" || ps[0].Err == "" {
		t.Errorf("Paused() = %+v, want the credentials pause with its error", ps)
	}
	broken.Store(false)
	h.waitOutputs(n)
	h.waitCommitted("g-probe", 1, n)
}

func TestProbeNowAfterFix(t *testing.T) {
	h := newHarness(t, 1)
	h.produce(5, 5)
	var broken atomic.Bool
	broken.Store(true)
	e := newEcho()
	p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
		if broken.Load() {
			return consumer.Result{}, &consumer.Pause{Scope: "credentials gw", Reason: "credentials", Err: errors.New("invalid signature")}
		}
		return e.Process(ctx, m)
	})
	cfg := h.config("g-probe-now")
	cfg.ProbeInterval = time.Hour // only Probe can end it within the test
	cfg.MaxProbeInterval = time.Hour
	c, stop := startConsumer(t, h, cfg, p)
	defer stop()
	waitFor(t, 10*time.Second, func() bool { return len(c.Paused()) == 1 })
	broken.Store(false)
	c.Probe("credentials")
	h.waitOutputs(5)
}

func TestPauseCoversOnlyItsTopics(t *testing.T) {
	const other = "orders.other"
	h := newHarness(t, 1)
	if err := h.broker.Cluster().CreateTopic(other, 1, nil); err != nil {
		t.Fatal(err)
	}
	h.produce(10, 10)
	msgs := make([]kafka.Message, 10)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: other, Key: []byte("o" + strconv.Itoa(i)), Value: []byte("x")}
	}
	if err := h.broker.Produce(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	e := newEcho()
	p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
		if m.Topic == inTopic {
			return consumer.Result{}, &consumer.Pause{Scope: "ban api test", Reason: "ban", Topics: []string{inTopic},
				Until: time.Now().Add(time.Hour), Err: errors.New("api call limited")}
		}
		return e.Process(ctx, m)
	})
	cfg := h.config("g-scope")
	cfg.Topics = []string{inTopic, other}
	cfg.MaxInFlight = 4
	_, stop := startConsumer(t, h, cfg, p)
	defer stop()
	// The other topic's 10 messages all get through although the paused topic holds slots.
	h.waitOutputs(10)
}

func TestDeadLetterCarriesSourceAndReason(t *testing.T) {
	h := newHarness(t, 1)
	msg := kafka.Message{Topic: inTopic, Key: []byte("k"), Value: []byte("not json"),
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}, {Key: "x-origin", Value: []byte("pos-7")}}}
	if err := h.broker.Produce(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
		return consumer.Result{
			Records:    []kafka.Message{{Topic: outTopic, Key: m.Key, Value: []byte("rejected")}},
			DeadLetter: "request: not JSON",
		}, nil
	})
	h.start(h.config("g-dlq"), p)
	h.waitOutputs(1)
	dlq, err := h.broker.ReadAll(context.Background(), dlqTopic, 1, 10*time.Second)
	if err != nil || len(dlq) != 1 {
		t.Fatalf("dead letters %d (err %v), want 1", len(dlq), err)
	}
	d := dlq[0]
	if string(d.Key) != "k" || string(d.Value) != "not json" {
		t.Errorf("dead letter %q=%q, want the original key and value", d.Key, d.Value)
	}
	for k, want := range map[string]string{
		consumer.HeaderError: "request: not JSON", consumer.HeaderSourceTopic: inTopic,
		consumer.HeaderSourcePartition: "0", consumer.HeaderSourceOffset: "0", "x-origin": "pos-7",
	} {
		if got := consumer.Header(d, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if tp := consumer.Header(d, "traceparent"); len(tp) != 55 || tp[3:35] != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("traceparent %q, want the upstream trace continued", tp)
	}
}

func TestFetchedMessagesNeverExceedMaxInFlight(t *testing.T) {
	h := newHarness(t, 3)
	h.produce(300, 300)
	var seen atomic.Int64
	release := make(chan struct{})
	e := newEcho()
	p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
		seen.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return consumer.Result{}, ctx.Err()
		}
		return e.Process(ctx, m)
	})
	cfg := h.config("g-bound-fetch")
	cfg.MaxInFlight = 7
	_, stop := startConsumer(t, h, cfg, p)
	defer stop()
	time.Sleep(1500 * time.Millisecond)
	if got := seen.Load(); got != 7 {
		t.Errorf("%d messages reached the processor while all were blocked, want exactly max_in_flight (7)", got)
	}
	close(release)
	h.waitOutputs(300)
}

// startConsumer is harness.start that also returns the consumer.
func startConsumer(t *testing.T, h *harness, cfg consumer.Config, p consumer.Processor) (*consumer.Consumer, func()) {
	t.Helper()
	c, err := consumer.New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return within 30s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Regression: while a pause probed, an idle partition's fetch loop took the probe, found nothing
// within MaxWait, gave it back and took it again at once, so the partition holding the paused
// message waited tens of seconds for its turn. A probe now goes only to a loop with a record in
// hand.
func TestProbeGoesToAPartitionWithAMessage(t *testing.T) {
	h := newHarness(t, 8)
	msgs := []kafka.Message{{Topic: inTopic, Key: []byte("only"), Value: []byte("1")}}
	if err := h.broker.Produce(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	var paused atomic.Bool
	e := newEcho()
	p := consumer.ProcessorFunc(func(ctx context.Context, m kafka.Message) (consumer.Result, error) {
		if paused.CompareAndSwap(false, true) {
			return consumer.Result{}, &consumer.Pause{Scope: "ban app test", Reason: "ban", Until: time.Now().Add(200 * time.Millisecond), Err: errors.New("banned")}
		}
		return e.Process(ctx, m)
	})
	cfg := h.config("g-probe-idle")
	cfg.MaxWait = 20 * time.Millisecond // idle partitions come back often
	start := time.Now()
	h.start(cfg, p)
	h.waitOutputs(1)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the paused message finished after %s, want soon after its 200ms pause", d)
	}
}
