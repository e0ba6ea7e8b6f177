package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/pipeline"
	"github.com/ordersync/ordersync/pkg/topapi"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// Regression: a retried alibaba.trade.order.create could create a second Alibaba.com trade. The
// platform sees no idempotency field of it; a call that failed after the request reached the
// platform is now an ambiguous outcome, dead-lettered, never repeated.
func TestPipelineAmbiguousCallIsNotRepeated(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.sim.SetFaults(topsim.Faults{DropRate: 1}); err != nil {
		t.Fatal(err)
	}
	o, res := f.process(f.message("icbu-trade", seed(t, "icbu-trade"), 1))
	if o.Status != dispatch.StatusFailed || o.Error == nil || o.Error.Kind != dispatch.KindAmbiguous || o.Error.Retryable {
		t.Fatalf("outcome %s %+v, want failed/ambiguous, not retryable", o.Status, o.Error)
	}
	if o.Attempts != 1 || !strings.Contains(o.Error.Msg, "may have been executed") {
		t.Errorf("attempts %d, msg %q; want one attempt and a message saying why", o.Attempts, o.Error.Msg)
	}
	if res.DeadLetter == "" {
		t.Error("ambiguous outcome without a dead letter")
	}
	if s := f.sim.Stats(); s.Total != 1 || s.Succeeded != 1 {
		t.Errorf("platform saw %d calls (%d executed), want exactly one", s.Total, s.Succeeded)
	}
	if state := f.state("icbu-trade", o.IdempotencyKey); state != dedupe.Released {
		t.Errorf("key %s, want released: a replay after reconciling may try again", state)
	}
}

// Regression: an icbu-trade event found ambiguous released its key before its outcome was
// published; when its worker was killed in between, the event came back (redelivered from the
// last committed offset), found the key released and called the platform a second time. The
// release now names the event, which is recognised when it comes back; a replay (another offset)
// may still call, as the dead-letter workflow promises.
func TestPipelineRedeliveredAmbiguousIsNotCalled(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.sim.SetFaults(topsim.Faults{DropRate: 1}); err != nil {
		t.Fatal(err)
	}
	value := seed(t, "icbu-trade")
	first, _ := f.process(f.message("icbu-trade", value, 7))
	if first.Error == nil || first.Error.Kind != dispatch.KindAmbiguous {
		t.Fatalf("first outcome %s %+v, want ambiguous", first.Status, first.Error)
	}
	if err := f.sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	again, res := f.process(f.message("icbu-trade", value, 7)) // the same event, redelivered
	if again.Status != dispatch.StatusFailed || again.Error == nil || again.Error.Kind != dispatch.KindAmbiguous || again.Error.Code != "redelivered" || res.DeadLetter == "" {
		t.Errorf("redelivered: %s %+v (dead letter %q), want failed/ambiguous code redelivered, dead-lettered", again.Status, again.Error, res.DeadLetter)
	}
	if n := f.sim.Stats().Total; n != 1 {
		t.Fatalf("platform saw %d calls after the redelivery, want still 1", n)
	}
	replayed, _ := f.process(f.message("icbu-trade", value, 12)) // replayed from the DLQ after reconciling
	if replayed.Status != dispatch.StatusSucceeded {
		t.Errorf("replay: %s %+v, want it called and succeeded", replayed.Status, replayed.Error)
	}
	if n := f.sim.Stats().Total; n != 2 {
		t.Errorf("platform saw %d calls after the replay, want 2", n)
	}
}

// Channels whose API deduplicates by a field it sees keep retrying the same failure.
func TestPipelineDedupedChannelRetriesAfterDrop(t *testing.T) {
	f := newFixture(t, func(c *pipeline.Config) { c.Breaker.Disabled = true })
	if err := f.sim.SetFaults(topsim.Faults{DropRate: 1}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(100 * time.Millisecond)
		_ = f.sim.SetFaults(topsim.Faults{})
	}()
	o, _ := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	<-done
	if o.Status != dispatch.StatusSucceeded || o.Attempts < 2 {
		t.Errorf("outcome %s after %d attempt(s), want succeeded after retries", o.Status, o.Attempts)
	}
}

