package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// An event larger than kafka.max_record_bytes gets a reduced dead letter. Replay re-reads the
// original from its source offset and re-sends it whole; an original that retention deleted is
// reported, skipped, and makes replay fail.
func TestE2EReplayReducedDeadLetters(t *testing.T) {
	e := newE2E(t, 1, kafkatest.WithBrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(16 << 20)}))
	if err := e.sim.SetFaults(topsim.Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config("e2e-replay-reduced")
	cfg.Kafka.MaxRecordBytes = 64 << 10
	cfg.Worker.MaxMessageBytes = 4 << 20
	cfg.Top.Retry.MaxElapsedTime = 200 * time.Millisecond
	cfg.Top.Breaker.Enabled = false // exhaustion, not an open circuit
	e.startWorker(cfg)

	g := newEventGen(t)
	kept := padded(t, g.valid("omni-saas", "big1"), 1<<20+200<<10)
	gone := padded(t, g.valid("tmall-aliauto", "big2"), 1<<20+200<<10)
	events := []testEvent{kept, gone}
	e.publish(events)
	for id, os := range e.outcomes(events, 60*time.Second) {
		if os[0].Status != dispatch.StatusFailed || os[0].Error.Kind != dispatch.KindExhausted {
			t.Fatalf("event %s: %s %+v, want failed/exhausted while the gateway fails", id, os[0].Status, os[0].Error)
		}
	}
	ctx := context.Background()
	letters, err := e.broker.ReadAll(ctx, "orders.dlq", 2, 10*time.Second)
	if err != nil || len(letters) != 2 {
		t.Fatalf("orders.dlq holds %d records (err %v), want 2", len(letters), err)
	}
	offsetOf := map[string]int64{} // source topic → dead letter offset
	for _, d := range letters {
		offsetOf[consumer.Header(d, consumer.HeaderSourceTopic)] = d.Offset
		if got := consumer.Header(d, consumer.HeaderValueTruncated); got != "true" {
			t.Errorf("dead letter %d: %s = %q, want true", d.Offset, consumer.HeaderValueTruncated, got)
		}
		if got, want := consumer.Header(d, consumer.HeaderValueBytes), strconv.Itoa(len(kept.value)); got != want {
			t.Errorf("dead letter %d: %s = %s, want %s", d.Offset, consumer.HeaderValueBytes, got, want)
		}
		if n := consumer.RecordSize(d); n > cfg.Kafka.MaxRecordBytes {
			t.Errorf("dead letter %d takes %d bytes, more than kafka.max_record_bytes %d", d.Offset, n, cfg.Kafka.MaxRecordBytes)
		}
	}

	keptCh, _ := e.registry.ByID(kept.channel)
	goneCh, _ := e.registry.ByID(gone.channel)
	expireTopic(t, e.broker, goneCh.Topic)
	if err := e.sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	out, err := replayCmd(t, e.environ(cfg))
	t.Logf("replay:\n%s", out)
	if err == nil || !strings.Contains(err.Error(), "1 selected dead letter(s) not replayed") {
		t.Errorf("replay error %v, want one dead letter not replayed (a non-zero exit)", err)
	}
	for _, want := range []string{
		fmt.Sprintf("replay orders.dlq/0@%d → %s key=%q event_id=%q", offsetOf[keptCh.Topic], keptCh.Topic, kept.key, kept.eventID),
		fmt.Sprintf("value re-read from %s/0@0 (%d bytes)", keptCh.Topic, len(kept.value)),
		fmt.Sprintf("skip orders.dlq/0@%d → %s key=%q event_id=%q: source %s/0@0 no longer holds the original (retention)",
			offsetOf[goneCh.Topic], goneCh.Topic, gone.key, gone.eventID, goneCh.Topic),
		"replayed 1 of 2 dead letter(s): 2 selected, 1 replayed, 0 skipped still invalid, 1 skipped unreadable source",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("replay output lacks %q:\n%s", want, out)
		}
	}

	// The worker decoded the re-sent value and called the platform: the whole 1.2 MiB arrived.
	got := e.waitOutcomes(kept, 2, 30*time.Second)
	if got[1].Status != dispatch.StatusSucceeded || got[1].Source.Offset != 1 {
		t.Errorf("second outcome of the replayed event: %s at offset %d (error %+v), want succeeded at offset 1", got[1].Status, got[1].Source.Offset, got[1].Error)
	}
	msgs, err := e.broker.ReadAll(ctx, keptCh.Topic, 2, 10*time.Second)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("%s holds %d records (err %v), want the original and the replay", keptCh.Topic, len(msgs), err)
	}
	if r := msgs[1]; string(r.Key) != kept.key || !bytes.Equal(r.Value, kept.value) || len(r.Headers) != 0 {
		t.Errorf("replayed record: key %q, %d bytes, headers %v; want the original's key and its %d bytes, no headers", r.Key, len(r.Value), r.Headers, len(kept.value))
	}
	if os := e.outcomes([]testEvent{gone}, time.Second)[gone.eventID]; len(os) != 1 {
		t.Errorf("the event whose source was deleted has %d outcomes, want 1", len(os))
	}
}

