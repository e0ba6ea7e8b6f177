package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dedupe/dedupetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// prefixes hands every case on a shared server its own key space.
var prefixes atomic.Int64

func newStore(t *testing.T, rdb redis.UniversalClient) *dedupe.Store {
	t.Helper()
	return newStoreWith(t, rdb, dedupe.Config{})
}

// newStoreWith is newStore with cfg (its prefix is set to a fresh one).
func newStoreWith(t *testing.T, rdb redis.UniversalClient, cfg dedupe.Config) *dedupe.Store {
	t.Helper()
	cfg.Prefix = fmt.Sprintf("test%d:", prefixes.Add(1))
	s, err := dedupe.New(rdb, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// wait is Advance for a real server: its clock moves by itself.
func wait(d time.Duration) { time.Sleep(d) }

func TestStoreRedis(t *testing.T) {
	rdb := redistest.Start(t).Client()
	dedupetest.Run(t, func(t *testing.T) dedupetest.Env {
		return dedupetest.Env{Store: newStore(t, rdb), Client: rdb, Advance: wait}
	})
}

// The same contract with the commands of concurrent callers pipelined together.
func TestStoreRedisAutoPipeline(t *testing.T) {
	rdb := redistest.Start(t).Client()
	dedupetest.Run(t, func(t *testing.T) dedupetest.Env {
		return dedupetest.Env{Store: newStoreWith(t, rdb, dedupe.Config{AutoPipeline: true}), Client: rdb, Advance: wait}
	})
}

func TestStoreCluster(t *testing.T) {
	rdb := redistest.StartCluster(t, 3).Client()
	dedupetest.Run(t, func(t *testing.T) dedupetest.Env {
		return dedupetest.Env{Store: newStore(t, rdb), Client: rdb, Advance: wait}
	})

	t.Run("KeysSpreadOverSlots", func(t *testing.T) {
		// Each key's hash tag is its own {channel:id}, so keys spread over the cluster while every script
		// still touches a single slot.
		s := newStore(t, rdb)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		masters := map[string]int{}
		for _, ch := range []string{"omni-saas", "icbu-trade", "tmall-aliauto", "mos-haiding"} {
			for i := range 8 {
				k := dedupe.Key{Channel: ch, ID: fmt.Sprintf("REQ-%d", i)}
				if _, err := s.Claim(ctx, k, "fp", "a", time.Minute); err != nil {
					t.Fatalf("Claim(%s): %v", k, err)
				}
				node, err := rdb.MasterForKey(ctx, s.RedisKey(k))
				if err != nil {
					t.Fatalf("MasterForKey(%s): %v", s.RedisKey(k), err)
				}
				masters[node.Options().Addr]++
			}
		}
		if len(masters) != 3 {
			t.Errorf("32 keys landed on masters %v, want all 3", masters)
		}
	})
}

func TestStoreClusterAutoPipeline(t *testing.T) {
	rdb := redistest.StartCluster(t, 3).Client()
	dedupetest.Run(t, func(t *testing.T) dedupetest.Env {
		return dedupetest.Env{Store: newStoreWith(t, rdb, dedupe.Config{AutoPipeline: true}), Client: rdb, Advance: wait}
	})
}

func TestStoreMiniredis(t *testing.T) {
	dedupetest.Run(t, func(t *testing.T) dedupetest.Env {
		m := miniredis.NewMiniRedis()
		var mu sync.Mutex
		now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
		m.SetTime(now)   // TIME inside the scripts follows this clock ...
		m.ClockTTL(true) // ... and so do TTLs
		if err := m.Start(); err != nil {
			t.Fatalf("miniredis: %v", err)
		}
		t.Cleanup(m.Close)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = rdb.Close() })
		advance := func(d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(d)
			m.SetTime(now)
		}
		return dedupetest.Env{Store: newStore(t, rdb), Client: rdb, Advance: advance}
	})
}

