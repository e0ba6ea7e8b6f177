package dedupe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// MinRedisVersion is the oldest Redis server Preflight accepts. The scripts read the server clock with
// TIME and then write; Redis refuses a write after a non-deterministic command ("Write commands not allowed
// after non deterministic commands") unless the script is replicated by its effects, which became the
// default in Redis 5.0 (3.2 and 4.0 need redis.replicate_commands() in every script; 7.0 removed the
// other mode).
const MinRedisVersion = "5.0.0"

// PreflightChannel is the channel of the probe keys Preflight writes, <prefix>{ordersync-preflight:<id>};
// no real channel may use it. A probe key is released at once and expires after a minute.
const PreflightChannel = "ordersync-preflight"

// PreflightOptions relaxes Preflight. The zero value checks everything.
type PreflightOptions struct {
	// AllowEviction accepts a maxmemory-policy other than noeviction. Every record has a TTL, so the
	// volatile-* policies can evict records as readily as the allkeys-* ones; an evicted claim or outcome
	// lets the same event reach the platform again. Default false: refuse such a server.
	AllowEviction bool
	// Warn, if set, is told what Preflight finds risky but not wrong, once per master and finding: a
	// master without AOF persistence (aof_enabled:0), whose restart loses the records written since its
	// last snapshot, or all of them if it keeps none, so that events re-sent or redelivered after it
	// reach the platform again. Calls do not overlap; one may come before Preflight returns an error.
	Warn func(addr, msg string)
}

// Check names one of Preflight's checks.
type Check string

// The checks, in the order Preflight runs them.
const (
	// CheckPermission: the Redis user may run INFO (to read what the other checks need), SCRIPT LOAD,
	// EVAL and EVALSHA, and inside the scripts GET, SET and TIME, on keys under the prefix. Failed
	// authentication is reported under it too.
	CheckPermission Check = "permission"
	// CheckVersion: every master runs MinRedisVersion or later.
	CheckVersion Check = "version"
	// CheckEviction: every master's maxmemory-policy is noeviction (unless AllowEviction).
	CheckEviction Check = "eviction"
	// CheckCluster: a Redis Cluster node is reached through a cluster client, never as a single node.
	CheckCluster Check = "cluster"
)

// PreflightError is a refusal by Preflight: the server, its configuration or the Redis user does not suit
// the store, and retrying does not help. Its message names the problem and the fix.
type PreflightError struct {
	// Check is the check that failed.
	Check Check
	// Addr is the Redis node the check failed on; "" when the client does not say (e.g. the probe key's
	// node in a Cluster).
	Addr string
	// Msg says what is wrong and how to fix it.
	Msg string
	// Err is the Redis error behind the refusal, if any.
	Err error
}

func (e *PreflightError) Error() string {
	if e.Addr == "" {
		return "dedupe preflight: " + e.Msg
	}
	return "dedupe preflight: redis " + e.Addr + ": " + e.Msg
}

func (e *PreflightError) Unwrap() error { return e.Err }

// Preflight checks, before the store is used, that the Redis behind it can keep the store's promises, and
// returns a *PreflightError naming the problem and the fix if not:
//
//   - CheckPermission and CheckVersion / CheckEviction / CheckCluster, on every master (a Cluster's through
//     ForEachMaster): INFO must be allowed; redis_version must be at least MinRedisVersion;
//     maxmemory_policy must be noeviction unless opts.AllowEviction (read from INFO, not CONFIG GET,
//     which managed services often disable); a node with cluster_enabled:1 reached through a
//     single-node client (*redis.Client) is refused, since keys on other nodes' slots would answer MOVED.
//   - CheckPermission, with a probe: it loads the scripts (SCRIPT LOAD on every master), runs the claim
//     script with EVAL and the release script with EVALSHA on a fresh probe key
//     <prefix>{ordersync-preflight:<random>} (a one-second lease, a one-minute TTL), so that a Redis ACL
//     user lacking any command or key pattern the store needs fails here, naming the command, rather than
//     on every event later.
//
// A master without AOF persistence passes, and is reported to opts.Warn.
//
// Any other error (Redis unreachable, LOADING, a timeout, ctx ending) is returned as it is, not as a
// *PreflightError: it may pass, and the caller may retry. Preflight writes only the probe key; it is safe
// to run concurrently from several processes.
func (s *Store) Preflight(ctx context.Context, opts PreflightOptions) error {
	if warn := opts.Warn; warn != nil {
		var mu sync.Mutex // a Cluster's masters are checked concurrently
		opts.Warn = func(addr, msg string) {
			mu.Lock()
			defer mu.Unlock()
			warn(addr, msg)
		}
	}
	if err := s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client, clustered bool) error {
		return s.checkServer(ctx, c, clustered, opts)
	}); err != nil {
		return err
	}
	return s.probe(ctx)
}

