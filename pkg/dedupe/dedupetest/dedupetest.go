// Package dedupetest is the contract suite for dedupe.Store: the same cases run against every Redis the
// store is meant to work on (a real redis-server, a Redis Cluster, miniredis).
package dedupetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/ordersync/ordersync/pkg/dedupe"
)

// Env is one isolated store under test.
type Env struct {
	// Store is the store under test, built with dedupe.Config's defaults apart from Prefix.
	Store *dedupe.Store
	// Client is the client Store uses; the suite reads TTLs and flushes the script cache with it.
	Client redis.UniversalClient
	// Advance moves the Redis server's clock forward by at least d, so that leases expire: a real server
	// is simply waited for; miniredis gets its clock set (with ClockTTL on, so TTLs follow too).
	Advance func(d time.Duration)
}

// Leases used by the cases. Short leases are only ever checked after Advance(shortLease+margin), and long
// ones well before they could end, so the suite has no timing races on a slow machine.
const (
	shortLease = 50 * time.Millisecond
	longLease  = 10 * time.Minute
	expire     = shortLease + 50*time.Millisecond
	retention  = time.Hour
)

// Run runs the contract suite. newEnv is called once per case and must return a store whose keys no other
// case sees (a fresh server or a distinct prefix) and which is cleaned up with t.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	cases := []struct {
		name string
		run  func(t *testing.T, e Env)
	}{
		{"ClaimNewKey", testClaimNewKey},
		{"ConcurrentClaimsOneWinner", testConcurrentClaims},
		{"ReclaimBySameOwner", testReclaimSameOwner},
		{"InProgress", testInProgress},
		{"TakeoverFencesStaleOwner", testTakeover},
		{"ExpiredUntakenLeaseCanComplete", testExpiredUntaken},
		{"RenewExtendsLease", testRenew},
		{"Conflict", testConflict},
		{"DoneReplaysOutcome", testDoneReplay},
		{"CompleteIsIdempotent", testCompleteRetry},
		{"ReleaseThenReclaim", testRelease},
		{"TokensNeverRepeatAcrossRelease", testReleaseSameOwner},
		{"LeaseLostOnAbsentKey", testAbsent},
		{"TTLInEveryState", testTTL},
		{"KeysAreIndependent", testIndependentKeys},
		{"ScriptCacheFlushed", testNoScript},
		{"CorruptRecordFailsClosed", testCorrupt},
		{"TakeoverIsReported", testTakeoverReported},
		{"ScriptsRunTwice", testRunTwice},
		{"ReleaseNoteReachesTheNextClaim", testReleaseNoted},
		{"CanceledContext", testCanceled},
		{"InvalidArguments", testInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newEnv(t)) })
	}
}

var keyA = dedupe.Key{Channel: "omni-saas", ID: "REQ-1"}

const (
	fpA = "fp-a"
	fpB = "fp-b"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func claim(t *testing.T, e Env, key dedupe.Key, fp, owner string, lease time.Duration) dedupe.Claim {
	t.Helper()
	c, err := e.Store.Claim(ctxFor(t), key, fp, owner, lease)
	if err != nil {
		t.Fatalf("Claim(%s, %s, %s): %v", key, fp, owner, err)
	}
	return c
}

func mustClaimed(t *testing.T, e Env, key dedupe.Key, fp, owner string, lease time.Duration, wantToken int64) dedupe.Claim {
	t.Helper()
	c := claim(t, e, key, fp, owner, lease)
	if c.State != dedupe.Claimed || c.Token != wantToken || c.Owner != owner || c.LeaseExpires.IsZero() {
		t.Fatalf("Claim(%s, %s) = %+v, want Claimed by %s with token %d and a lease expiry", key, owner, c, owner, wantToken)
	}
	return c
}

func get(t *testing.T, e Env, key dedupe.Key) dedupe.Record {
	t.Helper()
	r, err := e.Store.Get(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return r
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Errorf("%s: error %v, want %v", what, got, want)
	}
}

func wantNoErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testClaimNewKey(t *testing.T, e Env) {
	if _, err := e.Store.Get(ctxFor(t), keyA); !errors.Is(err, dedupe.ErrNotFound) {
		t.Fatalf("Get before Claim: error %v, want ErrNotFound", err)
	}
	c := mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	if c.Outcome != nil {
		t.Errorf("Claimed outcome = %q, want nil", c.Outcome)
	}
	want := dedupe.Record{State: dedupe.Claimed, Owner: "a", Token: 1, Fingerprint: fpA, LeaseExpires: c.LeaseExpires}
	if diff := cmp.Diff(want, get(t, e, keyA)); diff != "" {
		t.Errorf("Get after Claim (-want +got):\n%s", diff)
	}
}

func testConcurrentClaims(t *testing.T, e Env) {
	const n = 100
	results := make([]dedupe.Claim, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = e.Store.Claim(ctxFor(t), keyA, fpA, fmt.Sprintf("owner-%d", i), longLease)
		})
	}
	close(start)
	wg.Wait()

	winner := ""
	for i, c := range results {
		if errs[i] != nil {
			t.Fatalf("Claim by owner-%d: %v", i, errs[i])
		}
		if c.State == dedupe.Claimed {
			if winner != "" {
				t.Fatalf("both %s and %s claimed the key", winner, c.Owner)
			}
			winner = c.Owner
		}
	}
	if winner == "" {
		t.Fatal("no goroutine claimed the key")
	}
	lease := get(t, e, keyA).LeaseExpires
	for i, c := range results {
		if c.Owner == winner {
			continue
		}
		want := dedupe.Claim{State: dedupe.InProgress, Token: 1, Owner: winner, LeaseExpires: lease}
		if diff := cmp.Diff(want, c); diff != "" {
			t.Errorf("Claim by owner-%d (-want +got):\n%s", i, diff)
		}
	}
}