// Dead letters whose value the worker would reject again are skipped unless --include-rejected;
// dead letters that failed for other reasons (exhausted, a missing session) are re-sent.
func TestE2EReplaySkipsStillInvalid(t *testing.T) {
	e := newE2E(t, 1)
	if err := e.sim.SetFaults(topsim.Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config("e2e-replay-invalid")
	cfg.Worker.MaxMessageBytes = 8 << 10
	cfg.Top.Retry.MaxElapsedTime = 200 * time.Millisecond
	cfg.Top.Breaker.Enabled = false
	e.startWorker(cfg)

	g := newEventGen(t)
	bad := g.malformed("omni-saas", "bad")
	big := padded(t, g.valid("tmall-aliauto", "big"), 10<<10)
	exhausted := g.valid("diantao-tripartite", "ex")
	noSession := withSeller(t, g.valid("mos-haiding", "ns"), "nobody")
	events := []testEvent{bad, big, exhausted, noSession}
	e.publish(events)
	first := e.outcomes(events, 60*time.Second)
	for _, c := range []struct {
		ev           testEvent
		status, kind string
	}{
		{bad, dispatch.StatusRejected, dispatch.KindValidation},
		{big, dispatch.StatusRejected, dispatch.KindValidation},
		{exhausted, dispatch.StatusFailed, dispatch.KindExhausted},
		{noSession, dispatch.StatusRejected, dispatch.KindAuth}, // the value is valid
	} {
		o := first[c.ev.eventID][0]
		if o.Status != c.status || o.Error == nil || o.Error.Kind != c.kind {
			t.Fatalf("event %s: %s %+v, want %s/%s", c.ev.eventID, o.Status, o.Error, c.status, c.kind)
		}
	}
	if err := e.sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}

	out, err := replayCmd(t, e.environ(cfg))
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	t.Logf("replay:\n%s", out)
	topic := func(ev testEvent) string { ch, _ := e.registry.ByID(ev.channel); return ch.Topic }
	for _, want := range []string{
		fmt.Sprintf("→ %s key=%q event_id=%q: still invalid: request.not_on_the_page: unknown field", topic(bad), bad.key, bad.eventID),
		fmt.Sprintf("→ %s key=%q event_id=%q: still invalid: value is %d bytes, more than the 8192 allowed", topic(big), big.key, big.eventID, len(big.value)),
		fmt.Sprintf("→ %s key=%q event_id=%q error=", topic(exhausted), exhausted.key, exhausted.eventID),
		fmt.Sprintf("→ %s key=%q event_id=%q error=", topic(noSession), noSession.key, noSession.eventID),
		"replayed 2 of 4 dead letter(s): 4 selected, 2 replayed, 2 skipped still invalid, 0 skipped unreadable source",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("replay output lacks %q:\n%s", want, out)
		}
	}
	ctx := context.Background()
	for _, c := range []struct {
		ev   testEvent
		want int
	}{{bad, 1}, {big, 1}, {exhausted, 2}, {noSession, 2}} {
		msgs, err := e.broker.ReadAll(ctx, topic(c.ev), 0, 0)
		if err != nil || len(msgs) != c.want {
			t.Errorf("%s holds %d records (err %v), want %d", topic(c.ev), len(msgs), err, c.want)
		}
	}
	if os := e.waitOutcomes(exhausted, 2, 30*time.Second); os[1].Status != dispatch.StatusSucceeded {
		t.Errorf("replayed exhausted event: %s %+v, want succeeded", os[1].Status, os[1].Error)
	}
	if os := e.waitOutcomes(noSession, 2, 30*time.Second); os[1].Status != dispatch.StatusRejected {
		t.Errorf("replayed event without a session: %s %+v, want rejected again", os[1].Status, os[1].Error)
	}

	// Asked to, replay re-sends an invalid one; the worker rejects it again.
	out, err = replayCmd(t, e.environ(cfg), "--include-rejected", "--event-id", bad.eventID)
	if err != nil {
		t.Fatalf("replay --include-rejected: %v\n%s", err, out)
	}
	for _, want := range []string{
		fmt.Sprintf("→ %s key=%q event_id=%q error=", topic(bad), bad.key, bad.eventID),
		" still invalid (--include-rejected): request.not_on_the_page: unknown field\n",
		"1 selected, 1 replayed, 0 skipped still invalid, 0 skipped unreadable source",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("replay --include-rejected output lacks %q:\n%s", want, out)
		}
	}
	if os := e.waitOutcomes(bad, 2, 30*time.Second); os[1].Status != dispatch.StatusRejected {
		t.Errorf("re-sent invalid event: %s, want rejected again", os[1].Status)
	}
}

