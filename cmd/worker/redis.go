package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/pkg/dedupe"
)

// newRedis builds the Redis client for c. It makes no Redis calls.
//
//   - With master_name, the addresses are Sentinels: a failover client to that master.
//   - Several addresses are a Redis Cluster: the cluster client, seeded with them.
//   - One address with db 0 is a single node or one node of a Redis Cluster (a managed service's
//     configuration endpoint is one address): it gets a cluster client whose slot map comes from
//     seedSlots, which asks that node each time the client loads the map (at the first command, on MOVED,
//     every minute). A Cluster node hands over the Cluster's map, so keys on other nodes are routed
//     there instead of failing with MOVED; a single node gets a map giving it every slot. The check is
//     lazy, so a Redis that is down at start-up is found out once it is up.
//   - One address with another db is a single node (a Cluster has database 0 only).
func newRedis(c config.Redis) (redis.UniversalClient, error) {
	opts := &redis.UniversalOptions{
		Addrs:                 c.Addrs,
		MasterName:            c.MasterName,
		Username:              c.Username,
		Password:              string(c.Password),
		DB:                    c.DB,
		DialTimeout:           c.DialTimeout,
		ContextTimeoutEnabled: true,
	}
	if c.TLS.Enabled {
		cfg, err := tlsConfig(c.TLS.CAFile, "", "", false)
		if err != nil {
			return nil, fmt.Errorf("redis.tls: %w", err)
		}
		opts.TLSConfig = cfg
	}
	if len(c.Addrs) != 1 || c.MasterName != "" || c.DB != 0 {
		return redis.NewUniversalClient(opts), nil
	}
	if opts.TLSConfig != nil && opts.TLSConfig.ServerName == "" {
		// go-redis builds a map from ClusterSlots with no origin and then replaces a loopback node
		// host with the origin's — the empty host — so TLS would have no name to verify. Verify
		// the seed's name: it is the one node of a single Redis, and the name a managed Cluster's
		// certificate (a wildcard over its nodes) covers.
		host, _, _ := net.SplitHostPort(c.Addrs[0])
		opts.TLSConfig.ServerName = host
	}
	copts := opts.Cluster()
	copts.ClusterSlots = seedSlots(&redis.Options{
		Addr:                  c.Addrs[0],
		Username:              opts.Username,
		Password:              opts.Password,
		DialTimeout:           opts.DialTimeout,
		TLSConfig:             opts.TLSConfig,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // the cluster client retries the command that needed the map
		PoolSize:              1,
		DisableIdentity:       true,
	})
	return redis.NewClusterClient(copts), nil
}

// lastSlot is the last Redis Cluster hash slot.
const lastSlot = 16383

// seedSlots returns the slot map source of a cluster client seeded with one address that may be a Cluster
// node or a single node (see newRedis). Each call opens one short-lived connection to the seed.
func seedSlots(seed *redis.Options) func(context.Context) ([]redis.ClusterSlot, error) {
	single := []redis.ClusterSlot{{Start: 0, End: lastSlot, Nodes: []redis.ClusterNode{{Addr: seed.Addr}}}}
	return func(ctx context.Context) ([]redis.ClusterSlot, error) {
		rdb := redis.NewClient(seed)
		defer rdb.Close()
		// CLUSTER SLOTS, as go-redis loads its own maps: CLUSTER SHARDS needs Redis 7, the store runs on 5.0.
		//lint:ignore SA1019 see above
		slots, err := rdb.ClusterSlots(ctx).Result()
		var rerr redis.Error
		switch {
		case err == nil:
			return resolveSlots(slots, seed.Addr), nil
		case !errors.As(err, &rerr):
			return nil, err // not reachable (yet): the next command tries again
		case strings.Contains(err.Error(), "cluster support disabled"):
			return single, nil
		}
		// CLUSTER SLOTS refused (an ACL user without +cluster|slots, a service that renamed CLUSTER):
		// INFO cluster tells. If that is refused too, the node is taken for a single node; the start-up
		// checks (redisPreflight) refuse a Redis whose INFO they cannot read.
		info, ierr := rdb.Info(ctx, "cluster").Result()
		switch {
		case ierr != nil && !errors.As(ierr, &rerr):
			return nil, ierr
		case ierr != nil, !strings.Contains(info, "cluster_enabled:1"):
			return single, nil
		}
		return nil, fmt.Errorf("redis %s is a Redis Cluster node, and a cluster client needs CLUSTER SLOTS: %w "+
			"(grant the Redis user +cluster|slots)", seed.Addr, err)
	}
}