func testReclaimSameOwner(t *testing.T, e Env) {
	first := mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	second := mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	if second.LeaseExpires.Before(first.LeaseExpires) {
		t.Errorf("re-claim lease expiry %v before first %v, want extended or equal", second.LeaseExpires, first.LeaseExpires)
	}
	// A re-claim with a shorter lease never shortens the live lease.
	third := mustClaimed(t, e, keyA, fpA, "a", shortLease, 1)
	if third.LeaseExpires.Before(second.LeaseExpires) {
		t.Errorf("re-claim with shorter lease moved expiry back from %v to %v", second.LeaseExpires, third.LeaseExpires)
	}
}

func testInProgress(t *testing.T, e Env) {
	a := mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	got := claim(t, e, keyA, fpA, "b", longLease)
	want := dedupe.Claim{State: dedupe.InProgress, Token: 1, Owner: "a", LeaseExpires: a.LeaseExpires}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Claim by b (-want +got):\n%s", diff)
	}
	wantErr(t, "InProgress Claim.Err", got.Err(), dedupe.ErrInProgress)
	// The other owner cannot touch a's claim.
	ctx := ctxFor(t)
	wantErr(t, "Renew by b", e.Store.Renew(ctx, keyA, "b", 1, longLease), dedupe.ErrLeaseLost)
	wantErr(t, "Complete by b", e.Store.Complete(ctx, keyA, "b", 1, []byte("x"), retention), dedupe.ErrLeaseLost)
	wantErr(t, "Release by b", e.Store.Release(ctx, keyA, "b", 1), dedupe.ErrLeaseLost)
	if got := get(t, e, keyA); got.Owner != "a" || got.State != dedupe.Claimed {
		t.Errorf("record after b's attempts = %+v, want still claimed by a", got)
	}
}

func testTakeover(t *testing.T, e Env) {
	mustClaimed(t, e, keyA, fpA, "a", shortLease, 1)
	e.Advance(expire)
	b := mustClaimed(t, e, keyA, fpA, "b", longLease, 2)

	ctx := ctxFor(t)
	// a paused past its lease and wakes up: everything it tries is rejected.
	wantErr(t, "stale Complete", e.Store.Complete(ctx, keyA, "a", 1, []byte("stale"), retention), dedupe.ErrLeaseLost)
	wantErr(t, "stale Renew", e.Store.Renew(ctx, keyA, "a", 1, longLease), dedupe.ErrLeaseLost)
	wantErr(t, "stale Release", e.Store.Release(ctx, keyA, "a", 1), dedupe.ErrLeaseLost)
	// The right owner with a wrong token is rejected too.
	wantErr(t, "Complete with wrong token", e.Store.Complete(ctx, keyA, "b", 1, []byte("stale"), retention), dedupe.ErrLeaseLost)

	want := dedupe.Record{State: dedupe.Claimed, Owner: "b", Token: 2, Fingerprint: fpA, LeaseExpires: b.LeaseExpires, PreviousOwner: "a"}
	if diff := cmp.Diff(want, get(t, e, keyA)); diff != "" {
		t.Errorf("record after stale attempts (-want +got):\n%s", diff)
	}

	wantNoErr(t, "Complete by b", e.Store.Complete(ctx, keyA, "b", 2, []byte("ok"), retention))
	wantErr(t, "stale Complete after done", e.Store.Complete(ctx, keyA, "a", 1, []byte("stale"), retention), dedupe.ErrLeaseLost)
	got := claim(t, e, keyA, fpA, "c", longLease)
	if diff := cmp.Diff(dedupe.Claim{State: dedupe.Done, Token: 2, Owner: "b", Outcome: []byte("ok")}, got); diff != "" {
		t.Errorf("Claim after completion (-want +got):\n%s", diff)
	}
}