// A transactional producer's dead-letter topic holds commit markers and aborted records: replay
// sends only the committed dead letters and counts no marker.
func TestReplayTransactionalDeadLetters(t *testing.T) {
	b := kafkatest.Start(t, 1, "orders.omni-saas", "orders.dlq")
	g := newEventGen(t)
	var evs []testEvent
	for _, tag := range []string{"c1", "c2", "aborted", "c3"} {
		evs = append(evs, g.valid("omni-saas", tag))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("dlq-mirror"), kgo.DefaultProduceTopic("orders.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	txn := func(commit bool, evs ...testEvent) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i, ev := range evs {
			d := deadLetterOf(ev, "orders.omni-saas", int64(i))
			r := &kgo.Record{Key: d.Key, Value: d.Value}
			for _, h := range d.Headers {
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
			}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(true, evs[0], evs[1])
	txn(false, evs[2])
	txn(true, evs[3])
	cfg := replayConfig(b.Addr())

	out, err := replayCmd(t, config.Environ(cfg), "--dry-run")
	if err != nil {
		t.Fatalf("replay --dry-run: %v\n%s", err, out)
	}
	if n := strings.Count(out, "would replay"); n != 3 || !strings.Contains(out, "3 of 3 dead letter(s) selected") {
		t.Fatalf("dry run listed %d dead letters, want the 3 committed ones:\n%s", n, out)
	}
	out, err = replayCmd(t, config.Environ(cfg))
	if err != nil || !strings.Contains(out, "replayed 3 of 3 dead letter(s)") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	msgs, err := b.ReadAll(ctx, "orders.omni-saas", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, eventIDOf(m.Value))
	}
	if want := []string{evs[0].eventID, evs[1].eventID, evs[3].eventID}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("replayed %q, want the committed %q", got, want)
	}
}