// TestRedisOutage checks that the store fails closed while Redis is down and recovers once it is back.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	// Fewer dial retries than the defaults keep the outage short; the semantics do not depend on them.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, DialerRetries: 2, MaxRetries: 1})
	t.Cleanup(func() { _ = rdb.Close() })
	s := newStore(t, rdb)
	k1 := dedupe.Key{Channel: "omni-saas", ID: "before"}
	k2 := dedupe.Key{Channel: "omni-saas", ID: "during"}
	ctx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	c1, err := s.Claim(ctx(t), k1, "fp", "a", time.Minute)
	if err != nil || c1.State != dedupe.Claimed {
		t.Fatalf("Claim before outage = %+v, %v; want Claimed", c1, err)
	}

	srv.Stop()
	c, err := s.Claim(ctx(t), k2, "fp", "a", time.Minute)
	if err == nil || c.State == dedupe.Claimed {
		t.Errorf("Claim while Redis is down = %+v, %v; want an error and no claim", c, err)
	}
	if errors.Is(err, dedupe.ErrCorrupt) {
		t.Errorf("Claim while Redis is down: error %v matches ErrCorrupt; want a transient error", err)
	}
	_, getErr := s.Get(ctx(t), k1)
	for name, err := range map[string]error{
		"Renew":    s.Renew(ctx(t), k1, "a", c1.Token, time.Minute),
		"Complete": s.Complete(ctx(t), k1, "a", c1.Token, []byte("ok"), time.Hour),
		"Release":  s.Release(ctx(t), k1, "a", c1.Token),
		"Get":      getErr,
	} {
		if err == nil || errors.Is(err, dedupe.ErrLeaseLost) || errors.Is(err, dedupe.ErrNotFound) || errors.Is(err, dedupe.ErrCorrupt) {
			t.Errorf("%s while Redis is down: error %v, want a connection error", name, err)
		}
	}

	srv.Restart() // empty: this test server keeps nothing on disk
	// The client's dial circuit breaker may still be open for up to a second: callers retry, as the worker
	// does while Redis is unreachable. No attempt may report a claim together with an error.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err = s.Claim(ctx(t), k2, "fp", "a", time.Minute)
		if err == nil {
			break
		}
		if c.State == dedupe.Claimed {
			t.Fatalf("Claim while reconnecting = %+v with error %v", c, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Claim still failing 10s after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c.State != dedupe.Claimed || c.Token != 1 {
		t.Fatalf("Claim after restart = %+v, want Claimed with token 1", c)
	}
	if err := s.Complete(ctx(t), k2, "a", c.Token, []byte("ok"), time.Hour); err != nil {
		t.Fatalf("Complete after restart: %v", err)
	}
	if c, err := s.Claim(ctx(t), k2, "fp", "b", time.Minute); err != nil || c.State != dedupe.Done {
		t.Errorf("Claim of completed key after restart = %+v, %v; want Done", c, err)
	}
}

// replyHook replaces the reply of every script call with reply, as a Redis that is not ours (or a proxy
// mangling replies) might answer.
type replyHook struct{ reply any }

func (replyHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h replyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if c, ok := cmd.(*redis.Cmd); ok && err == nil && (cmd.Name() == "evalsha" || cmd.Name() == "eval") {
			c.SetVal(h.reply)
		}
		return err
	}
}
func (replyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestUnexpectedReplyIsCorrupt(t *testing.T) {
	srv := redistest.Start(t)
	for _, reply := range []any{"OK", int64(7), []any{int64(1)}, nil} {
		t.Run(fmt.Sprintf("%#v", reply), func(t *testing.T) {
			rdb := srv.Client()
			rdb.AddHook(replyHook{reply})
			s := newStore(t, rdb)
			ctx := context.Background()
			k := dedupe.Key{Channel: "omni-saas", ID: "odd-reply"}
			_, claimErr := s.Claim(ctx, k, "fp", "a", time.Minute)
			for name, err := range map[string]error{
				"Claim":    claimErr,
				"Renew":    s.Renew(ctx, k, "a", 1, time.Minute),
				"Complete": s.Complete(ctx, k, "a", 1, []byte("x"), time.Hour),
				"Release":  s.Release(ctx, k, "a", 1),
			} {
				if !errors.Is(err, dedupe.ErrCorrupt) || !strings.Contains(err.Error(), s.RedisKey(k)) {
					t.Errorf("%s with reply %#v: error %v, want ErrCorrupt naming %s", name, reply, err, s.RedisKey(k))
				}
			}
		})
	}
}

func TestNew(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = rdb.Close() })
	tests := []struct {
		name    string
		rdb     redis.UniversalClient
		cfg     dedupe.Config
		wantErr bool
		wantKey string
	}{
		{name: "defaults", rdb: rdb, wantKey: "ordersync:dedupe:{omni-saas:REQ-1}"},
		{name: "custom prefix", rdb: rdb, cfg: dedupe.Config{Prefix: "x:"}, wantKey: "x:{omni-saas:REQ-1}"},
		{name: "claim retention", rdb: rdb, cfg: dedupe.Config{ClaimRetention: time.Hour}, wantKey: "ordersync:dedupe:{omni-saas:REQ-1}"},
		{name: "nil client", wantErr: true},
		{name: "prefix with hash tag", rdb: rdb, cfg: dedupe.Config{Prefix: "{x}:"}, wantErr: true},
		{name: "prefix with brace", rdb: rdb, cfg: dedupe.Config{Prefix: "x}"}, wantErr: true},
		{name: "negative claim retention", rdb: rdb, cfg: dedupe.Config{ClaimRetention: -time.Second}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := dedupe.New(tt.rdb, tt.cfg)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("New error = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := s.RedisKey(dedupe.Key{Channel: "omni-saas", ID: "REQ-1"}); got != tt.wantKey {
				t.Errorf("RedisKey = %q, want %q", got, tt.wantKey)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	tests := []struct {
		s    dedupe.State
		want string
	}{
		{dedupe.Claimed, "claimed"},
		{dedupe.InProgress, "in_progress"},
		{dedupe.Done, "done"},
		{dedupe.Conflict, "conflict"},
		{dedupe.Released, "released"},
		{0, "state(0)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("State(%d).String() = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestLoadScripts(t *testing.T) {
	ctx := context.Background()
	for name, rdb := range map[string]redis.UniversalClient{
		"single node": redistest.Start(t).Client(),
		"cluster":     redistest.StartCluster(t, 3).Client(),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := dedupe.New(rdb, dedupe.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.LoadScripts(ctx); err != nil {
				t.Fatal(err)
			}
			// Every master of a fresh server now caches the four scripts.
			check := func(ctx context.Context, c *redis.Client) error {
				info, err := c.Info(ctx, "memory").Result()
				if err != nil {
					return err
				}
				if !strings.Contains(info, "number_of_cached_scripts:4") {
					return fmt.Errorf("%s: want 4 cached scripts in INFO memory", c.Options().Addr)
				}
				return nil
			}
			switch c := rdb.(type) {
			case *redis.ClusterClient:
				if err := c.ForEachMaster(ctx, check); err != nil {
					t.Fatal(err)
				}
			case *redis.Client:
				if err := check(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