func testExpiredUntaken(t *testing.T, e Env) {
	mustClaimed(t, e, keyA, fpA, "a", shortLease, 1)
	e.Advance(expire)
	// Nobody took the key over, so the token proves nobody else worked on it.
	wantNoErr(t, "Complete after lease expiry", e.Store.Complete(ctxFor(t), keyA, "a", 1, []byte("late"), retention))
	got := claim(t, e, keyA, fpA, "b", longLease)
	if got.State != dedupe.Done || string(got.Outcome) != "late" {
		t.Errorf("Claim after late completion = %+v, want Done with outcome \"late\"", got)
	}
}

func testRenew(t *testing.T, e Env) {
	a := mustClaimed(t, e, keyA, fpA, "a", shortLease, 1)
	ctx := ctxFor(t)
	wantNoErr(t, "Renew", e.Store.Renew(ctx, keyA, "a", 1, longLease))
	renewed := get(t, e, keyA).LeaseExpires
	if !renewed.After(a.LeaseExpires) {
		t.Errorf("lease expiry after Renew = %v, want after %v", renewed, a.LeaseExpires)
	}
	e.Advance(expire) // past the original lease
	got := claim(t, e, keyA, fpA, "b", longLease)
	want := dedupe.Claim{State: dedupe.InProgress, Token: 1, Owner: "a", LeaseExpires: renewed}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Claim by b after Renew (-want +got):\n%s", diff)
	}

	// A lease that expired without a takeover can still be renewed.
	wantNoErr(t, "Renew short", e.Store.Renew(ctx, keyA, "a", 1, shortLease))
	e.Advance(expire)
	wantNoErr(t, "Renew after expiry", e.Store.Renew(ctx, keyA, "a", 1, longLease))
	if got := claim(t, e, keyA, fpA, "b", longLease); got.State != dedupe.InProgress {
		t.Errorf("Claim by b after late Renew = %+v, want InProgress", got)
	}
}