// Errors that prove the call was not executed stay retryable on icbu-trade: a gateway that refuses
// connections, a short flow-control ban.
func TestPipelineNotExecutedIsRetriedOnIcbu(t *testing.T) {
	f := newFixture(t, nil)
	f.sim.Ban(300*time.Millisecond, "", "")
	o, _ := f.process(f.message("icbu-trade", seed(t, "icbu-trade"), 1))
	if o.Status != dispatch.StatusSucceeded {
		t.Fatalf("after a short ban: %s %+v, want succeeded", o.Status, o.Error)
	}

	url, _ := fixedGateway(t, 200, `{}`)
	refused := strings.Replace(url, "/router/rest", "", 1)
	g := newFixture(t, func(c *pipeline.Config) {
		withGateway(t, refused[:strings.LastIndex(refused, ":")]+":1/router/rest")(c)
		c.Breaker.Disabled = true
		c.Retry.MaxElapsedTime = 300 * time.Millisecond
	})
	o, _ = g.process(g.message("icbu-trade", seed(t, "icbu-trade"), 1))
	if o.Error == nil || o.Error.Kind != dispatch.KindExhausted {
		t.Fatalf("connection refused throughout: %s %+v, want exhausted (retried, never ambiguous)", o.Status, o.Error)
	}
}