// forEachMaster runs fn on every master the store writes to; clustered says whether the client routes by
// slot (a *redis.ClusterClient).
func (s *Store) forEachMaster(ctx context.Context, fn func(ctx context.Context, c *redis.Client, clustered bool) error) error {
	switch rdb := s.rdb.(type) {
	case *redis.ClusterClient:
		return rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return fn(ctx, c, true) })
	case *redis.Ring:
		return rdb.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error { return fn(ctx, c, false) })
	case *redis.Client:
		return fn(ctx, rdb, false)
	default:
		return fmt.Errorf("dedupe preflight: unsupported client type %T", s.rdb)
	}
}

// checkServer runs the INFO-based checks on one master.
func (s *Store) checkServer(ctx context.Context, c *redis.Client, clustered bool, opts PreflightOptions) error {
	addr := c.Options().Addr
	info, err := c.Info(ctx).Result() // the default sections hold server, memory and cluster
	if err != nil {
		if refused := s.accessError(addr, "INFO, which the start-up checks read the version, maxmemory-policy and cluster mode from", err); refused != nil {
			return refused
		}
		return fmt.Errorf("dedupe preflight: redis %s: INFO: %w", addr, err)
	}
	fields := parseInfo(info)
	if err := checkInfo(addr, fields, clustered, opts); err != nil {
		return err
	}
	if fields["aof_enabled"] == "0" && opts.Warn != nil {
		opts.Warn(addr, "redis runs without AOF persistence (appendonly no): a restart loses the dedupe records "+
			"written since its last snapshot (all of them without snapshots), and events re-sent or redelivered "+
			"after it reach the platform again; set appendonly yes")
	}
	return nil
}

// checkInfo checks one master's INFO fields.
func checkInfo(addr string, fields map[string]string, clustered bool, opts PreflightOptions) error {
	v, ok := fields["redis_version"]
	if !ok {
		return &PreflightError{Check: CheckVersion, Addr: addr,
			Msg: "INFO has no redis_version, so the server cannot be checked; the store needs Redis " + MinRedisVersion + " or later"}
	}
	atLeast, err := versionAtLeast(v, MinRedisVersion)
	if err != nil {
		return &PreflightError{Check: CheckVersion, Addr: addr, Msg: fmt.Sprintf("redis_version %q: %v", v, err)}
	}
	if !atLeast {
		return &PreflightError{Check: CheckVersion, Addr: addr, Msg: fmt.Sprintf(
			"Redis %s is too old: the dedupe scripts write after reading the server clock (TIME), which needs "+
				"script effects replication, the default from Redis %s on; upgrade Redis to %s or later", v, MinRedisVersion, MinRedisVersion)}
	}

	if policy := fields["maxmemory_policy"]; policy != "noeviction" && !opts.AllowEviction {
		if policy == "" {
			policy = "(not reported)"
		}
		return &PreflightError{Check: CheckEviction, Addr: addr, Msg: fmt.Sprintf(
			"maxmemory-policy is %s, which lets Redis evict dedupe records before their retention ends, and an "+
				"evicted record lets the same event reach the platform again (every record has a TTL, so volatile-* "+
				"policies evict them as allkeys-* do); set maxmemory-policy noeviction, or accept the risk explicitly", policy)}
	}

	if fields["cluster_enabled"] == "1" && !clustered {
		return &PreflightError{Check: CheckCluster, Addr: addr, Msg: "this is a Redis Cluster node, reached through a " +
			"single-node client: keys whose slots other nodes hold would fail with MOVED; connect with a cluster " +
			"client seeded with this address (and database 0, the only one a Cluster has)"}
	}
	return nil
}

