package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/pkg/dedupe"
	"github.com/ordersync/ordersync/pkg/dispatch"
)

func redisConfig(addrs ...string) config.Redis {
	c := config.Default().Redis
	c.Addrs = addrs
	c.DialTimeout = time.Second
	return c
}

func mustNewRedis(t *testing.T, c config.Redis) redis.UniversalClient {
	t.Helper()
	rdb, err := newRedis(c)
	if err != nil {
		t.Fatalf("newRedis: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func redisCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewRedisClientKind(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *config.Redis)
		want   string
	}{
		{"one address: a node or a Cluster's endpoint", func(c *config.Redis) {}, "*redis.ClusterClient"},
		{"one address with a database: a single node", func(c *config.Redis) { c.DB = 2 }, "*redis.Client"},
		{"several addresses: a Cluster", func(c *config.Redis) { c.Addrs = []string{"a:6379", "b:6379"} }, "*redis.ClusterClient"},
		{"Sentinels", func(c *config.Redis) {
			c.Addrs, c.MasterName = []string{"s1:26379", "s2:26379"}, "mymaster"
		}, "*redis.Client"},
		{"one Sentinel", func(c *config.Redis) { c.MasterName = "mymaster" }, "*redis.Client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := redisConfig("127.0.0.1:1") // never dialled
			tt.change(&c)
			if got := fmt.Sprintf("%T", mustNewRedis(t, c)); got != tt.want {
				t.Errorf("newRedis(%+v) is a %s, want %s", c, got, tt.want)
			}
		})
	}
}

// claimSpread claims n keys over several channels, each on its own slot, and fails the test on any error.
func claimSpread(t *testing.T, store *dedupe.Store, n int) []dedupe.Key {
	t.Helper()
	ctx := redisCtx(t)
	var keys []dedupe.Key
	for i := range n {
		k := dedupe.Key{Channel: dispatch.ChannelIDs()[i%len(dispatch.ChannelIDs())], ID: fmt.Sprintf("REQ-%d", i)}
		c, err := store.Claim(ctx, k, "fp", "owner", time.Minute)
		if err != nil {
			t.Fatalf("Claim(%s): %v", k, err)
		}
		if c.State != dedupe.Claimed {
			t.Fatalf("Claim(%s) = %+v, want Claimed", k, c)
		}
		keys = append(keys, k)
	}
	return keys
}

// Issue 11: a Redis Cluster reached through a single address (a managed service's configuration endpoint)
// answered MOVED at run time for every key whose slot another node held.
func TestNewRedisClusterBehindOneAddress(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	for i, addr := range cluster.Addrs() {
		t.Run(fmt.Sprintf("seed node %d", i), func(t *testing.T) {
			c := redisConfig(addr)
			c.KeyPrefix = fmt.Sprintf("seed%d:", i)
			rdb := mustNewRedis(t, c)
			store, err := dedupe.New(rdb, dedupe.Config{Prefix: c.KeyPrefix})
			if err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.DiscardHandler)
			if err := redisPreflight(redisCtx(t), store, c, log); err != nil {
				t.Fatalf("redisPreflight: %v", err)
			}
			keys := claimSpread(t, store, 40)

			// The keys are where the Cluster says, on all three masters.
			ctx := redisCtx(t)
			admin := cluster.Client()
			masters := map[string]int{}
			for _, k := range keys {
				node, err := admin.MasterForKey(ctx, store.RedisKey(k))
				if err != nil {
					t.Fatal(err)
				}
				n, err := node.Exists(ctx, store.RedisKey(k)).Result()
				if err != nil || n != 1 {
					t.Fatalf("%s on its master %s: EXISTS = %d, %v; want 1", store.RedisKey(k), node.Options().Addr, n, err)
				}
				masters[node.Options().Addr]++
			}
			if len(masters) != 3 {
				t.Errorf("40 keys landed on masters %v, want all 3", masters)
			}
		})
	}
}

