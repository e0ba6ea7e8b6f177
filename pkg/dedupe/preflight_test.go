package dedupe_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/pkg/dedupe"
)

func preflightCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantRefusal checks that err is a *dedupe.PreflightError of check whose message contains every part.
func wantRefusal(t *testing.T, err error, check dedupe.Check, parts ...string) {
	t.Helper()
	var pe *dedupe.PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("Preflight: %v, want a *dedupe.PreflightError (%s)", err, check)
	}
	if pe.Check != check {
		t.Errorf("Preflight refused on check %q (%v), want %q", pe.Check, err, check)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("Preflight error %q does not contain %q", err, p)
		}
	}
}

func TestPreflightAccepts(t *testing.T) {
	for name, rdb := range map[string]redis.UniversalClient{
		"single node": redistest.Start(t).Client(),
		"cluster":     redistest.StartCluster(t, 3).Client(),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := dedupe.New(rdb, dedupe.Config{Prefix: "pf:"})
			if err != nil {
				t.Fatal(err)
			}
			ctx := preflightCtx(t)
			for i := range 2 { // twice: a restart runs it again on the same Redis
				if err := s.Preflight(ctx, dedupe.PreflightOptions{}); err != nil {
					t.Fatalf("Preflight #%d: %v", i+1, err)
				}
			}
			// The probe keys are released tombstones under the prefix that expire within a minute.
			var (
				mu   sync.Mutex
				keys []string
			)
			scan := func(ctx context.Context, c *redis.Client) error {
				ks, err := c.Keys(ctx, "pf:{"+dedupe.PreflightChannel+":*").Result()
				mu.Lock() // ForEachMaster runs scan on every master at once
				keys = append(keys, ks...)
				mu.Unlock()
				return err
			}
			if cc, ok := rdb.(*redis.ClusterClient); ok {
				err = cc.ForEachMaster(ctx, scan)
			} else {
				err = scan(ctx, rdb.(*redis.Client))
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 2 {
				t.Fatalf("probe keys %q, want 2", keys)
			}
			for _, k := range keys {
				ttl, err := rdb.PTTL(ctx, k).Result()
				if err != nil || ttl <= 0 || ttl > time.Minute {
					t.Errorf("PTTL %s = %v, %v; want within (0, 1m]", k, ttl, err)
				}
				v, err := rdb.Get(ctx, k).Result()
				if err != nil || !strings.HasPrefix(v, "r1 0 ") {
					t.Errorf("probe key %s = %q, %v; want a released record with token 1", k, v, err)
				}
			}
		})
	}
}