// probe runs the scripts once on a fresh probe key, the way the store will run them.
func (s *Store) probe(ctx context.Context) error {
	if err := s.LoadScripts(ctx); err != nil {
		if refused := s.accessError("", "SCRIPT LOAD", err); refused != nil {
			return refused
		}
		return err
	}
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand)
	owner := "preflight-" + hex.EncodeToString(id[:])
	rkey := s.RedisKey(Key{Channel: PreflightChannel, ID: owner})
	const lease, ttl = time.Second, time.Minute

	// EVAL, as go-redis falls back to after NOSCRIPT (a failover, a SCRIPT FLUSH) ...
	reply, err := claimScript.Eval(ctx, s.rdb, []string{rkey}, "preflight", owner, millis(lease), millis(ttl)).Result()
	if err != nil {
		return s.probeFailed(ctx, "EVAL", rkey, err)
	}
	c, err := parseClaim(reply)
	if err != nil {
		return fmt.Errorf("dedupe preflight: claim of %s: %w", rkey, err)
	}
	if c.State != Claimed || c.Token != 1 || c.TookOver {
		return fmt.Errorf("dedupe preflight: claim of the fresh probe key %s = %+v, want claimed with token 1", rkey, c)
	}
	// ... and EVALSHA, as every call tries first.
	reply, err = releaseScript.EvalSha(ctx, s.rdb, []string{rkey}, owner, c.Token, millis(ttl)).Result()
	if err != nil {
		return s.probeFailed(ctx, "EVALSHA", rkey, err)
	}
	if reply != int64(1) {
		return fmt.Errorf("dedupe preflight: release of the probe key %s replied %v, want 1", rkey, reply)
	}
	return nil
}

// probeFailed explains a failed probe script. A user that may not run a command inside a script gets a
// message that does not say which (Redis 7.0: "The user executing the script can't run this command or
// subcommand"), so the commands the scripts use are tried one by one, directly, to name it.
func (s *Store) probeFailed(ctx context.Context, how, rkey string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "Write commands not allowed after non deterministic") {
		return &PreflightError{Check: CheckVersion, Err: err, Msg: fmt.Sprintf("%s of the dedupe scripts: %v; "+
			"the scripts write after TIME, which needs script effects replication: set lua-replicate-commands yes "+
			"(the default since Redis 5.0) or upgrade Redis", how, err)}
	}
	refused := s.accessError("", how, err)
	if refused == nil {
		return fmt.Errorf("dedupe preflight: %s of the dedupe scripts on %s: %w", how, rkey, err)
	}
	if strings.Contains(msg, "script") {
		for _, cmd := range [][]any{{"TIME"}, {"GET", rkey}, {"SET", rkey, "preflight", "PX", 1000}} {
			derr := s.rdb.Do(ctx, cmd...).Err()
			if derr == nil || errors.Is(derr, redis.Nil) {
				continue
			}
			if direct := s.accessError("", fmt.Sprintf("%s, which the dedupe scripts call", cmd[0]), derr); direct != nil {
				direct.Err = err
				return direct
			}
		}
	}
	return refused
}

// accessError returns a *PreflightError when err says the Redis user may not do what the store needs (or
// could not log in), and nil for any other error.
func (s *Store) accessError(addr, what string, err error) *PreflightError {
	msg := err.Error()
	grantHint := "grant the user the commands and keys the store needs, e.g. " +
		"ACL SETUSER <user> +ping +info +script|load +eval +evalsha +get +set +time ~" + s.prefix + "*"
	refuse := func(format string, args ...any) *PreflightError {
		return &PreflightError{Check: CheckPermission, Addr: addr, Err: err, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case redis.IsAuthError(err):
		return refuse("authentication failed (%v): check the Redis user name and password", err)
	case strings.Contains(msg, "can't access"), redis.IsPermissionError(err) && strings.Contains(msg, "keys"):
		return refuse("%s: the Redis user may not access the dedupe keys (%v): %s", what, err, grantHint)
	case redis.IsPermissionError(err), strings.Contains(msg, "can't run this command"):
		return refuse("the Redis user may not run %s (%v): %s", what, err, grantHint)
	case strings.Contains(strings.ToLower(msg), "unknown command"):
		return refuse("the server does not know %s (%v): the store needs a Redis with Lua scripting", what, err)
	}
	return nil
}

// parseInfo reads the "name:value" lines of an INFO reply.
func parseInfo(info string) map[string]string {
	fields := make(map[string]string)
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	return fields
}

// versionAtLeast reports whether the Redis version v ("7.0.15", "6.2.6", "7.4-rc1") is min or later.
// Missing components count as 0; anything after the numbers ("-rc1") is ignored.
func versionAtLeast(v, min string) (bool, error) {
	have, err := parseVersion(v)
	if err != nil {
		return false, err
	}
	want, err := parseVersion(min)
	if err != nil {
		return false, err
	}
	for i := range have {
		if have[i] != want[i] {
			return have[i] > want[i], nil
		}
	}
	return true, nil
}

func parseVersion(v string) ([3]int, error) {
	var out [3]int
	num, _, _ := strings.Cut(v, "-")
	parts := strings.Split(num, ".")
	if len(parts) > 3 {
		return out, fmt.Errorf("version %q: more than three numbers", v)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, fmt.Errorf("version %q: %q is not a number", v, p)
		}
		out[i] = n
	}
	return out, nil
}