// Each way the source of a reduced dead letter can fail to hold its original is reported for that
// dead letter, and replay fails.
func TestReplayUnreadableSource(t *testing.T) {
	const omni, icbu = "orders.omni-saas", "orders.icbu-trade"
	b := kafkatest.Start(t, 1, omni, icbu, "orders.dlq")
	ctx := context.Background()
	g := newEventGen(t)
	big := func(channel, tag string) testEvent { return padded(t, g.valid(channel, tag), 20<<10) }

	// orders.icbu-trade@0: an original retention deletes.
	expired := big("icbu-trade", "expired")
	produce(t, b, kafka.Message{Topic: icbu, Key: []byte(expired.key), Value: expired.value})
	expireTopic(t, b, icbu)
	// orders.omni-saas@0: an original; @1: an original with a header too large for its dead letter
	// to keep its value; @2: a transactional record, @3 its commit marker.
	kept := big("omni-saas", "kept")
	heavy := g.valid("omni-saas", "heavy")
	attachment := kafka.Header{Key: "x-attachment", Value: bytes.Repeat([]byte("a"), 20<<10)}
	produce(t, b, kafka.Message{Topic: omni, Key: []byte(kept.key), Value: kept.value})
	produce(t, b, kafka.Message{Topic: omni, Key: []byte(heavy.key), Value: heavy.value, Headers: []kafka.Header{attachment}})
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("pos"), kgo.DefaultProduceTopic(omni))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("txn"), Value: []byte(`{"event_id":"txn"}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	marker, pastEnd, other := big("omni-saas", "marker"), big("omni-saas", "past-end"), big("omni-saas", "other-size")
	heavyLetter := deadLetterOf(heavy, omni, 1)
	heavyLetter.Headers = append(heavyLetter.Headers, attachment)
	letters := []kafka.Message{
		deadLetterOf(kept, omni, 0),
		deadLetterOf(expired, icbu, 0),
		deadLetterOf(marker, omni, 3),
		deadLetterOf(pastEnd, omni, 7),
		deadLetterOf(padded(t, other, 30<<10), omni, 0), // says 30 KiB; offset 0 holds 20 KiB
		heavyLetter,
	}
	for i, d := range letters {
		letters[i] = consumer.FitDeadLetter(d, consumer.MinRecordBytes)
		if consumer.Header(letters[i], consumer.HeaderValueTruncated) != "true" {
			t.Fatalf("dead letter %d was not reduced", i)
		}
	}
	if len(letters[5].Value) != 0 {
		t.Fatalf("the heavy dead letter kept %d bytes of value, want none", len(letters[5].Value))
	}
	produce(t, b, letters...)
	cfg := replayConfig(b.Addr())

	for _, c := range []struct {
		name    string
		eventID string
		want    string
		wantErr bool
	}{
		{"held", kept.eventID, fmt.Sprintf("would replay orders.dlq/0@0 → %s key=%q event_id=%q error=\"test\" value re-read from %s/0@0 (%d bytes)",
			omni, kept.key, kept.eventID, omni, len(kept.value)), false},
		{"value dropped, found by the original's event_id", heavy.eventID, fmt.Sprintf("would replay orders.dlq/0@5 → %s key=%q event_id=%q error=\"test\" value re-read from %s/0@1 (%d bytes)",
			omni, heavy.key, heavy.eventID, omni, len(heavy.value)), false},
		{"deleted by retention", expired.eventID, fmt.Sprintf("skip orders.dlq/0@1 → %s key=%q event_id=%q: source %s/0@0 no longer holds the original (retention)",
			icbu, expired.key, expired.eventID, icbu), true},
		{"a transaction marker", marker.eventID, fmt.Sprintf("source %s/0@3 no longer holds the original (no record at that offset)", omni), true},
		{"past the end", pastEnd.eventID, fmt.Sprintf("source %s/0@7 does not hold the original: the partition ends at 4", omni), true},
		{"another record", other.eventID, fmt.Sprintf("source %s/0@0 holds a different record (%d bytes, the dead letter says %d)", omni, len(kept.value), len(padded(t, other, 30<<10).value)), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := replayCmd(t, config.Environ(cfg), "--dry-run", "--event-id", c.eventID)
			if gotErr := err != nil; gotErr != c.wantErr {
				t.Errorf("replay error %v, want an error: %t", err, c.wantErr)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("replay output lacks %q:\n%s", c.want, out)
			}
			if !strings.Contains(out, "1 of 6 dead letter(s) selected") {
				t.Errorf("replay selected other dead letters too:\n%s", out)
			}
		})
	}
}

// Replay reads each partition only up to the high watermark it found at its start: dead letters
// written meanwhile — its own replays failing again — are left for the next run, in every
// partition, even one it has not started reading yet.
func TestReplayStopsAtStartHighWatermark(t *testing.T) {
	b := kafkatest.Start(t, 2, "orders.omni-saas", "orders.dlq")
	g := newEventGen(t)
	var letters []kafka.Message
	for i := range 6 {
		d := deadLetterOf(g.valid("omni-saas", strconv.Itoa(i)), "orders.omni-saas", int64(i))
		d.Partition = i % 2
		letters = append(letters, d)
	}
	dlq := &kafka.Writer{Addr: kafka.TCP(b.Addr()), Balancer: partitionOf{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: b.Transport()}
	defer dlq.Close()
	ctx := context.Background()
	if err := dlq.WriteMessages(ctx, letters...); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	r, err := newReplay(replayConfig(b.Addr()), replayOptions{}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	// Every replay fails again at once: the worker's dead letter of it lands in both partitions
	// before replay goes on.
	r.maxBatch = 1
	r.batched = writerFunc(func(ctx context.Context, msgs ...kafka.Message) error {
		if err := r.single.WriteMessages(ctx, msgs...); err != nil {
			return err
		}
		var again []kafka.Message
		for _, m := range msgs {
			for p := range 2 {
				d := deadLetterOf(testEvent{key: string(m.Key), value: m.Value}, m.Topic, 99)
				d.Partition = p
				again = append(again, d)
			}
		}
		return dlq.WriteMessages(ctx, again...)
	})
	if err := r.run(ctx); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "replayed 6 of 6 dead letter(s)") {
		t.Errorf("replay read past its start:\n%s", out.String())
	}
	if msgs, err := b.ReadAll(ctx, "orders.dlq", 0, 0); err != nil || len(msgs) != 6+6*2 {
		t.Errorf("orders.dlq holds %d records (err %v), want 6 and 12 written during the replay", len(msgs), err)
	}
}

// Replay streams: its memory does not grow with the dead-letter topic. It runs as a child process
// over 2,000 and over 20,000 dead letters of 4 KiB; the peak resident set (VmHWM) of the larger
// run must stay near the smaller one's, where holding the dead letters would add their 74 MiB of
// difference (more with the race detector's shadow memory, which scales both runs alike).
func TestReplayMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 22,000 dead letters")
	}
	const small, large, valueBytes = 2000, 20000, 4 << 10
	reg, _ := dispatch.NewRegistry(nil)
	b := kafkatest.Start(t, 3, append([]string{"orders.empty-dlq", "orders.small-dlq", "orders.dlq"}, reg.Topics()...)...)
	g := newEventGen(t)
	ids := dispatch.ChannelIDs()
	fill := func(dlq string, n int) (bytes int) {
		t.Helper()
		batch := make([]kafka.Message, 0, 200) // 200 × 4 KiB: under the broker's 1 MiB per produce batch
		for i := range n {
			ev := padded(t, g.valid(ids[i%len(ids)], dlq+strconv.Itoa(i)), valueBytes)
			ch, _ := reg.ByID(ev.channel)
			d := deadLetterOf(ev, ch.Topic, int64(i))
			d.Topic = dlq
			bytes += consumer.RecordSize(d)
			if batch = append(batch, d); len(batch) == cap(batch) || i == n-1 {
				produce(t, b, batch...)
				batch = batch[:0]
			}
		}
		return bytes
	}
	fill("orders.small-dlq", small)
	total := fill("orders.dlq", large)
	cfg := replayConfig(b.Addr())

	// The child's peak resident set (VmHWM), read until it exits. Not getrusage's maxrss: Linux
	// carries the parent's peak into it across the fork and exec.
	peak := func(dlq string, n int) (kib int64) {
		t.Helper()
		c := cfg
		c.Kafka.DLQTopic = dlq
		cmd := exec.Command(os.Args[0], "replay")
		cmd.Env = append(append(os.Environ(), childEnv+"=1"), config.Environ(c)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			if v := peakRSS(cmd.Process.Pid); v > kib {
				kib = v
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("replay of %s: %v\n%s", dlq, err, stderr.String())
				}
				if want := fmt.Sprintf("replayed %d of %d dead letter(s)", n, n); !strings.Contains(stdout.String(), want) {
					t.Fatalf("replay of %s: output lacks %q:\n%s", dlq, want, tail(stdout.String(), 5))
				}
				t.Logf("replay of %d dead letters from %s: %s, peak RSS %.1f MiB", n, dlq, time.Since(start).Round(time.Millisecond), float64(kib)/1024)
				return kib
			case <-tk.C:
			}
		}
	}
	base := peak("orders.empty-dlq", 0)
	smallPeak := peak("orders.small-dlq", small)
	largePeak := peak("orders.dlq", large)

	replayed := 0
	for _, topic := range reg.Topics() {
		msgs, err := b.ReadAll(context.Background(), topic, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		replayed += len(msgs)
	}
	if replayed != small+large {
		t.Errorf("the source topics hold %d records, want %d", replayed, small+large)
	}
	t.Logf("%d dead letters take %.1f MiB; peak RSS over an empty replay: %.1f MiB for %d, %.1f MiB for %d",
		large, float64(total)/(1<<20), float64(smallPeak-base)/1024, small, float64(largePeak-base)/1024, large)
	// Holding them would add at least the 74 MiB that 18,000 more dead letters take.
	if limit := int64(total>>10) / 4; largePeak-smallPeak > limit {
		t.Errorf("replay's peak RSS grew by %.1f MiB from %d to %d dead letters, want under %d MiB (a quarter of the %d MiB of dead letters)",
			float64(largePeak-smallPeak)/1024, small, large, limit>>10, total>>20)
	}
}

// peakRSS is a process's peak resident set size (VmHWM) in KiB, or -1.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kib
		}
	}
	return -1
}

// padded returns ev with its value grown to size bytes by a top-level field the worker ignores.
func padded(t testing.TB, ev testEvent, size int) testEvent {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(ev.value, &env); err != nil {
		t.Fatal(err)
	}
	env["padding"] = ""
	v, _ := json.Marshal(env)
	env["padding"] = strings.Repeat("p", max(size-len(v), 0))
	ev.value, _ = json.Marshal(env)
	return ev
}

// deadLetterOf is the dead letter the worker writes for ev read at topic/0@offset.
func deadLetterOf(ev testEvent, topic string, offset int64) kafka.Message {
	return consumer.DeadLetter("orders.dlq", kafka.Message{Topic: topic, Offset: offset, Key: []byte(ev.key), Value: ev.value}, "test")
}

// replayConfig is a valid configuration for replays against broker (replay reaches no Redis or
// gateway).
func replayConfig(broker string) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{broker}
	return cfg
}

// replayCmd runs `worker replay` as main would and returns its standard output.
func replayCmd(t testing.TB, environ []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, append([]string{"replay"}, args...), &out, &errOut, environ)
	if errOut.Len() > 0 {
		t.Logf("replay %v stderr:\n%s", args, errOut.String())
	}
	return out.String(), err
}

// waitOutcomes waits until ev has at least n outcomes and returns them.
func (e *e2e) waitOutcomes(ev testEvent, n int, wait time.Duration) []dispatch.Outcome {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		os := e.outcomes([]testEvent{ev}, wait)[ev.eventID]
		if len(os) >= n {
			return os
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("event %s has %d outcome(s) after %s, want %d", ev.eventID, len(os), wait, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// produce writes msgs with the broker's helper, failing the test on an error.
func produce(t testing.TB, b *kafkatest.Broker, msgs ...kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Produce(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// expireTopic lets retention delete every record of topic (retention.ms 1, then the broker's
// retention pass), as an operator's retention would by the time a replay runs.
func expireTopic(t testing.TB, b *kafkatest.Broker, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Transport: b.Transport(), Timeout: 10 * time.Second}
	res, err := client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "retention.ms", Value: "1", ConfigOperation: kafka.ConfigOperationSet}},
	}}})
	if err == nil && len(res.Resources) == 1 {
		err = res.Resources[0].Error
	}
	if err != nil {
		t.Fatalf("set retention.ms of %s: %v", topic, err)
	}
	for {
		time.Sleep(10 * time.Millisecond)
		b.Cluster().ApplyRetention()
		offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)}}})
		if err != nil {
			t.Fatal(err)
		}
		if p := offs.Topics[topic][0]; p.Error == nil && p.FirstOffset == p.LastOffset {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("retention did not delete %s", topic)
		}
	}
}

// partitionOf sends a record to its Partition field.
type partitionOf struct{}

func (partitionOf) Balance(m kafka.Message, _ ...int) int { return m.Partition }

// writerFunc adapts a function to messageWriter.
type writerFunc func(ctx context.Context, msgs ...kafka.Message) error

func (f writerFunc) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	return f(ctx, msgs...)
}