func testConflict(t *testing.T, e Env) {
	// Each state binds the key to fpA; a claim with fpB is a conflict and changes nothing.
	states := []struct {
		name  string
		setup func(t *testing.T, key dedupe.Key)
	}{
		{"claimed", func(t *testing.T, key dedupe.Key) {
			mustClaimed(t, e, key, fpA, "a", longLease, 1)
		}},
		{"claimed by the same owner", func(t *testing.T, key dedupe.Key) {
			mustClaimed(t, e, key, fpA, "b", longLease, 1)
		}},
		{"done", func(t *testing.T, key dedupe.Key) {
			mustClaimed(t, e, key, fpA, "a", longLease, 1)
			wantNoErr(t, "Complete", e.Store.Complete(ctxFor(t), key, "a", 1, []byte("ok"), retention))
		}},
		{"released", func(t *testing.T, key dedupe.Key) {
			mustClaimed(t, e, key, fpA, "a", longLease, 1)
			wantNoErr(t, "Release", e.Store.Release(ctxFor(t), key, "a", 1))
		}},
	}
	for i, s := range states {
		t.Run(s.name, func(t *testing.T) {
			key := dedupe.Key{Channel: "omni-saas", ID: fmt.Sprintf("conflict-%d", i)}
			s.setup(t, key)
			before := get(t, e, key)
			got := claim(t, e, key, fpB, "b", longLease)
			if diff := cmp.Diff(dedupe.Claim{State: dedupe.Conflict}, got); diff != "" {
				t.Errorf("Claim with another fingerprint (-want +got):\n%s", diff)
			}
			wantErr(t, "Conflict Claim.Err", got.Err(), dedupe.ErrConflict)
			if diff := cmp.Diff(before, get(t, e, key)); diff != "" {
				t.Errorf("record changed by a conflicting claim (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("claimed, lease expired", func(t *testing.T) {
		key := dedupe.Key{Channel: "omni-saas", ID: "conflict-expired"}
		mustClaimed(t, e, key, fpA, "a", shortLease, 1)
		e.Advance(expire)
		if got := claim(t, e, key, fpB, "b", longLease); got.State != dedupe.Conflict {
			t.Errorf("Claim with another fingerprint after expiry = %+v, want Conflict", got)
		}
		mustClaimed(t, e, key, fpA, "b", longLease, 2) // the right fingerprint still takes it over
	})
}

func testDoneReplay(t *testing.T, e Env) {
	outcome := make([]byte, 64<<10)
	for i := range outcome {
		outcome[i] = byte(i*7 + i/251) // every byte value, NULs and invalid UTF-8 included
	}
	outcome = append(outcome, "\r\n$-1\r\n"...)
	sent := bytes.Clone(outcome)

	mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	wantNoErr(t, "Complete", e.Store.Complete(ctxFor(t), keyA, "a", 1, sent, retention))
	clear(sent) // the store must not keep the caller's slice
	for _, owner := range []string{"b", "a", "c"} {
		got := claim(t, e, keyA, fpA, owner, longLease)
		if got.State != dedupe.Done || got.Token != 1 || got.Owner != "a" || !got.LeaseExpires.IsZero() {
			t.Errorf("Claim by %s = {State:%v Token:%d Owner:%q LeaseExpires:%v}, want Done by a with token 1",
				owner, got.State, got.Token, got.Owner, got.LeaseExpires)
		}
		if !bytes.Equal(got.Outcome, outcome) {
			t.Errorf("Claim by %s: outcome of %d bytes differs from the %d bytes completed", owner, len(got.Outcome), len(outcome))
		}
		wantErr(t, "Done Claim.Err", got.Err(), dedupe.ErrDone)
	}
	r := get(t, e, keyA)
	if r.State != dedupe.Done || !bytes.Equal(r.Outcome, outcome) || r.Fingerprint != fpA || !r.LeaseExpires.IsZero() {
		t.Errorf("Get = {State:%v Fingerprint:%q LeaseExpires:%v, %d outcome bytes}, want Done with the outcome",
			r.State, r.Fingerprint, r.LeaseExpires, len(r.Outcome))
	}

	// An empty outcome is a valid outcome.
	k := dedupe.Key{Channel: "omni-saas", ID: "empty-outcome"}
	mustClaimed(t, e, k, fpA, "a", longLease, 1)
	wantNoErr(t, "Complete empty", e.Store.Complete(ctxFor(t), k, "a", 1, nil, retention))
	if got := claim(t, e, k, fpA, "b", longLease); got.State != dedupe.Done || len(got.Outcome) != 0 {
		t.Errorf("Claim after empty completion = %+v, want Done with an empty outcome", got)
	}
}

func testCompleteRetry(t *testing.T, e Env) {
	ctx := ctxFor(t)
	mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	wantNoErr(t, "Complete", e.Store.Complete(ctx, keyA, "a", 1, []byte("first"), retention))
	// A retried call (the first reply was lost) succeeds; a different outcome never overwrites.
	wantNoErr(t, "Complete again", e.Store.Complete(ctx, keyA, "a", 1, []byte("first"), retention))
	wantErr(t, "Complete with another outcome", e.Store.Complete(ctx, keyA, "a", 1, []byte("second"), retention), dedupe.ErrLeaseLost)
	wantErr(t, "Renew after done", e.Store.Renew(ctx, keyA, "a", 1, longLease), dedupe.ErrLeaseLost)
	wantErr(t, "Release after done", e.Store.Release(ctx, keyA, "a", 1), dedupe.ErrLeaseLost)
	if got := claim(t, e, keyA, fpA, "b", longLease); string(got.Outcome) != "first" {
		t.Errorf("replayed outcome = %q, want \"first\"", got.Outcome)
	}
}

func testRelease(t *testing.T, e Env) {
	ctx := ctxFor(t)
	mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	wantNoErr(t, "Release", e.Store.Release(ctx, keyA, "a", 1))
	wantNoErr(t, "Release again", e.Store.Release(ctx, keyA, "a", 1))
	want := dedupe.Record{State: dedupe.Released, Owner: "a", Token: 1, Fingerprint: fpA}
	if diff := cmp.Diff(want, get(t, e, keyA)); diff != "" {
		t.Errorf("Get after Release (-want +got):\n%s", diff)
	}
	wantErr(t, "Complete after Release", e.Store.Complete(ctx, keyA, "a", 1, []byte("x"), retention), dedupe.ErrLeaseLost)
	wantErr(t, "Renew after Release", e.Store.Renew(ctx, keyA, "a", 1, longLease), dedupe.ErrLeaseLost)

	mustClaimed(t, e, keyA, fpA, "b", longLease, 2)
	wantErr(t, "stale Complete after re-claim", e.Store.Complete(ctx, keyA, "a", 1, []byte("x"), retention), dedupe.ErrLeaseLost)
	wantErr(t, "stale Release after re-claim", e.Store.Release(ctx, keyA, "a", 1), dedupe.ErrLeaseLost)
	if got := claim(t, e, keyA, fpA, "a", longLease); got.State != dedupe.InProgress || got.Owner != "b" {
		t.Errorf("Claim by a after b's re-claim = %+v, want InProgress by b", got)
	}
	wantNoErr(t, "Complete by b", e.Store.Complete(ctx, keyA, "b", 2, []byte("ok"), retention))
}

func testReleaseSameOwner(t *testing.T, e Env) {
	// Regression guard for token reuse: if Release deleted the record, the next claim would get token 1
	// again and a stale holder of token 1 with the same owner name could complete it.
	ctx := ctxFor(t)
	mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	wantNoErr(t, "Release", e.Store.Release(ctx, keyA, "a", 1))
	mustClaimed(t, e, keyA, fpA, "a", longLease, 2)
	wantErr(t, "Complete with the released token", e.Store.Complete(ctx, keyA, "a", 1, []byte("stale"), retention), dedupe.ErrLeaseLost)
	wantNoErr(t, "Release 2", e.Store.Release(ctx, keyA, "a", 2))
	mustClaimed(t, e, keyA, fpA, "a", shortLease, 3)
	e.Advance(expire)
	mustClaimed(t, e, keyA, fpA, "b", longLease, 4)
}

func testAbsent(t *testing.T, e Env) {
	ctx := ctxFor(t)
	wantErr(t, "Renew", e.Store.Renew(ctx, keyA, "a", 1, longLease), dedupe.ErrLeaseLost)
	wantErr(t, "Complete", e.Store.Complete(ctx, keyA, "a", 1, []byte("x"), retention), dedupe.ErrLeaseLost)
	wantErr(t, "Release", e.Store.Release(ctx, keyA, "a", 1), dedupe.ErrLeaseLost)
	if _, err := e.Store.Get(ctx, keyA); !errors.Is(err, dedupe.ErrNotFound) {
		t.Errorf("Get after rejected writes: error %v, want ErrNotFound (nothing written)", err)
	}
	n, err := e.Client.Exists(ctx, e.Store.RedisKey(keyA)).Result()
	if err != nil || n != 0 {
		t.Errorf("EXISTS %s = %d, %v; want 0", e.Store.RedisKey(keyA), n, err)
	}
}

func testTTL(t *testing.T, e Env) {
	ctx := ctxFor(t)
	pttl := func(t *testing.T, key dedupe.Key) time.Duration {
		t.Helper()
		d, err := e.Client.PTTL(ctx, e.Store.RedisKey(key)).Result()
		if err != nil {
			t.Fatalf("PTTL %s: %v", e.Store.RedisKey(key), err)
		}
		return d
	}
	atLeast := func(t *testing.T, state string, key dedupe.Key, floor time.Duration) {
		t.Helper()
		if d := pttl(t, key); d < floor {
			t.Errorf("%s: PTTL %v, want at least %v (every key has a TTL outliving its lease)", state, d, floor)
		}
	}
	within := func(t *testing.T, state string, key dedupe.Key, lo, hi time.Duration) {
		t.Helper()
		if d := pttl(t, key); d < lo || d > hi {
			t.Errorf("%s: PTTL %v, want within [%v, %v]", state, d, lo, hi)
		}
	}

	k := dedupe.Key{Channel: "omni-saas", ID: "ttl"}
	mustClaimed(t, e, k, fpA, "a", shortLease, 1)
	atLeast(t, "claimed", k, longLease) // the record outlives the lease, keeping the token
	e.Advance(expire)
	atLeast(t, "claimed, lease expired", k, longLease)
	mustClaimed(t, e, k, fpA, "b", longLease, 2)
	atLeast(t, "taken over", k, longLease)
	wantNoErr(t, "Renew", e.Store.Renew(ctx, k, "b", 2, longLease))
	atLeast(t, "renewed", k, longLease)
	wantNoErr(t, "Release", e.Store.Release(ctx, k, "b", 2))
	atLeast(t, "released", k, longLease)
	mustClaimed(t, e, k, fpA, "c", longLease, 3)
	wantNoErr(t, "Complete", e.Store.Complete(ctx, k, "c", 3, []byte("ok"), retention))
	within(t, "done", k, retention-time.Minute, retention)
	claim(t, e, k, fpA, "d", longLease)
	within(t, "done, replayed", k, retention-time.Minute, retention)

	// Complete's retention 0 means dedupe.DefaultRetention.
	k2 := dedupe.Key{Channel: "omni-saas", ID: "ttl-default"}
	mustClaimed(t, e, k2, fpA, "a", longLease, 1)
	wantNoErr(t, "Complete", e.Store.Complete(ctx, k2, "a", 1, []byte("ok"), 0))
	within(t, "done with default retention", k2, dedupe.DefaultRetention-time.Minute, dedupe.DefaultRetention)
}

func testIndependentKeys(t *testing.T, e Env) {
	// The same id on different channels, and ids with hash-tag and separator characters, are all distinct
	// keys (on a cluster, they also land on different slots).
	keys := []dedupe.Key{
		{Channel: "omni-saas", ID: "X-1"},
		{Channel: "icbu-trade", ID: "X-1"},
		{Channel: "omni-saas", ID: "X-1:2"},
		{Channel: "omni-saas", ID: "{X-1}"},
		{Channel: "omni-saas", ID: "}X{"},
		{Channel: "mos-haiding", ID: "refund:R-9 订单 ✓"},
	}
	for i, k := range keys {
		mustClaimed(t, e, k, fmt.Sprintf("fp-%d", i), "a", longLease, 1)
	}
	for i, k := range keys {
		wantNoErr(t, "Complete "+k.String(), e.Store.Complete(ctxFor(t), k, "a", 1, []byte(k.String()), retention))
		got := claim(t, e, k, fmt.Sprintf("fp-%d", i), "b", longLease)
		if got.State != dedupe.Done || string(got.Outcome) != k.String() {
			t.Errorf("Claim(%s) = %+v, want Done with its own outcome", k, got)
		}
	}
}

func testNoScript(t *testing.T, e Env) {
	ctx := ctxFor(t)
	mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	// After a failover or SCRIPT FLUSH the scripts are gone; EVALSHA fails with NOSCRIPT and the store
	// falls back to EVAL.
	if err := e.Client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	wantNoErr(t, "Renew after SCRIPT FLUSH", e.Store.Renew(ctx, keyA, "a", 1, longLease))
	if err := e.Client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
}

// corruptValue is something other than a record, written under a store key.
type corruptValue struct {
	name  string
	write func(ctx context.Context, c redis.UniversalClient, rkey string) error
	// same reports an error unless the key still holds exactly what write wrote.
	same func(ctx context.Context, c redis.UniversalClient, rkey string) error
}

func corruptString(name, value string) corruptValue {
	return corruptValue{
		name: name,
		write: func(ctx context.Context, c redis.UniversalClient, rkey string) error {
			return c.Set(ctx, rkey, value, time.Minute).Err()
		},
		same: func(ctx context.Context, c redis.UniversalClient, rkey string) error {
			if got, err := c.Get(ctx, rkey).Result(); err != nil || got != value {
				return fmt.Errorf("value %q, %v; want %q", got, err, value)
			}
			return nil
		},
	}
}

var corruptValues = []corruptValue{
	corruptString("lengths beyond the body", "c1 0 99 1\nab"),
	corruptString("not a record", "hello"),
	corruptString("unknown state", "x1 0 1 1\naf"),
	corruptString("empty string", ""),
	{
		name: "hash (WRONGTYPE)",
		write: func(ctx context.Context, c redis.UniversalClient, rkey string) error {
			return c.HSet(ctx, rkey, "s", "c").Err()
		},
		same: func(ctx context.Context, c redis.UniversalClient, rkey string) error {
			if got, err := c.HGetAll(ctx, rkey).Result(); err != nil || len(got) != 1 || got["s"] != "c" {
				return fmt.Errorf("hash %v, %v; want {s: c}", got, err)
			}
			return nil
		},
	},
}

func testCorrupt(t *testing.T, e Env) {
	// A key under the prefix that holds something other than a record (written by something else, or a
	// wrong type) is ErrCorrupt for every operation, naming the key — never a claim, never overwritten,
	// and never mistaken for ErrLeaseLost or ErrNotFound, which callers handle as normal states.
	for i, v := range corruptValues {
		t.Run(v.name, func(t *testing.T) {
			ctx := ctxFor(t)
			k := dedupe.Key{Channel: "omni-saas", ID: fmt.Sprintf("corrupt-%d", i)}
			rkey := e.Store.RedisKey(k)
			if err := v.write(ctx, e.Client, rkey); err != nil {
				t.Fatalf("write %s: %v", rkey, err)
			}
			c, claimErr := e.Store.Claim(ctx, k, fpA, "a", longLease)
			if c.State == dedupe.Claimed {
				t.Errorf("Claim = %+v, want no claim", c)
			}
			_, getErr := e.Store.Get(ctx, k)
			for _, op := range []struct {
				name string
				err  error
			}{
				{"Claim", claimErr},
				{"Renew", e.Store.Renew(ctx, k, "a", 1, longLease)},
				{"Complete", e.Store.Complete(ctx, k, "a", 1, []byte("x"), retention)},
				{"Release", e.Store.Release(ctx, k, "a", 1)},
				{"Get", getErr},
			} {
				if !errors.Is(op.err, dedupe.ErrCorrupt) {
					t.Errorf("%s: error %v, want ErrCorrupt", op.name, op.err)
					continue
				}
				if errors.Is(op.err, dedupe.ErrLeaseLost) || errors.Is(op.err, dedupe.ErrNotFound) {
					t.Errorf("%s: error %v also matches ErrLeaseLost or ErrNotFound", op.name, op.err)
				}
				if msg := op.err.Error(); !strings.Contains(msg, k.String()) || !strings.Contains(msg, rkey) {
					t.Errorf("%s: error %q names neither the key %s nor the Redis key %s", op.name, msg, k, rkey)
				}
			}
			if err := v.same(ctx, e.Client, rkey); err != nil {
				t.Errorf("%s after the attempts: %v", rkey, err)
			}
		})
	}
}

func testTakeoverReported(t *testing.T, e Env) {
	// A caller whose platform does not deduplicate must know when it takes over a claim whose owner may
	// have called the platform already (a platform without an idempotency field would execute it twice).
	ctx := ctxFor(t)
	a := mustClaimed(t, e, keyA, fpA, "a", shortLease, 1)
	if a.TookOver || a.PreviousOwner != "" {
		t.Errorf("Claim of a new key = %+v, want no takeover", a)
	}
	e.Advance(expire)
	// a's own expired claim, claimed again by a, is not a takeover.
	if again := mustClaimed(t, e, keyA, fpA, "a", shortLease, 1); again.TookOver {
		t.Errorf("a re-claiming its own expired claim = %+v, want no takeover", again)
	}
	e.Advance(expire)

	b := mustClaimed(t, e, keyA, fpA, "b", longLease, 2)
	if !b.TookOver || b.PreviousOwner != "a" {
		t.Errorf("Claim by b of a's expired claim = %+v, want TookOver from a", b)
	}
	want := dedupe.Record{State: dedupe.Claimed, Owner: "b", Token: 2, Fingerprint: fpA, LeaseExpires: b.LeaseExpires, PreviousOwner: "a"}
	if diff := cmp.Diff(want, get(t, e, keyA)); diff != "" {
		t.Errorf("Get after takeover (-want +got):\n%s", diff)
	}
	// A retried Claim (its first reply lost) and a Renew keep reporting the takeover.
	if retried := mustClaimed(t, e, keyA, fpA, "b", longLease, 2); !retried.TookOver || retried.PreviousOwner != "a" {
		t.Errorf("repeated Claim by b = %+v, want TookOver from a again", retried)
	}
	wantNoErr(t, "Renew by b", e.Store.Renew(ctx, keyA, "b", 2, shortLease))
	if retried := mustClaimed(t, e, keyA, fpA, "b", shortLease, 2); !retried.TookOver || retried.PreviousOwner != "a" {
		t.Errorf("Claim by b after Renew = %+v, want TookOver from a", retried)
	}
	// Other owners see the holder, not a takeover.
	if got := claim(t, e, keyA, fpA, "c", longLease); got.State != dedupe.InProgress || got.TookOver {
		t.Errorf("Claim by c while b holds the key = %+v, want InProgress without takeover", got)
	}

	// b stalls too: c takes over from b.
	e.Advance(expire)
	c := mustClaimed(t, e, keyA, fpA, "c", longLease, 3)
	if !c.TookOver || c.PreviousOwner != "b" {
		t.Errorf("Claim by c of b's expired claim = %+v, want TookOver from b", c)
	}

	// A released claim is no takeover: its owner gave it up knowingly.
	wantNoErr(t, "Release by c", e.Store.Release(ctx, keyA, "c", 3))
	if r := get(t, e, keyA); r.PreviousOwner != "" {
		t.Errorf("Get after Release = %+v, want no previous owner", r)
	}
	d := mustClaimed(t, e, keyA, fpA, "d", longLease, 4)
	if d.TookOver || d.PreviousOwner != "" {
		t.Errorf("Claim by d of a released key = %+v, want no takeover", d)
	}
	wantNoErr(t, "Complete by d", e.Store.Complete(ctx, keyA, "d", 4, []byte("ok"), retention))
	if got := claim(t, e, keyA, fpA, "e", longLease); got.State != dedupe.Done || got.TookOver || got.PreviousOwner != "" {
		t.Errorf("Claim after completion = %+v, want Done without takeover", got)
	}
}

func testRunTwice(t *testing.T, e Env) {
	// go-redis retries a command (and auto-pipelining a whole batch) when the connection drops after the
	// script ran but before its reply arrived, so every operation may run twice with the same arguments:
	// the second run must give the same answer and change nothing the first did not.
	ctx := ctxFor(t)
	first := mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	second := mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	second.LeaseExpires = first.LeaseExpires // a repeated Claim may only extend the lease
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("Claim twice (-first +second):\n%s", diff)
	}
	for i := range 2 {
		wantNoErr(t, fmt.Sprintf("Renew #%d", i+1), e.Store.Renew(ctx, keyA, "a", 1, longLease))
	}
	for i := range 2 {
		wantNoErr(t, fmt.Sprintf("Release #%d", i+1), e.Store.Release(ctx, keyA, "a", 1))
	}
	mustClaimed(t, e, keyA, fpA, "b", shortLease, 2)
	mustClaimed(t, e, keyA, fpA, "b", shortLease, 2)
	e.Advance(expire)
	for i := range 2 {
		c := mustClaimed(t, e, keyA, fpA, "c", longLease, 3)
		if !c.TookOver || c.PreviousOwner != "b" {
			t.Errorf("takeover Claim #%d = %+v, want TookOver from b", i+1, c)
		}
	}
	for i := range 2 {
		wantNoErr(t, fmt.Sprintf("Complete #%d", i+1), e.Store.Complete(ctx, keyA, "c", 3, []byte("ok"), retention))
	}
	want := dedupe.Record{State: dedupe.Done, Owner: "c", Token: 3, Fingerprint: fpA, Outcome: []byte("ok")}
	if diff := cmp.Diff(want, get(t, e, keyA)); diff != "" {
		t.Errorf("record after every operation twice (-want +got):\n%s", diff)
	}
}

func testReleaseNoted(t *testing.T, e Env) {
	// A release may leave a note: the next claim gets it, also when that claim is repeated (its reply
	// lost), and the record shows it; the claim after a plain release gets none.
	ctx := ctxFor(t)
	note := []byte("ambiguous orders.icbu-trade/2/41")
	mustClaimed(t, e, keyA, fpA, "a", longLease, 1)
	for i := range 2 { // releasing again changes nothing
		wantNoErr(t, fmt.Sprintf("ReleaseNoted #%d", i+1), e.Store.ReleaseNoted(ctx, keyA, "a", 1, note))
	}
	if diff := cmp.Diff(dedupe.Record{State: dedupe.Released, Owner: "a", Token: 1, Fingerprint: fpA, Note: note}, get(t, e, keyA)); diff != "" {
		t.Errorf("released record (-want +got):\n%s", diff)
	}
	for i := range 2 {
		c := mustClaimed(t, e, keyA, fpA, "b", longLease, 2)
		if !bytes.Equal(c.Note, note) || c.TookOver {
			t.Errorf("Claim #%d after a noted release = %+v, want note %q and no takeover", i+1, c, note)
		}
	}
	if r := get(t, e, keyA); !bytes.Equal(r.Note, note) || r.PreviousOwner != "" {
		t.Errorf("claimed record %+v, want it to keep the note", r)
	}
	wantNoErr(t, "Release", e.Store.Release(ctx, keyA, "b", 2))
	if c := mustClaimed(t, e, keyA, fpA, "c", longLease, 3); c.Note != nil {
		t.Errorf("Claim after a plain release = %+v, want no note", c)
	}
	wantNoErr(t, "Complete", e.Store.Complete(ctx, keyA, "c", 3, []byte("ok"), retention))
	if r := get(t, e, keyA); r.Note != nil || r.State != dedupe.Done {
		t.Errorf("completed record %+v, want done without a note", r)
	}
}

func testCanceled(t *testing.T, e Env) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, err := e.Store.Claim(ctx, keyA, fpA, "a", longLease)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Claim with canceled context: error %v, want context.Canceled", err)
	}
	if c.State == dedupe.Claimed {
		t.Errorf("Claim with canceled context returned Claimed")
	}
	if _, err := e.Store.Get(ctx, keyA); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with canceled context: error %v, want context.Canceled", err)
	}
	if _, err := e.Store.Get(ctxFor(t), keyA); !errors.Is(err, dedupe.ErrNotFound) {
		t.Errorf("Get: error %v, want ErrNotFound (nothing claimed)", err)
	}
}