// A worker that takes over an expired claim on icbu-trade cannot know whether the crashed owner's
// call reached the platform: it does not call.
func TestPipelineTakeoverOnIcbuIsAmbiguous(t *testing.T) {
	f := newFixture(t, nil)
	probe := f.message("icbu-trade", seed(t, "icbu-trade"), 1)
	ch, _ := f.registry.ByID("icbu-trade")
	key := dedupe.Key{Channel: ch.ID, ID: "seed-icbu-trade-0001"}
	fp := fingerprintOfMessage(t, f, ch.ID, probe.Value)
	// A crashed owner: claimed with a short lease, never completed.
	if _, err := f.store.Claim(context.Background(), key, fp, "crashed-pod", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	o, res := f.process(probe)
	if o.Status != dispatch.StatusFailed || o.Error.Kind != dispatch.KindAmbiguous || !strings.Contains(o.Error.Msg, "crashed-pod") {
		t.Fatalf("outcome %s %+v, want failed/ambiguous naming the previous owner", o.Status, o.Error)
	}
	if res.DeadLetter == "" {
		t.Error("no dead letter")
	}
	if s := f.sim.Stats(); s.Total != 0 {
		t.Errorf("platform called %d times, want 0", s.Total)
	}

	// On a channel with a platform-visible key the taker calls (the platform deduplicates).
	omni := f.message("omni-saas", seed(t, "omni-saas"), 2)
	if _, err := f.store.Claim(context.Background(), dedupe.Key{Channel: "omni-saas", ID: "REQ-3436967"}, fingerprintOfMessage(t, f, "omni-saas", omni.Value), "crashed-pod", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if o, _ := f.process(omni); o.Status != dispatch.StatusSucceeded {
		t.Errorf("omni-saas after a takeover: %s %+v, want succeeded", o.Status, o.Error)
	}
}

// Records under the key prefix that are not the worker's, or stored outcomes that cannot be read,
// fail the event (platform/dedupe-corrupt, dead-lettered) instead of being retried forever.
func TestPipelineCorruptDedupeRecord(t *testing.T) {
	f := newFixture(t, nil)
	rdb := f.redis.Client()
	defer rdb.Close()
	ctx := context.Background()
	// A foreign record: a hash where a dedupe string belongs.
	if err := rdb.HSet(ctx, f.store.RedisKey(dedupe.Key{Channel: "omni-saas", ID: "REQ-3436967"}), "x", "1").Err(); err != nil {
		t.Fatal(err)
	}
	o, res := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusFailed || o.Error.Kind != dispatch.KindPlatform || o.Error.Code != dispatch.CodeDedupeCorrupt {
		t.Fatalf("outcome %s %+v, want failed/platform dedupe-corrupt", o.Status, o.Error)
	}
	if res.DeadLetter == "" {
		t.Error("no dead letter")
	}
	if s := f.sim.Stats(); s.Total != 0 {
		t.Errorf("platform called %d times without dedupe, want 0", s.Total)
	}

	// A stored outcome that is not an outcome.
	dk := dedupe.Key{Channel: "tmall-aliauto", ID: "garbage"}
	m := f.message("tmall-aliauto", withRequest(t, seed(t, "tmall-aliauto"), "sync_single_order_req.idempotent_id", "garbage"), 2)
	c, err := f.store.Claim(ctx, dk, fingerprintOfMessage(t, f, "tmall-aliauto", m.Value), "other", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.Complete(ctx, dk, "other", c.Token, []byte("not an outcome"), time.Hour); err != nil {
		t.Fatal(err)
	}
	o, res = f.process(m)
	if o.Status != dispatch.StatusFailed || o.Error.Code != dispatch.CodeDedupeCorrupt || res.DeadLetter == "" {
		t.Errorf("unreadable stored outcome: %s %+v (dead letter %q), want failed dedupe-corrupt, dead-lettered", o.Status, o.Error, res.DeadLetter)
	}
}

// fingerprintOfMessage is the fingerprint the pipeline binds value's key to.
func fingerprintOfMessage(t *testing.T, f *fixture, channel string, value []byte) string {
	t.Helper()
	ch, _ := f.registry.ByID(channel)
	env, err := dispatch.DecodeEnvelope(value, dispatch.DefaultMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	prep, err := ch.Prepare(env)
	if err != nil {
		t.Fatal(err)
	}
	return prep.Fingerprint
}

// cancelOnAnswer cancels the event's context the moment the platform's answer arrived: the drain
// deadline passing while the answer is in transit.
type cancelOnAnswer struct {
	next   pipeline.Caller
	cancel context.CancelFunc
}

func (c cancelOnAnswer) Call(ctx context.Context, req topapi.Request) (topapi.Response, error) {
	resp, err := c.next.Call(ctx, req)
	c.cancel()
	return resp, err
}

// Regression: when revoke or shutdown ran out of time the answer the platform had already given
// was thrown away (complete gave up on the cancelled context), and the next owner called again.
func TestPipelineAnswerThatArrivedIsStored(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var client *topapi.Client
	f := newFixture(t, func(c *pipeline.Config) {
		client = c.Gateways[0].Caller.(*topapi.Client)
		c.Gateways[0].Caller = cancelOnAnswer{next: client, cancel: cancel}
	})
	_, err := f.pipe.Process(ctx, f.message("omni-saas", seed(t, "omni-saas"), 1))
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Process: %v", err)
	}
	if state := f.state("omni-saas", "REQ-3436967"); state != dedupe.Done {
		t.Fatalf("key %s after the answer arrived on a cancelled context, want done (the answer stored)", state)
	}
	// The next owner replays the stored answer; the platform is not called again.
	o, _ := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusSucceeded {
		t.Errorf("redelivered: %s, want the stored succeeded outcome", o.Status)
	}
	if s := f.sim.Stats(); s.Total != 1 {
		t.Errorf("platform called %d times, want 1", s.Total)
	}
}

// Regression: a gateway answer of several MiB was embedded whole in the outcome (and stored in
// Redis), so its record could never be published and every redelivery replayed the wedge.
func TestPipelineLargeResponseIsCutToFit(t *testing.T) {
	// 3 MiB: a memo of "é\"x" over and over (a quote to escape, two bytes of UTF-8).
	huge := `{"alibaba_omni_saas_order_create_response":{"trade_no":1,"memo":"` + strings.Repeat(`é\"x`, 3<<20/5) + `"}}`
	url, _ := fixedGateway(t, 200, huge)
	const limit = 256 << 10
	f := newFixture(t, func(c *pipeline.Config) {
		withGateway(t, url)(c)
		c.MaxRecordBytes = limit
	})
	o, res := f.process(f.message("omni-saas", seed(t, "omni-saas"), 1))
	if o.Status != dispatch.StatusSucceeded || !o.ResponseTruncated {
		t.Fatalf("outcome %s, response_truncated %v; want succeeded with the response cut", o.Status, o.ResponseTruncated)
	}
	if n := consumer.RecordSize(res.Records[0]); n > limit {
		t.Errorf("outcome record of %d bytes, want ≤ %d", n, limit)
	}
	var s string
	if err := json.Unmarshal(o.Response, &s); err != nil || !strings.HasPrefix(s, `{"trade_no":1,"memo":"é\"x`) {
		t.Errorf("cut response %.60q (%v), want a JSON string holding the answer's start", o.Response, err)
	}
	small := res.Fallback()
	var fb dispatch.Outcome
	if err := json.Unmarshal(small[0].Value, &fb); err != nil || fb.Response != nil || !fb.ResponseTruncated || fb.Status != o.Status {
		t.Errorf("fallback %s (%v), want the outcome without its response", small[0].Value, err)
	}
	// The stored outcome is the cut one: a re-send replays it as it was published.
	dup, _ := f.process(f.message("omni-saas", seed(t, "omni-saas"), 2))
	if dup.Status != dispatch.StatusDuplicate || string(dup.Response) != string(o.Response) {
		t.Errorf("re-sent: %s with a response of %d bytes, want a duplicate replaying the cut one", dup.Status, len(dup.Response))
	}
}
