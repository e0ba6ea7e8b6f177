package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// The poison tests drive the real worker over a broker that takes large records (as clusters
// for attachment-heavy ERPs are configured) into records it cannot publish as they are and calls
// that may or may not have happened.

// padTo returns ev's value grown to exactly n bytes with whitespace inside its JSON object: the
// same event, only larger.
func padTo(t *testing.T, ev testEvent, n int) testEvent {
	t.Helper()
	if len(ev.value) > n || ev.value[0] != '{' {
		t.Fatalf("cannot pad a %d-byte event to %d bytes", len(ev.value), n)
	}
	v := make([]byte, 0, n)
	v = append(v, '{')
	v = append(v, bytes.Repeat([]byte{' '}, n-len(ev.value))...)
	ev.value = append(v, ev.value[1:]...)
	return ev
}

// inflate adds a field of size bytes to the inner response of a successful answer.
func inflate(t *testing.T, body []byte, size int) []byte {
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil {
		t.Errorf("inflate: %v", err)
		return body
	}
	for k, v := range outer {
		if !strings.HasSuffix(k, "_response") {
			continue
		}
		var inner map[string]any
		if err := json.Unmarshal(v, &inner); err != nil {
			t.Errorf("inflate: %v", err)
			return body
		}
		inner["attachment"] = strings.Repeat("x", size)
		outer[k], _ = json.Marshal(inner)
	}
	out, _ := json.Marshal(outer)
	return out
}

// resultsBySource reads the results topic and returns the outcomes by source offset of topic.
func (e *e2e) resultsBySource(topic string) (map[int64][]dispatch.Outcome, []kafka.Message) {
	e.t.Helper()
	msgs, err := e.broker.ReadAll(context.Background(), "orders.results", 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int64][]dispatch.Outcome{}
	for _, m := range msgs {
		var o dispatch.Outcome
		if err := json.Unmarshal(m.Value, &o); err != nil {
			e.t.Fatalf("undecodable outcome of %d bytes: %v", len(m.Value), err)
		}
		if o.Source.Topic == topic {
			out[o.Source.Offset] = append(out[o.Source.Offset], o)
		}
	}
	return out, msgs
}

func TestE2EOversizedRecords(t *testing.T) {
	e := newE2E(t, 1, kafkatest.WithBrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(16 << 20)}))
	const answerBytes = 3 << 20
	e.answer = func(params url.Values, body []byte) []byte {
		for _, vs := range params {
			if len(vs) > 0 && strings.Contains(vs[0], "big-answer") {
				return inflate(t, body, answerBytes)
			}
		}
		return body
	}
	g := newEventGen(t)
	ch, _ := e.registry.ByID("omni-saas")
	type poison struct {
		ev         testEvent
		status     string
		deadLetter bool // and a reduced one: the event does not fit a record of its own
	}
	limit := config.Default().Kafka.MaxRecordBytes
	big := g.valid("omni-saas", "big-answer")
	tests := []poison{
		{ev: g.valid("omni-saas", "before"), status: dispatch.StatusSucceeded},
		{ev: padTo(t, g.valid("omni-saas", "2mib"), 2<<20), status: dispatch.StatusRejected, deadLetter: true},
		{ev: g.valid("omni-saas", "between-1"), status: dispatch.StatusSucceeded},
		{ev: padTo(t, g.valid("omni-saas", "1mib-plus-1"), 1<<20+1), status: dispatch.StatusRejected, deadLetter: true},
		{ev: g.valid("omni-saas", "between-2"), status: dispatch.StatusSucceeded},
		{ev: padTo(t, g.malformed("omni-saas", "just-under"), 1<<20-16), status: dispatch.StatusRejected, deadLetter: true},
		{ev: big, status: dispatch.StatusSucceeded},
		{ev: g.resend(big), status: dispatch.StatusDuplicate},
		{ev: g.valid("omni-saas", "after"), status: dispatch.StatusSucceeded},
	}
	cfg := e.config("e2e-oversized")
	w := e.startWorker(cfg)
	events := make([]testEvent, len(tests))
	for i, tt := range tests {
		events[i] = tt.ev
	}
	start := time.Now()
	e.publish(events)

	var got map[int64][]dispatch.Outcome
	var records []kafka.Message
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got, records = e.resultsBySource(ch.Topic)
		if len(got) == len(tests) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events have an outcome 30s after they were published; worker logs:\n%s", len(got), len(tests), tail(w.logs.String(), 40))
		}
	}
	t.Logf("every event had its outcome %s after publishing", time.Since(start).Round(time.Millisecond))
	for _, r := range records {
		if n := consumer.RecordSize(r); n > limit {
			t.Errorf("an outcome record takes %d bytes, more than kafka.max_record_bytes %d", n, limit)
		}
	}
	for off, tt := range tests {
		os := got[int64(off)]
		if len(os) != 1 {
			t.Fatalf("offset %d (%d bytes) has %d outcomes, want 1", off, len(tt.ev.value), len(os))
		}
		o := os[0]
		if o.Status != tt.status {
			t.Errorf("offset %d (%d bytes): status %s (%+v), want %s", off, len(tt.ev.value), o.Status, o.Error, tt.status)
		}
		if tt.ev.key == big.key {
			// The 3 MiB answer is cut to fit, in the outcome and in the stored outcome the
			// duplicate repeats.
			var s string
			if !o.ResponseTruncated || json.Unmarshal(o.Response, &s) != nil || len(s) == 0 || len(s) >= answerBytes {
				t.Errorf("offset %d: response_truncated %v with a %d-byte response; want it true with the answer's start as a string",
					off, o.ResponseTruncated, len(o.Response))
			}
		}
	}

	// The dead letters fit and say what was cut.
	dlq, err := e.broker.ReadAll(context.Background(), "orders.dlq", 3, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(dlq) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dlq))
	}
	for _, d := range dlq {
		off, _ := strconv.ParseInt(consumer.Header(d, consumer.HeaderSourceOffset), 10, 64)
		tt := tests[off]
		switch {
		case !tt.deadLetter:
			t.Errorf("offset %d has a dead letter, want none", off)
		case consumer.RecordSize(d) > limit:
			t.Errorf("offset %d: dead letter takes %d bytes, more than %d", off, consumer.RecordSize(d), limit)
		case consumer.Header(d, consumer.HeaderValueTruncated) != "true",
			consumer.Header(d, consumer.HeaderValueBytes) != strconv.Itoa(len(tt.ev.value)):
			t.Errorf("offset %d: dead letter headers %s=%q %s=%q, want true and %d", off,
				consumer.HeaderValueTruncated, consumer.Header(d, consumer.HeaderValueTruncated),
				consumer.HeaderValueBytes, consumer.Header(d, consumer.HeaderValueBytes), len(tt.ev.value))
		case !bytes.HasPrefix(tt.ev.value, d.Value):
			t.Errorf("offset %d: the dead letter's value is not the start of the event", off)
		}
	}

	// The partition commits past every one of them.
	var committed int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if committed = e.committed(cfg.Kafka.GroupID, 1)[ch.Topic][0]; committed == int64(len(tests)) {
			break
		}
	}
	if committed != int64(len(tests)) {
		t.Fatalf("committed offset %d, want %d: the partition did not commit past the large records", committed, len(tests))
	}
	if n := strings.Count(w.logs.String(), "publish failed"); n > 0 {
		t.Errorf("the worker logged %d failed publishes; want every record fitted before it is written", n)
	}
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
	e.checkReplayReadsOriginals(cfg, dlq, tests[1].ev, tests[3].ev, tests[5].ev)
}