func testInvalid(t *testing.T, e Env) {
	s := e.Store
	cases := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"claim empty channel", func(ctx context.Context) error {
			_, err := s.Claim(ctx, dedupe.Key{ID: "k"}, fpA, "a", longLease)
			return err
		}},
		{"claim channel with colon", func(ctx context.Context) error {
			_, err := s.Claim(ctx, dedupe.Key{Channel: "omni:saas", ID: "k"}, fpA, "a", longLease)
			return err
		}},
		{"claim empty id", func(ctx context.Context) error {
			_, err := s.Claim(ctx, dedupe.Key{Channel: "omni-saas"}, fpA, "a", longLease)
			return err
		}},
		{"claim empty fingerprint", func(ctx context.Context) error {
			_, err := s.Claim(ctx, keyA, "", "a", longLease)
			return err
		}},
		{"claim empty owner", func(ctx context.Context) error {
			_, err := s.Claim(ctx, keyA, fpA, "", longLease)
			return err
		}},
		{"claim owner starting with a newline", func(ctx context.Context) error {
			_, err := s.Claim(ctx, keyA, fpA, "\nnote", longLease)
			return err
		}},
		{"claim zero lease", func(ctx context.Context) error {
			_, err := s.Claim(ctx, keyA, fpA, "a", 0)
			return err
		}},
		{"claim negative lease", func(ctx context.Context) error {
			_, err := s.Claim(ctx, keyA, fpA, "a", -time.Second)
			return err
		}},
		{"renew zero token", func(ctx context.Context) error { return s.Renew(ctx, keyA, "a", 0, longLease) }},
		{"renew empty owner", func(ctx context.Context) error { return s.Renew(ctx, keyA, "", 1, longLease) }},
		{"renew zero lease", func(ctx context.Context) error { return s.Renew(ctx, keyA, "a", 1, 0) }},
		{"complete negative token", func(ctx context.Context) error {
			return s.Complete(ctx, keyA, "a", -1, nil, retention)
		}},
		{"complete negative retention", func(ctx context.Context) error {
			return s.Complete(ctx, keyA, "a", 1, nil, -time.Second)
		}},
		{"complete empty id", func(ctx context.Context) error {
			return s.Complete(ctx, dedupe.Key{Channel: "omni-saas"}, "a", 1, nil, retention)
		}},
		{"release empty owner", func(ctx context.Context) error { return s.Release(ctx, keyA, "", 1) }},
		{"get empty channel", func(ctx context.Context) error {
			_, err := s.Get(ctx, dedupe.Key{ID: "k"})
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(ctxFor(t)); !errors.Is(err, dedupe.ErrInvalid) {
				t.Errorf("error %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := s.Get(ctxFor(t), keyA); !errors.Is(err, dedupe.ErrNotFound) {
		t.Errorf("Get after invalid calls: error %v, want ErrNotFound (nothing written)", err)
	}
}