func TestNewRedisSingleNode(t *testing.T) {
	srv := redistest.Start(t)
	c := redisConfig(srv.Addr())
	rdb := mustNewRedis(t, c)
	store, err := dedupe.New(rdb, dedupe.Config{Prefix: c.KeyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := redisPreflight(redisCtx(t), store, c, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("redisPreflight: %v", err)
	}
	keys := claimSpread(t, store, 20)
	direct := srv.Client()
	for _, k := range keys {
		if n, err := direct.Exists(redisCtx(t), store.RedisKey(k)).Result(); err != nil || n != 1 {
			t.Errorf("EXISTS %s on the node = %d, %v; want 1", store.RedisKey(k), n, err)
		}
	}
	if err := rdb.Ping(redisCtx(t)).Err(); err != nil {
		t.Errorf("PING: %v", err)
	}
}

func TestNewRedisDatabase(t *testing.T) {
	srv := redistest.Start(t)
	c := redisConfig(srv.Addr())
	c.DB = 3
	store, err := dedupe.New(mustNewRedis(t, c), dedupe.Config{Prefix: c.KeyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	keys := claimSpread(t, store, 3)
	db3 := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 3})
	t.Cleanup(func() { _ = db3.Close() })
	if n, err := db3.Exists(redisCtx(t), store.RedisKey(keys[0])).Result(); err != nil || n != 1 {
		t.Errorf("EXISTS %s in db 3 = %d, %v; want 1", store.RedisKey(keys[0]), n, err)
	}
}

// A Redis user that may not run CLUSTER SLOTS still gets the right client for one address: INFO cluster
// tells a single node from a Cluster node, and a Cluster node that hides its slot map is an error naming
// the permission.
func TestNewRedisWithoutClusterPermission(t *testing.T) {
	t.Run("single node", func(t *testing.T) {
		srv := redistest.StartArgs(t,
			"--user", "nocluster", "on", ">pw", "~*", "+@all", "-cluster",
			"--user", "noclusterinfo", "on", ">pw", "~*", "+@all", "-cluster", "-info")
		for _, user := range []string{"nocluster", "noclusterinfo"} {
			t.Run(user, func(t *testing.T) {
				c := redisConfig(srv.Addr())
				c.Username, c.Password = user, "pw"
				store, err := dedupe.New(mustNewRedis(t, c), dedupe.Config{Prefix: c.KeyPrefix})
				if err != nil {
					t.Fatal(err)
				}
				claimSpread(t, store, 5)
			})
		}
	})
	t.Run("cluster node", func(t *testing.T) {
		cluster := redistest.StartCluster(t, 3)
		for _, n := range cluster.Nodes() {
			if err := n.Client().Do(redisCtx(t), "ACL", "SETUSER", "nocluster", "on", ">pw", "~*", "+@all", "-cluster").Err(); err != nil {
				t.Fatal(err)
			}
		}
		c := redisConfig(cluster.Addrs()[0])
		c.Username, c.Password = "nocluster", "pw"
		store, err := dedupe.New(mustNewRedis(t, c), dedupe.Config{Prefix: c.KeyPrefix})
		if err != nil {
			t.Fatal(err)
		}
		_, err = store.Claim(redisCtx(t), dedupe.Key{Channel: "omni-saas", ID: "REQ-1"}, "fp", "a", time.Minute)
		if err == nil || !strings.Contains(err.Error(), "is a Redis Cluster node, and a cluster client needs CLUSTER SLOTS") ||
			!strings.Contains(err.Error(), "+cluster|slots") {
			t.Errorf("Claim through a Cluster node hiding its slot map: %v, want an error naming +cluster|slots", err)
		}
	})
}

// Whether the one address is a Cluster node is asked when the client first needs it, so a Redis that is
// down when the worker starts is served correctly once it is up.
func TestNewRedisSeedDownAtStart(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	c := redisConfig(srv.Addr())
	c.DialTimeout = 200 * time.Millisecond
	store, err := dedupe.New(mustNewRedis(t, c), dedupe.Config{Prefix: c.KeyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	k := dedupe.Key{Channel: "omni-saas", ID: "REQ-1"}
	ctx := redisCtx(t)
	if got, err := store.Claim(ctx, k, "fp", "a", time.Minute); err == nil || got.State == dedupe.Claimed {
		t.Fatalf("Claim while Redis is down = %+v, %v; want an error and no claim", got, err)
	}
	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := store.Claim(ctx, k, "fp", "a", time.Minute)
		if err == nil {
			if got.State != dedupe.Claimed || got.Token != 1 {
				t.Fatalf("Claim after Redis came up = %+v, want Claimed with token 1", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Claim still failing 15s after Redis came up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisPreflightEviction(t *testing.T) {
	srv := redistest.StartArgs(t, "--maxmemory-policy", "volatile-lru")
	c := redisConfig(srv.Addr())
	store, err := dedupe.New(mustNewRedis(t, c), dedupe.Config{Prefix: c.KeyPrefix})
	if err != nil {
		t.Fatal(err)
	}

	err = redisPreflight(redisCtx(t), store, c, slog.New(slog.DiscardHandler))
	var refused *dedupe.PreflightError
	if !errors.As(err, &refused) || refused.Check != dedupe.CheckEviction {
		t.Fatalf("redisPreflight with volatile-lru: %v, want an eviction refusal", err)
	}
	for _, want := range []string{"maxmemory-policy is volatile-lru", "set maxmemory-policy noeviction",
		"accept the risk explicitly with redis.allow_eviction: true (ORDERSYNC_REDIS_ALLOW_EVICTION=true)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	c.AllowEviction = true
	var logs syncBuffer
	if err := redisPreflight(redisCtx(t), store, c, slog.New(slog.NewJSONHandler(&logs, nil))); err != nil {
		t.Fatalf("redisPreflight with redis.allow_eviction: %v", err)
	}
	if got := logs.String(); !strings.Contains(got, `"level":"WARN"`) || !strings.Contains(got, "allowed by redis.allow_eviction") ||
		!strings.Contains(got, "volatile-lru") {
		t.Errorf("log %q, want a warning naming the policy and redis.allow_eviction", got)
	}
	// The test server keeps nothing on disk: one warning says so, naming the server (by the address the
	// cluster client seeded with one loopback address knows it by, ":port").
	_, port, _ := net.SplitHostPort(srv.Addr())
	if got := logs.String(); strings.Count(got, "without AOF persistence") != 1 || !strings.Contains(got, `:`+port+`"`) {
		t.Errorf("log %q, want one warning about the missing AOF persistence naming port %s", got, port)
	}
}

func TestRedisPreflightPermission(t *testing.T) {
	srv := redistest.StartArgs(t, "--user", "ordersync", "on", ">pw", "~ordersync:dedupe:*", "+@all", "-evalsha")
	c := redisConfig(srv.Addr())
	c.Username, c.Password = "ordersync", "pw"
	store, err := dedupe.New(mustNewRedis(t, c), dedupe.Config{Prefix: c.KeyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	err = redisPreflight(redisCtx(t), store, c, slog.New(slog.DiscardHandler))
	for _, want := range []string{"may not run EVALSHA", `(redis.username "ordersync")`, "+evalsha"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("redisPreflight: %v, want an error containing %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "pw") {
		t.Errorf("error %q shows the password", err)
	}
}

// A Redis that is not up yet at start is waited for; a refusal is not.
func TestRedisPreflightWaitsForRedis(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	c := redisConfig(srv.Addr())
	c.DialTimeout = 200 * time.Millisecond
	store, err := dedupe.New(mustNewRedis(t, c), dedupe.Config{Prefix: c.KeyPrefix})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ctx ends first", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := redisPreflight(ctx, store, c, slog.New(slog.DiscardHandler))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last error") {
			t.Errorf("redisPreflight until ctx ends: %v, want the deadline and the last error", err)
		}
	})

	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- redisPreflight(redisCtx(t), store, c, slog.New(slog.NewJSONHandler(&logs, nil))) }()
	for !strings.Contains(logs.String(), "retrying") {
		select {
		case err := <-done:
			t.Fatalf("redisPreflight returned %v while Redis was down, want it to wait", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	srv.Restart()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("redisPreflight after Redis came up: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("redisPreflight still waiting 25s after Redis came up")
	}
}

func TestResolveSlots(t *testing.T) {
	slots := func(addrs ...string) []redis.ClusterSlot {
		var out []redis.ClusterSlot
		for i, a := range addrs {
			out = append(out, redis.ClusterSlot{Start: i * 100, End: i*100 + 99, Nodes: []redis.ClusterNode{{ID: fmt.Sprint(i), Addr: a}}})
		}
		return out
	}
	tests := []struct {
		name string
		seed string
		in   []string
		want []string
	}{
		{"announced addresses stay", "10.0.0.1:6379", []string{"10.0.0.1:6379", "10.0.0.2:6380"}, []string{"10.0.0.1:6379", "10.0.0.2:6380"}},
		{"hostnames stay", "cfg.example.com:6379", []string{"node-1.example.com:6379"}, []string{"node-1.example.com:6379"}},
		{"empty host is the seed's", "cfg.example.com:6379", []string{":6379", "10.0.0.2:6379"}, []string{"cfg.example.com:6379", "10.0.0.2:6379"}},
		{"loopback behind a remote seed", "10.0.0.1:7000", []string{"127.0.0.1:7001", "[::1]:7002"}, []string{"10.0.0.1:7001", "10.0.0.1:7002"}},
		{"loopback behind a loopback seed", "127.0.0.1:7000", []string{"127.0.0.1:7001"}, []string{"127.0.0.1:7001"}},
		{"port 0 is the seed's (TLS-only Cluster)", "cfg.example.com:6380", []string{"node-1.example.com:0"}, []string{"node-1.example.com:6380"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(slots(tt.want...), resolveSlots(slots(tt.in...), tt.seed)); diff != "" {
				t.Errorf("resolveSlots (-want +got):\n%s", diff)
			}
		})
	}
}
