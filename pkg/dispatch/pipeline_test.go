package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

const (
	testAppKey  = "12345678"
	testSecret  = "pipeline-secret"
	testSession = "session-of-demo-seller"
)

type fixture struct {
	t        *testing.T
	redis    *redistest.Server
	store    *dedupe.Store
	sim      *topsim.Sim
	registry *dispatch.Registry
	pipe     *dispatch.Pipeline
}

func newFixture(t *testing.T, mutate func(*dispatch.PipelineConfig)) *fixture {
	t.Helper()
	reg, err := dispatch.NewRegistry(nil)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := topsim.New(topsim.Config{AppKey: testAppKey, AppSecret: testSecret, Sessions: []string{testSession}, Rules: reg, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client, err := topapi.New(topapi.Config{Gateway: srv.URL + "/router/rest", AppKey: testAppKey, AppSecret: testSecret, Timeout: 2 * time.Second, MaxBanWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rs := redistest.Start(t)
	rdb := rs.Client()
	store, err := dedupe.New(rdb, dedupe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := dispatch.PipelineConfig{
		Registry:      reg,
		Dedupe:        store,
		Caller:        client,
		Sessions:      map[string]string{"demo": testSession},
		DefaultSeller: "demo",
		ResultsTopic:  "orders.results",
		DLQTopic:      "orders.dlq",
		Lease:         3 * time.Second,
		Retry:         dispatch.Retry{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxElapsedTime: 2 * time.Second},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	pipe, err := dispatch.NewPipeline(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, redis: rs, store: store, sim: sim, registry: reg, pipe: pipe}
}

// message wraps an event value as it arrives on the channel's topic.
func (f *fixture) message(channel string, value []byte, offset int64) kafka.Message {
	ch, ok := f.registry.ByID(channel)
	if !ok {
		f.t.Fatalf("no channel %s", channel)
	}
	return kafka.Message{Topic: ch.Topic, Partition: 0, Offset: offset, Key: []byte("k"), Value: value,
		Headers: []kafka.Header{{Key: "x-upstream", Value: []byte("pos-7")}}}
}

func (f *fixture) process(m kafka.Message) (dispatch.Outcome, []kafka.Message) {
	f.t.Helper()
	outs, err := f.pipe.Process(context.Background(), m)
	if err != nil {
		f.t.Fatalf("Process: %v", err)
	}
	if len(outs) == 0 || outs[0].Topic != "orders.results" {
		f.t.Fatalf("first record goes to %v, want orders.results", outs)
	}
	var o dispatch.Outcome
	if err := json.Unmarshal(outs[0].Value, &o); err != nil {
		f.t.Fatalf("decode outcome: %v", err)
	}
	return o, outs
}

func seed(t *testing.T, channel string) []byte {
	t.Helper()
	v, ok := dispatch.SeedEvents()[channel]
	if !ok {
		t.Fatalf("no seed event for %s", channel)
	}
	return v
}

// withRequest returns the seed event of channel with one request field replaced (a JSON path of
// object keys), to make a distinct or invalid request.
func withRequest(t *testing.T, event []byte, path string, value any) []byte {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(event, &env); err != nil {
		t.Fatal(err)
	}
	node := env["request"].(map[string]any)
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		node = node[p].(map[string]any)
	}
	if value == nil {
		delete(node, parts[len(parts)-1])
	} else {
		node[parts[len(parts)-1]] = value
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPipelineSeedEventsSucceedOnce(t *testing.T) {
	f := newFixture(t, nil)
	for _, id := range dispatch.ChannelIDs() {
		t.Run(id, func(t *testing.T) {
			o, outs := f.process(f.message(id, seed(t, id), 1))
			if o.Status != dispatch.StatusSucceeded {
				t.Fatalf("status %q (error %+v), want succeeded", o.Status, o.Error)
			}
			if len(outs) != 1 {
				t.Errorf("%d records, want the outcome only", len(outs))
			}
			if o.Attempts != 1 || o.RequestID == "" || len(o.Response) == 0 || o.IdempotencyKey == "" {
				t.Errorf("outcome %+v: want 1 attempt, a request id, a response and a key", o)
			}
			if got := string(outs[0].Key); got != o.IdempotencyKey {
				t.Errorf("record key %q, want the idempotency key %q", got, o.IdempotencyKey)
			}
			if got := consumer.Header(outs[0], dispatch.HeaderChannel); got != id {
				t.Errorf("%s header %q, want %q", dispatch.HeaderChannel, got, id)
			}

			// Re-sent: the stored outcome is replayed and the platform is not called again.
			dup, _ := f.process(f.message(id, seed(t, id), 2))
			if dup.Status != dispatch.StatusDuplicate {
				t.Fatalf("re-sent status %q, want duplicate", dup.Status)
			}
			if string(dup.Response) != string(o.Response) || dup.RequestID != o.RequestID {
				t.Errorf("duplicate replays %s/%s, want %s/%s", dup.Response, dup.RequestID, o.Response, o.RequestID)
			}
		})
	}
	if s := f.sim.Stats(); s.Succeeded != len(dispatch.ChannelIDs()) {
		t.Errorf("simulator saw %d successful calls, want one per channel (%d)", s.Succeeded, len(dispatch.ChannelIDs()))
	}
}

func TestPipelineRejections(t *testing.T) {
	f := newFixture(t, nil)
	omni := seed(t, "omni-saas")
	tests := []struct {
		name     string
		channel  string
		value    []byte
		wantKind string
		wantMsg  string
	}{
		{"not json", "omni-saas", []byte("{nope"), dispatch.KindValidation, ""},
		{"missing field", "omni-saas", withRequest(t, omni, "store_id", nil), dispatch.KindValidation, "request.store_id: required"},
		{"unknown field", "omni-saas", withRequest(t, omni, "shop", "x"), dispatch.KindValidation, "request.shop"},
		{"unknown seller", "omni-saas", []byte(strings.Replace(string(omni), `"event_id"`, `"seller":"nobody","event_id"`, 1)), dispatch.KindAuth, "nobody"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := f.message(tt.channel, tt.value, int64(100+i))
			o, outs := f.process(m)
			if o.Status != dispatch.StatusRejected || o.Error == nil || o.Error.Kind != tt.wantKind {
				t.Fatalf("outcome %s %+v, want rejected/%s", o.Status, o.Error, tt.wantKind)
			}
			if !strings.Contains(o.Error.Msg, tt.wantMsg) {
				t.Errorf("error %q, want it to name %q", o.Error.Msg, tt.wantMsg)
			}
			if len(outs) != 2 || outs[1].Topic != "orders.dlq" {
				t.Fatalf("records %d, want outcome + dead letter", len(outs))
			}
			dl := outs[1]
			if string(dl.Value) != string(tt.value) || string(dl.Key) != "k" {
				t.Errorf("dead letter does not carry the original key and value")
			}
			for h, want := range map[string]string{
				"x-upstream": "pos-7", dispatch.HeaderSourceTopic: m.Topic, dispatch.HeaderSourcePartition: "0",
				dispatch.HeaderSourceOffset: strconv.FormatInt(m.Offset, 10), dispatch.HeaderError: o.Error.Msg,
			} {
				if got := consumer.Header(dl, h); got != want {
					t.Errorf("dead letter header %s = %q, want %q", h, got, want)
				}
			}
		})
	}
	if s := f.sim.Stats(); s.Total != 0 {
		t.Errorf("rejected events reached the gateway %d times, want 0", s.Total)
	}
}

func TestPipelineConflict(t *testing.T) {
	f := newFixture(t, nil)
	first, _ := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if first.Status != dispatch.StatusSucceeded {
		t.Fatalf("first: %s %+v", first.Status, first.Error)
	}
	other := withRequest(t, seed(t, "omni-saas"), "store_id", "9999") // same request_no, different request
	o, outs := f.process(f.message("omni-saas", other, 2))
	if o.Status != dispatch.StatusRejected || o.Error.Kind != dispatch.KindConflict {
		t.Fatalf("outcome %s %+v, want rejected/conflict", o.Status, o.Error)
	}
	if len(outs) != 2 {
		t.Errorf("conflict records %d, want outcome + dead letter", len(outs))
	}
}

func TestPipelineTransientFaultsRetried(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.sim.SetFaults(topsim.Faults{ErrorRate: 0.5, ISPRate: 0.3}); err != nil {
		t.Fatal(err)
	}
	var retried bool
	for i, id := range dispatch.ChannelIDs() {
		o, _ := f.process(f.message(id, seed(t, id), int64(i)))
		if o.Status != dispatch.StatusSucceeded {
			t.Fatalf("%s: status %s %+v, want succeeded after retries", id, o.Status, o.Error)
		}
		retried = retried || o.Attempts > 1
	}
	if !retried {
		t.Error("no event needed a retry with 80% faults; the faults were not injected")
	}
}

func TestPipelineExhaustedReleasesClaim(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.sim.SetFaults(topsim.Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	o, outs := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusFailed || o.Error.Kind != dispatch.KindExhausted || !o.Error.Retryable {
		t.Fatalf("outcome %s %+v, want failed/exhausted, retryable", o.Status, o.Error)
	}
	if len(outs) != 2 {
		t.Fatalf("records %d, want outcome + dead letter", len(outs))
	}
	// The claim was released: a replay from the DLQ tries again and succeeds.
	if err := f.sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	again, _ := f.process(f.message("omni-saas", seed(t, "omni-saas"), 2))
	if again.Status != dispatch.StatusSucceeded {
		t.Fatalf("replay after exhaustion: %s %+v, want succeeded", again.Status, again.Error)
	}
}

func TestPipelinePermanentErrorIsStored(t *testing.T) {
	f := newFixture(t, func(c *dispatch.PipelineConfig) { c.Sessions = map[string]string{"demo": "revoked-session"} })
	o, outs := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusFailed || o.Error.Kind != dispatch.KindAuth || o.Error.Code != "27" {
		t.Fatalf("outcome %s %+v, want failed/auth code 27", o.Status, o.Error)
	}
	if len(outs) != 1 {
		t.Errorf("records %d, want the outcome only (permanent failures are not dead letters)", len(outs))
	}
	if strings.Contains(string(outs[0].Value), "revoked-session") {
		t.Error("outcome carries the session key")
	}
	dup, _ := f.process(f.message("omni-saas", seed(t, "omni-saas"), 2))
	if dup.Status != dispatch.StatusDuplicate || dup.Error == nil || dup.Error.Code != "27" {
		t.Errorf("re-sent: %s %+v, want a duplicate replaying code 27", dup.Status, dup.Error)
	}
}

func TestPipelineRedisDownFailsClosed(t *testing.T) {
	f := newFixture(t, nil)
	f.redis.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	outs, err := f.pipe.Process(ctx, f.message("omni-saas", seed(t, "omni-saas"), 1))
	if err == nil {
		t.Fatalf("Process with Redis down returned %d records and no error, want an error", len(outs))
	}
	if s := f.sim.Stats(); s.Total != 0 {
		t.Fatalf("gateway called %d times without dedupe", s.Total)
	}
	f.redis.Restart()
	o, _ := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusSucceeded {
		t.Fatalf("after restart: %s %+v", o.Status, o.Error)
	}
}

func TestPipelineLongBanDefers(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.sim.SetFaults(topsim.Faults{BanRate: 1, BanSeconds: 120}); err != nil {
		t.Fatal(err)
	}
	_, err := f.pipe.Process(context.Background(), f.message("omni-saas", seed(t, "omni-saas"), 1))
	if !errors.Is(err, topapi.ErrLongBan) {
		t.Fatalf("Process under a 120s ban: %v, want an error matching topapi.ErrLongBan", err)
	}
	// The claim was released, so nothing waits on a lease while the event is parked.
	rec, err := f.store.Get(context.Background(), dedupe.Key{Channel: "omni-saas", ID: "REQ-3436967"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.State == dedupe.Claimed {
		t.Errorf("key still claimed while parked, want released")
	}
}

type panicCaller struct{}

func (panicCaller) Call(context.Context, topapi.Request) (topapi.Response, error) { panic("nil map") }

func TestPipelinePanicBecomesFailedOutcome(t *testing.T) {
	f := newFixture(t, func(c *dispatch.PipelineConfig) { c.Caller = panicCaller{} })
	o, outs := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusFailed || !strings.Contains(o.Error.Msg, "panic") {
		t.Fatalf("outcome %s %+v, want failed naming the panic", o.Status, o.Error)
	}
	if len(outs) != 2 {
		t.Errorf("records %d, want outcome + dead letter so it can be replayed", len(outs))
	}
	rec, err := f.store.Get(context.Background(), dedupe.Key{Channel: "omni-saas", ID: "REQ-3436967"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.State == dedupe.Claimed {
		t.Error("key left claimed after the panic, want released")
	}
}