func TestPreflightEviction(t *testing.T) {
	for _, policy := range []string{"allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"} {
		t.Run(policy, func(t *testing.T) {
			srv := redistest.StartArgs(t, "--maxmemory-policy", policy)
			s, err := dedupe.New(srv.Client(), dedupe.Config{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := preflightCtx(t)
			wantRefusal(t, s.Preflight(ctx, dedupe.PreflightOptions{}), dedupe.CheckEviction,
				"redis "+srv.Addr()+": maxmemory-policy is "+policy, "set maxmemory-policy noeviction", "accept the risk explicitly")
			if err := s.Preflight(ctx, dedupe.PreflightOptions{AllowEviction: true}); err != nil {
				t.Errorf("Preflight with AllowEviction: %v", err)
			}
		})
	}
}

// A master without AOF persistence is accepted with a warning naming it; one with AOF is not warned about.
func TestPreflightWarnsWithoutAOF(t *testing.T) {
	t.Run("cluster", func(t *testing.T) { // its masters are checked at once: one warning each
		s, err := dedupe.New(redistest.StartCluster(t, 3).Client(), dedupe.Config{})
		if err != nil {
			t.Fatal(err)
		}
		warned := map[string]int{}
		warn := func(addr, _ string) { warned[addr]++ }
		if err := s.Preflight(preflightCtx(t), dedupe.PreflightOptions{Warn: warn}); err != nil {
			t.Fatalf("Preflight: %v", err)
		}
		if len(warned) != 3 {
			t.Errorf("warned about %v, want each of the 3 masters once", warned)
		}
		for addr, n := range warned {
			if n != 1 {
				t.Errorf("warned %d times about %s, want once", n, addr)
			}
		}
	})
	for _, tt := range []struct {
		appendonly string
		warned     bool
	}{
		{appendonly: "no", warned: true},
		{appendonly: "yes", warned: false},
	} {
		t.Run("appendonly "+tt.appendonly, func(t *testing.T) {
			srv := redistest.StartArgs(t, "--appendonly", tt.appendonly)
			s, err := dedupe.New(srv.Client(), dedupe.Config{})
			if err != nil {
				t.Fatal(err)
			}
			var warnings []string
			warn := func(addr, msg string) { warnings = append(warnings, addr+": "+msg) }
			if err := s.Preflight(preflightCtx(t), dedupe.PreflightOptions{Warn: warn}); err != nil {
				t.Fatalf("Preflight: %v", err)
			}
			if !tt.warned {
				if len(warnings) != 0 {
					t.Errorf("warnings %q, want none", warnings)
				}
				return
			}
			if len(warnings) != 1 || !strings.HasPrefix(warnings[0], srv.Addr()+": ") || !strings.Contains(warnings[0], "set appendonly yes") {
				t.Errorf("warnings %q, want one for %s naming appendonly", warnings, srv.Addr())
			}
		})
	}
}

// A Redis ACL user that lacks something the store needs is refused at start-up, with the missing command or
// key pattern named, instead of failing every event later.
func TestPreflightPermissions(t *testing.T) {
	const pass = "pw"
	users := []struct {
		name  string
		rules []string
		parts []string // what the message must say
	}{
		{"ok", []string{"~app:*", "+@all"}, nil},
		{"minimal", []string{"~app:*", "-@all", "+ping", "+info", "+script|load", "+eval", "+evalsha", "+get", "+set", "+time"}, nil},
		{"noevalsha", []string{"~app:*", "+@all", "-evalsha"}, []string{"may not run EVALSHA", "'evalsha'", "ACL SETUSER <user> +ping +info +script|load +eval +evalsha +get +set +time ~app:*"}},
		{"noeval", []string{"~app:*", "+@all", "-eval"}, []string{"may not run EVAL", "'eval'"}},
		{"noscript", []string{"~app:*", "+@all", "-script"}, []string{"may not run SCRIPT LOAD", "'script|load'"}},
		{"notime", []string{"~app:*", "+@all", "-time"}, []string{"may not run TIME, which the dedupe scripts call", "'time'"}},
		{"noget", []string{"~app:*", "+@all", "-get"}, []string{"may not run GET, which the dedupe scripts call", "'get'"}},
		{"noset", []string{"~app:*", "+@all", "-set"}, []string{"may not run SET, which the dedupe scripts call", "'set'"}},
		{"noinfo", []string{"~app:*", "+@all", "-info"}, []string{"may not run INFO, which the start-up checks read", "'info'"}},
		{"otherkeys", []string{"~other:*", "+@all"}, []string{"may not access the dedupe keys", "~app:*"}},
		{"readonlykeys", []string{"%R~app:*", "+@all"}, []string{"may not access the dedupe keys"}},
	}
	var args []string
	for _, u := range users {
		args = append(append(args, "--user", u.name, "on", ">"+pass), u.rules...)
	}
	srv := redistest.StartArgs(t, args...)
	for _, u := range users {
		t.Run(u.name, func(t *testing.T) {
			s, err := dedupe.New(srv.ClientAs(u.name, pass), dedupe.Config{Prefix: "app:"})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Preflight(preflightCtx(t), dedupe.PreflightOptions{})
			if u.parts == nil {
				if err != nil {
					t.Fatalf("Preflight: %v", err)
				}
				return
			}
			wantRefusal(t, err, dedupe.CheckPermission, u.parts...)
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		s, err := dedupe.New(srv.ClientAs("ok", "not-the-password"), dedupe.Config{Prefix: "app:"})
		if err != nil {
			t.Fatal(err)
		}
		wantRefusal(t, s.Preflight(preflightCtx(t), dedupe.PreflightOptions{}), dedupe.CheckPermission,
			"authentication failed", "WRONGPASS", "check the Redis user name and password")
	})
}

func TestPreflightClusterThroughSingleNodeClient(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	addr := c.Addrs()[0]
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := dedupe.New(rdb, dedupe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, s.Preflight(preflightCtx(t), dedupe.PreflightOptions{}), dedupe.CheckCluster,
		"redis "+addr+": this is a Redis Cluster node", "MOVED", "cluster client")
}

// An unreachable Redis is not a refusal: it may come back, and the caller may retry.
func TestPreflightUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, DialerRetries: 1, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := dedupe.New(rdb, dedupe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Preflight(preflightCtx(t), dedupe.PreflightOptions{})
	var pe *dedupe.PreflightError
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("Preflight on a closed port: %v, want a plain (retryable) error", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("Preflight error %q does not name %s", err, addr)
	}
}
