// Package dedupe is ordersync's Redis idempotency store: at most one owner works on an idempotency key at a
// time, a completed key replays its stored outcome, and a key reused for a different request is reported as a
// conflict. It knows nothing of channels or Kafka beyond the Key it is given.
//
// # State machine
//
// One Redis string per key, at <prefix>{<channel>:<id>} (the braces are a Redis Cluster hash tag; each
// operation touches exactly one key, so single node, Sentinel and Cluster work unchanged through
// redis.UniversalClient):
//
//	absent ──Claim──▶ claimed(o, t, f, x) ──Complete(o, t)──▶ done(o, t, f, outcome)
//	                    │    ▲    ▲   ↺ Renew(o, t): x = now + lease
//	                    │    │    └── Claim by another owner once x has passed: takeover, t+1
//	       Release(o, t)▼    │ Claim: t+1 (reports n)
//	                 released(o, t, f, n)
//
// o is the owner, t the fencing token, f the fingerprint the key is bound to, x the lease expiry, n the
// note a release may leave (ReleaseNoted; empty for Release), which the next Claim reports (Claim.Note). Claim
// reports Claimed, InProgress (another owner's lease is live), Done (with the outcome) or Conflict (f
// differs — checked first, in every state, so a key stays bound to its first request for as long as its
// record exists). Each transition is one Lua script run atomically on the server.
//
// A takeover is reported: Claim.TookOver is set and Claim.PreviousOwner names the owner whose expired
// claim was taken (the record keeps it while the claim lasts, so a repeated Claim reports it again). That
// owner may have called the platform before it crashed or stalled; a caller whose platform does not
// deduplicate the call must not call again (see "Crash windows" below). A claim of a new or released key
// is no takeover: a release means the owner gave the key up knowingly.
//
// # Fencing
//
// Renew, Complete and Release are compare-and-set on owner AND token. The token grows with every claim of a
// key: 1 for a new key, +1 on every takeover and on every claim after a release. A worker that paused past
// its lease (GC, slow API, lost network) and was taken over holds an old token, so its Complete, Renew and
// Release fail with ErrLeaseLost and never overwrite the new owner's result.
//
// Tokens must never repeat for a key, or a stale holder of token N could complete a later claim that was
// also given N. Deleting the record on Release, or letting a claimed record expire with its lease, would
// restart the counter at 1. So neither happens: Release turns the record into a "released" tombstone that
// keeps the token and fingerprint, and a claimed record's TTL is Config.ClaimRetention (default 7 days), not
// the lease — lease expiry is a field inside the record, so a takeover is possible the moment the lease
// ends. Tokens therefore never repeat within the retention window. Owners must also be unique per claim
// attempt (e.g. pod, pid and a random or sequence part): Claim treats a repeated owner as a retry of the
// same attempt and returns the same token, which makes a retried Claim (go-redis retries commands on
// network errors) harmless.
//
// A lease that expired but that nobody took over can still be renewed and completed: the token still
// matches, so nobody else can have worked on the key. Completing it is correct and saves a repeated call.
//
// # Time
//
// Lease expiry is decided by the Redis server's clock (TIME inside the scripts), never the caller's: the
// worker replicas' clocks may disagree and it does not matter. Claim.LeaseExpires and Record.LeaseExpires
// are server times. (After a Redis failover the new primary's clock decides; leases in flight move by the
// two servers' skew.) Tests control expiry by waiting (real Redis) or by setting miniredis's clock.
//
// # TTLs
//
// Every key always has a TTL, set by the same SET that writes the record: claimed and released records
// Config.ClaimRetention (refreshed on every write; at least the lease), done records the retention passed to
// Complete (0 means DefaultRetention). A record is a short header line (state, token, lease expiry, two
// lengths) followed by the owner, the fingerprint and, when done, the outcome bytes as given. MEMORY USAGE on Redis 7, key included: about 860 bytes for a done record with a 600-byte
// outcome, about 220 for a claim.
//
// # Crash windows
//
//   - Crash after Claim, before the platform call: the lease expires, the next delivery takes over. Safe.
//   - Crash after the platform call, before Complete: the next delivery takes over after the lease, and
//     Claim says so (TookOver). This is the one window a store cannot close: where the platform has its own
//     idempotency key, calling again is safe; where it has none, the caller must not call again. Keep the
//     lease longer than one call's timeout and Renew it while retrying.
//   - Crash after Complete, before the outcome is published and the offset committed: the redelivered event
//     gets Done and replays the stored outcome, so the outcome may be published twice (same content).
//   - Redis unreachable: every method returns an error, never a claim (fail closed); callers wait and retry.
//   - Redis loses data (a restart without persistence, a failover to a replica that missed the last
//     writes): the lost claims and outcomes are forgotten and their events can be processed again. The
//     store is exactly as durable as the Redis behind it; run it with AOF persistence.
//
// # Corrupt records
//
// A key under the prefix that holds something else — another type (WRONGTYPE), a string the scripts cannot
// decode, a reply of an unexpected shape — makes every method fail with ErrCorrupt, naming the key and the
// Redis key; the store never overwrites it. Retrying does not help, so callers treat such an event as
// failed. Connection errors, timeouts and server states that pass (LOADING, CLUSTERDOWN, READONLY, OOM,
// ...) never match ErrCorrupt.
//
// # Scripts run twice
//
// go-redis retries a command whose connection failed (MaxRetries), and its auto-pipelining retries a
// whole batch, so a script may run twice with the same arguments when its first reply was lost. Every
// script gives the same answer the second time and changes nothing more:
//
//   - claim: the first run leaves the caller's claim; the second finds the caller's own claim and returns
//     the same token (the lease may only grow). A takeover stays reported, because the record keeps the
//     previous owner.
//   - renew: sets the lease to the same length from now again.
//   - complete: the second run finds the key done by the same owner and token with the same outcome and
//     succeeds without a write.
//   - release: the second run finds the tombstone of the same owner and token and succeeds.
//
// Owners must therefore be unique per claim attempt (see Claim), which is also what makes a repeated Claim
// distinguishable from a competing one.
//
// # Redis requirements and Preflight
//
// Store.Preflight checks at start-up what the store relies on, and refuses with a *PreflightError naming
// the problem and the fix:
//
//   - Redis MinRedisVersion (5.0) or later, on every master: the scripts write after TIME, which needs
//     script effects replication, the default since 5.0.
//   - maxmemory-policy noeviction on every master, unless PreflightOptions.AllowEviction: every record has
//     a TTL, so volatile-* policies can evict records as well as allkeys-* ones, and an evicted claim or
//     outcome lets an event reach the platform twice. With noeviction a full Redis refuses writes (OOM),
//     which the store reports as an error: callers fail closed and wait.
//   - The Redis user may run INFO, SCRIPT LOAD, EVAL and EVALSHA, and inside the scripts GET, SET and TIME,
//     on keys matching <prefix>*: e.g. ACL SETUSER ordersync on >... +ping +info +script|load +eval
//     +evalsha +get +set +time ~ordersync:dedupe:*. A probe runs the claim and release scripts once on a
//     fresh key <prefix>{ordersync-preflight:<random>} that expires within a minute.
//   - A Redis Cluster node is used through a cluster client (*redis.ClusterClient, seeded with any node),
//     never through a single-node client, where keys of other nodes' slots would fail with MOVED.
//
// # Round trips
//
// Each method is one round trip (EVALSHA; Get is one GET). The first use of a script on a node after its
// script cache is empty costs one more (NOSCRIPT, then EVAL). Per processed event: a new event takes 2
// (Claim + Complete) plus 1 per Renew; a duplicate of a completed event takes 1 (Claim returns Done); a
// transient give-up takes 2 (Claim + Release); an event finding the key in progress takes 1 per attempt.
package dedupe