func TestE2EAmbiguousIcbuCall(t *testing.T) {
	e := newE2E(t, 1)
	// The platform processes the call and then the connection drops before the answer: the
	// order exists, the worker cannot know.
	if err := e.sim.SetFaults(topsim.Faults{DropRate: 1}); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(t)
	ev := g.valid("icbu-trade", "dropped")
	cfg := e.config("e2e-ambiguous")
	e.startWorker(cfg)
	e.publish([]testEvent{ev})
	o := e.outcomes([]testEvent{ev}, 30*time.Second)[ev.eventID]
	if len(o) != 1 || o[0].Status != dispatch.StatusFailed || o[0].Error == nil || o[0].Error.Kind != dispatch.KindAmbiguous {
		t.Fatalf("outcomes %+v, want one failed outcome of kind %s", o, dispatch.KindAmbiguous)
	}
	if o[0].Attempts != 1 {
		t.Errorf("attempts %d, want 1: a call that may have been executed is not repeated", o[0].Attempts)
	}
	method, key, _ := strings.Cut(e.platformKey(ev), " ")
	if n := e.sim.Stats().For(method, key).Calls; n != 1 {
		t.Errorf("the platform got %d calls for the order, want exactly 1", n)
	}
	dlq, err := e.broker.ReadAll(context.Background(), "orders.dlq", 1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(dlq) != 1 || !bytes.Equal(dlq[0].Value, ev.value) || !strings.Contains(consumer.Header(dlq[0], consumer.HeaderError), "may have been executed") {
		t.Fatalf("%d dead letters (error %q), want the event with an ambiguous error", len(dlq), headerOf(dlq, consumer.HeaderError))
	}

}

func headerOf(ms []kafka.Message, key string) string {
	if len(ms) == 0 {
		return ""
	}
	return consumer.Header(ms[0], key)
}

// checkReplayReadsOriginals replays the dead letters (rejected ones included) and checks that each
// reduced one went back to its source topic whole: replay re-read it from the source offset.
func (e *e2e) checkReplayReadsOriginals(cfg config.Config, dlq []kafka.Message, originals ...testEvent) {
	e.t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"replay", "--include-rejected"}, &out, &out, e.environ(cfg)); err != nil {
		e.t.Fatalf("replay --include-rejected: %v\n%s", err, out.String())
	}
	ch, _ := e.registry.ByID("omni-saas")
	source, err := e.broker.ReadAll(ctx, ch.Topic, 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	replayed := map[string]bool{}
	for _, m := range source[len(source)-len(dlq):] {
		replayed[string(m.Value)] = true
	}
	for _, ev := range originals {
		if !replayed[string(ev.value)] {
			e.t.Errorf("the %d-byte event did not go back to %s whole; replay said:\n%s", len(ev.value), ch.Topic, out.String())
		}
	}
}