// resolveSlots makes the node addresses of a CLUSTER SLOTS reply reachable from here, as go-redis does for
// the maps it loads itself: a node announced with an empty host (the node the reply came from, when Redis
// does not know its own endpoint) or a loopback one, while the seed is not on loopback (a Cluster inside
// a container network), gets the seed's host; a port 0 (a TLS-only Cluster) gets the seed's port.
func resolveSlots(slots []redis.ClusterSlot, seed string) []redis.ClusterSlot {
	seedHost, seedPort, err := net.SplitHostPort(seed)
	if err != nil {
		return slots
	}
	seedLoopback := isLoopbackHost(seedHost)
	for i := range slots {
		for j := range slots[i].Nodes {
			host, port, err := net.SplitHostPort(slots[i].Nodes[j].Addr)
			if err != nil {
				continue
			}
			if host == "" || (!seedLoopback && isLoopbackHost(host)) {
				host = seedHost
			}
			if port == "0" {
				port = seedPort
			}
			slots[i].Nodes[j].Addr = net.JoinHostPort(host, port)
		}
	}
	return slots
}

func isLoopbackHost(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return strings.EqualFold(host, "localhost")
}

// preflightAttempt bounds one attempt of the Redis start-up checks.
const preflightAttempt = 10 * time.Second

// redisPreflight runs the dedupe store's start-up checks (dedupe.Store.Preflight: Redis version,
// maxmemory-policy, cluster mode, and a permission probe of the scripts) before the worker takes events.
//
// A refusal (*dedupe.PreflightError) is returned at once, naming the configuration key that changes it
// where one does. maxmemory-policy other than noeviction is refused unless c.AllowEviction
// (redis.allow_eviction), which turns the refusal into a warning on log; a master without AOF
// persistence is warned about too. Any other error — Redis not reachable yet, still loading, a timeout —
// is logged and retried with a growing wait (up to 5s) until it passes or ctx ends; then ctx's error is
// returned together with the last one.
func redisPreflight(ctx context.Context, store *dedupe.Store, c config.Redis, log *slog.Logger) error {
	return retryChecks(ctx, "redis", log, func(ctx context.Context) (bool, error) {
		err := preflightOnce(ctx, store, c, log)
		var refused *dedupe.PreflightError
		return errors.As(err, &refused), err
	})
}

// preflightOnce runs the checks once and phrases a refusal in the worker's configuration.
func preflightOnce(ctx context.Context, store *dedupe.Store, c config.Redis, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, preflightAttempt)
	defer cancel()
	var warnings [][2]string // addr, message: logged once the checks pass (a retried attempt would repeat them)
	opts := dedupe.PreflightOptions{Warn: func(addr, msg string) { warnings = append(warnings, [2]string{addr, msg}) }}
	err := store.Preflight(ctx, opts)
	var refused *dedupe.PreflightError
	if errors.As(err, &refused) && refused.Check == dedupe.CheckEviction && c.AllowEviction {
		log.Warn("redis may evict dedupe records before their retention ends, so an event may reach the platform "+
			"twice; allowed by redis.allow_eviction", "reason", refused.Msg)
		warnings, opts.AllowEviction = nil, true
		err = store.Preflight(ctx, opts)
	}
	if err == nil {
		for _, w := range warnings {
			log.Warn(w[1], "redis", w[0])
		}
		return nil
	}
	if !errors.As(err, &refused) {
		return err
	}
	switch refused.Check {
	case dedupe.CheckEviction:
		return fmt.Errorf("%w with redis.allow_eviction: true (ORDERSYNC_REDIS_ALLOW_EVICTION=true)", err)
	case dedupe.CheckCluster:
		if c.DB != 0 {
			return fmt.Errorf("%w; redis.db must be 0 with Redis Cluster", err)
		}
	case dedupe.CheckPermission:
		if c.Username != "" {
			return fmt.Errorf("%w (redis.username %q)", err, c.Username)
		}
	}
	return err
}
