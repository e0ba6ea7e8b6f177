package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/pipeline"
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
	pipe     *pipeline.Pipeline
}

func newFixture(t *testing.T, mutate func(*pipeline.Config)) *fixture {
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
	cfg := pipeline.Config{
		Registry:      reg,
		Dedupe:        store,
		Gateways:      []pipeline.Gateway{{Name: "sim", Caller: client}},
		AppKey:        testAppKey,
		Sessions:      pipeline.NewSessions(map[string]string{"demo": testSession}),
		DefaultSeller: "demo",
		ResultsTopic:  "orders.results",
		Lease:         3 * time.Second,
		Retry:         pipeline.Retry{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxElapsedTime: 2 * time.Second},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	pipe, err := pipeline.New(cfg)
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

// state returns the dedupe state of the key (channel, id).
func (f *fixture) state(channel, id string) dedupe.State {
	f.t.Helper()
	rec, err := f.store.Get(context.Background(), dedupe.Key{Channel: channel, ID: id})
	if err != nil {
		f.t.Fatal(err)
	}
	return rec.State
}

func (f *fixture) process(m kafka.Message) (dispatch.Outcome, consumer.Result) {
	f.t.Helper()
	res, err := f.pipe.Process(context.Background(), m)
	if err != nil {
		f.t.Fatalf("Process: %v", err)
	}
	if len(res.Records) != 1 || res.Records[0].Topic != "orders.results" {
		f.t.Fatalf("records %v, want one to orders.results", res.Records)
	}
	var o dispatch.Outcome
	if err := json.Unmarshal(res.Records[0].Value, &o); err != nil {
		f.t.Fatalf("decode outcome: %v", err)
	}
	return o, res
}

// fixedGateway is a gateway that answers every call with body (HTTP 200 unless status says
// otherwise), counting calls.
func fixedGateway(t *testing.T, status int, body string) (url string, calls *atomic.Int32) {
	t.Helper()
	calls = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/router/rest", calls
}

// withGateway points the fixture's pipeline at url.
func withGateway(t *testing.T, url string) func(*pipeline.Config) {
	return func(c *pipeline.Config) {
		client, err := topapi.New(topapi.Config{Gateway: url, AppKey: testAppKey, AppSecret: testSecret, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c.Gateways = []pipeline.Gateway{{Name: "fixed", Caller: client}}
	}
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
			o, res := f.process(f.message(id, seed(t, id), 1))
			if o.Status != dispatch.StatusSucceeded {
				t.Fatalf("status %q (error %+v), want succeeded", o.Status, o.Error)
			}
			if res.DeadLetter != "" {
				t.Errorf("dead letter %q, want none", res.DeadLetter)
			}
			outs := res.Records
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
			o, res := f.process(m)
			if o.Status != dispatch.StatusRejected || o.Error == nil || o.Error.Kind != tt.wantKind {
				t.Fatalf("outcome %s %+v, want rejected/%s", o.Status, o.Error, tt.wantKind)
			}
			if !strings.Contains(o.Error.Msg, tt.wantMsg) {
				t.Errorf("error %q, want it to name %q", o.Error.Msg, tt.wantMsg)
			}
			if res.DeadLetter != o.Error.Msg {
				t.Errorf("dead letter reason %q, want the outcome's error %q", res.DeadLetter, o.Error.Msg)
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
	o, res := f.process(f.message("omni-saas", other, 2))
	if o.Status != dispatch.StatusRejected || o.Error.Kind != dispatch.KindConflict {
		t.Fatalf("outcome %s %+v, want rejected/conflict", o.Status, o.Error)
	}
	if res.DeadLetter == "" {
		t.Error("conflict without a dead letter")
	}
}

func TestPipelineTransientFaultsRetried(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.sim.SetFaults(topsim.Faults{ErrorRate: 0.5, ISPRate: 0.3}); err != nil {
		t.Fatal(err)
	}
	var retried bool
	for i, id := range dispatch.ChannelIDs() {
		if id == "icbu-trade" {
			continue // a 5xx may have been executed there: ambiguous, not retried (ambiguity_test.go)
		}
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
	// Without a breaker: failures until the retry budget runs out.
	f := newFixture(t, func(c *pipeline.Config) { c.Breaker.Disabled = true })
	if err := f.sim.SetFaults(topsim.Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	o, res := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusFailed || o.Error.Kind != dispatch.KindExhausted || !o.Error.Retryable {
		t.Fatalf("outcome %s %+v, want failed/exhausted, retryable", o.Status, o.Error)
	}
	if res.DeadLetter == "" {
		t.Fatal("exhausted without a dead letter")
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

// Regression: an expired seller session (code 27) was stored as a finished failed outcome, so
// re-sending after the session was refreshed gave duplicate(failed) for 7 days and nothing was
// dead-lettered to replay.
func TestPipelineSessionErrorIsDeadLetteredNotStored(t *testing.T) {
	f := newFixture(t, func(c *pipeline.Config) {
		c.Sessions = pipeline.NewSessions(map[string]string{"demo": "revoked-session"})
	})
	o, res := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusFailed || o.Error.Kind != dispatch.KindAuth || o.Error.Code != "27" {
		t.Fatalf("outcome %s %+v, want failed/auth code 27", o.Status, o.Error)
	}
	if res.DeadLetter == "" {
		t.Error("session failure without a dead letter: worker replay could not re-drive it")
	}
	if strings.Contains(string(res.Records[0].Value), "revoked-session") {
		t.Error("outcome carries the session key")
	}
	if state := f.state("omni-saas", "REQ-3436967"); state != dedupe.Released {
		t.Errorf("key %s after a session failure, want released (nothing stored)", state)
	}
	// The session is refreshed (the sessions file reloaded); the same event now succeeds.
	f.pipe.Sessions().Store(map[string]string{"demo": testSession})
	again, _ := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if again.Status != dispatch.StatusSucceeded {
		t.Errorf("after the refresh: %s %+v, want succeeded", again.Status, again.Error)
	}
}

func TestPipelinePermanentErrorIsStored(t *testing.T) {
	url, calls := fixedGateway(t, 200, `{"error_response":{"code":15,"msg":"Remote service error","sub_code":"isv.trade-service-rejection","sub_msg":"rejected"}}`)
	f := newFixture(t, withGateway(t, url))
	o, res := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusFailed || o.Error.Kind != dispatch.KindPlatform || o.Error.SubCode != "isv.trade-service-rejection" {
		t.Fatalf("outcome %s %+v, want failed/platform isv.trade-service-rejection", o.Status, o.Error)
	}
	if res.DeadLetter != "" {
		t.Errorf("dead letter %q, want none: the platform refused the call on its merits", res.DeadLetter)
	}
	dup, _ := f.process(f.message("omni-saas", seed(t, "omni-saas"), 2))
	if dup.Status != dispatch.StatusDuplicate || dup.Error == nil || dup.Error.SubCode != "isv.trade-service-rejection" {
		t.Errorf("re-sent: %s %+v, want a duplicate replaying the refusal", dup.Status, dup.Error)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("gateway called %d times, want 1", n)
	}
}

func TestPipelineRedisDownFailsClosed(t *testing.T) {
	f := newFixture(t, nil)
	f.redis.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := f.pipe.Process(ctx, f.message("omni-saas", seed(t, "omni-saas"), 1))
	if err == nil {
		t.Fatalf("Process with Redis down returned %d records and no error, want an error", len(res.Records))
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

func TestPipelineLongBanPausesEveryChannel(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.sim.SetFaults(topsim.Faults{BanRate: 1, BanSeconds: 120}); err != nil {
		t.Fatal(err)
	}
	_, err := f.pipe.Process(context.Background(), f.message("omni-saas", seed(t, "omni-saas"), 1))
	var pause *consumer.Pause
	if !errors.As(err, &pause) || !errors.Is(err, topapi.ErrLongBan) {
		t.Fatalf("Process under a 120s ban: %v, want a *consumer.Pause wrapping topapi.ErrLongBan", err)
	}
	if pause.Reason != "ban" || pause.Scope != "ban app "+testAppKey || !slices.Equal(pause.Topics, f.registry.Topics()) {
		t.Errorf("pause %s/%s over %v, want the app key's ban over every channel's topic", pause.Reason, pause.Scope, pause.Topics)
	}
	if d := time.Until(pause.Until); d < 110*time.Second || d > 121*time.Second {
		t.Errorf("pause until %s from now, want the ban's ~120s", d)
	}
	// The claim was released: nothing waits on a lease meanwhile.
	if state := f.state("omni-saas", "REQ-3436967"); state != dedupe.Released {
		t.Errorf("key %s while paused, want released", state)
	}
	// Another channel meets the client's recorded ban without calling the gateway.
	before := f.sim.Stats().Total
	if _, err := f.pipe.Process(context.Background(), f.message("tmall-aliauto", seed(t, "tmall-aliauto"), 1)); !errors.As(err, &pause) {
		t.Fatalf("another channel during the ban: %v, want a pause", err)
	}
	if n := f.sim.Stats().Total - before; n != 0 {
		t.Errorf("gateway called %d times during the ban, want 0", n)
	}
}

func TestPipelinePerAPIBanPausesItsChannel(t *testing.T) {
	url, _ := fixedGateway(t, 200, `{"error_response":{"code":7,"msg":"App Call Limited","sub_code":"accesscontrol.limited-by-api-access-count","sub_msg":"This ban will last for 300 more seconds"}}`)
	f := newFixture(t, withGateway(t, url))
	_, err := f.pipe.Process(context.Background(), f.message("omni-saas", seed(t, "omni-saas"), 1))
	var pause *consumer.Pause
	if !errors.As(err, &pause) {
		t.Fatalf("got %v, want a pause", err)
	}
	ch, _ := f.registry.ByID("omni-saas")
	if !slices.Equal(pause.Topics, []string{ch.Topic}) || !strings.Contains(pause.Scope, ch.Method) {
		t.Errorf("pause %q over %v, want only %s's topic", pause.Scope, pause.Topics, ch.ID)
	}
}

// Regression: a wrong app secret (code 25), an unknown app key, a proxy's 401/403/404 or a 200
// that is not JSON each stored the event as a finished failed outcome for 7 days, though the
// platform never executed the call. Now they pause intake until a probe passes.
func TestPipelineCredentialErrorsPauseAndStoreNothing(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"invalid signature", 200, `{"error_response":{"code":25,"msg":"Invalid signature"}}`},
		{"invalid app key", 200, `{"error_response":{"code":29,"msg":"Invalid app Key"}}`},
		{"insufficient isv permissions", 200, `{"error_response":{"code":11,"msg":"Insufficient isv permissions","sub_code":"isv.permission-api-package-limit"}}`},
		{"proxy 401", 401, `unauthorized`},
		{"proxy 403", 403, `forbidden`},
		{"wrong path 404", 404, `<html>not found</html>`},
		{"200 not JSON", 200, `<html>login page</html>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := fixedGateway(t, tt.status, tt.body)
			f := newFixture(t, withGateway(t, url))
			_, err := f.pipe.Process(context.Background(), f.message("omni-saas", seed(t, "omni-saas"), 1))
			var pause *consumer.Pause
			if !errors.As(err, &pause) || pause.Reason != "credentials" || !pause.Until.IsZero() {
				t.Fatalf("got %v, want a credentials pause ended by a probe", err)
			}
			if !slices.Equal(pause.Topics, f.registry.Topics()) {
				t.Errorf("pause over %v, want every topic of the gateway", pause.Topics)
			}
			if state := f.state("omni-saas", "REQ-3436967"); state != dedupe.Released {
				t.Errorf("key %s, want released: nothing stored", state)
			}
		})
	}
}

// A gateway that keeps failing opens its circuit: the event in flight stops burning retries and
// pauses intake instead of ending exhausted.
func TestPipelineOpenCircuitPauses(t *testing.T) {
	url, calls := fixedGateway(t, 503, `service unavailable`)
	f := newFixture(t, func(c *pipeline.Config) {
		withGateway(t, url)(c)
		c.Breaker = pipeline.Breaker{ConsecutiveFailures: 5, OpenFor: time.Second}
		c.Retry.MaxElapsedTime = time.Minute
	})
	_, err := f.pipe.Process(context.Background(), f.message("omni-saas", seed(t, "omni-saas"), 1))
	var pause *consumer.Pause
	if !errors.As(err, &pause) || pause.Reason != "circuit_open" || pause.Scope != "circuit fixed" {
		t.Fatalf("got %v, want a circuit_open pause", err)
	}
	if n := calls.Load(); n != 5 {
		t.Errorf("gateway called %d times, want 5 (the breaker's consecutive failures)", n)
	}
	if d := time.Until(pause.Until); d <= 0 || d > time.Second {
		t.Errorf("probe in %s, want within the breaker's 1s", d)
	}
	// Open: the next event does not call at all.
	if _, err := f.pipe.Process(context.Background(), f.message("tmall-aliauto", seed(t, "tmall-aliauto"), 2)); !errors.As(err, &pause) {
		t.Fatalf("second event: %v, want a pause", err)
	}
	if n := calls.Load(); n != 5 {
		t.Errorf("gateway called %d times with the circuit open, want still 5", n)
	}
}

type panicCaller struct{}

func (panicCaller) Call(context.Context, topapi.Request) (topapi.Response, error) { panic("nil map") }

func TestPipelinePanicBecomesFailedOutcome(t *testing.T) {
	f := newFixture(t, func(c *pipeline.Config) {
		c.Gateways = []pipeline.Gateway{{Name: "panic", Caller: panicCaller{}}}
	})
	o, res := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusFailed || !strings.Contains(o.Error.Msg, "panic") {
		t.Fatalf("outcome %s %+v, want failed naming the panic", o.Status, o.Error)
	}
	if res.DeadLetter == "" {
		t.Error("no dead letter: the event could not be replayed after a fix")
	}
	if f.state("omni-saas", "REQ-3436967") == dedupe.Claimed {
		t.Error("key left claimed after the panic, want released")
	}
}

// While the gateway is retried for longer than the lease, the lease is renewed: no other owner
// can take the key over meanwhile.
func TestPipelineRenewsLeaseWhileRetrying(t *testing.T) {
	const lease = 300 * time.Millisecond
	f := newFixture(t, func(c *pipeline.Config) {
		c.Lease = lease
		c.Breaker.Disabled = true
		c.Retry = pipeline.Retry{InitialInterval: 50 * time.Millisecond, Multiplier: 1, MaxInterval: 50 * time.Millisecond, MaxElapsedTime: 10 * time.Second}
	})
	if err := f.sim.SetFaults(topsim.Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	value := seed(t, "omni-saas")
	done := make(chan dispatch.Outcome, 1)
	go func() { o, _ := f.process(f.message("omni-saas", value, 1)); done <- o }()

	// A rival asks for the key for four leases' time; the owner must hold it throughout.
	key := dedupe.Key{Channel: "omni-saas", ID: "REQ-3436967"}
	fp := fingerprintOfMessage(t, f, "omni-saas", value)
	deadline := time.Now().Add(4 * lease)
	for time.Now().Before(deadline) {
		time.Sleep(lease / 6)
		c, err := f.store.Claim(context.Background(), key, fp, "rival", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if c.State != dedupe.InProgress {
			t.Fatalf("the rival's claim of %s: %s; want in progress: the owner's lease must be renewed", key, c.State)
		}
	}
	if err := f.sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if o := <-done; o.Status != dispatch.StatusSucceeded {
		t.Errorf("outcome %s %+v, want succeeded once the gateway recovers", o.Status, o.Error)
	}
}
