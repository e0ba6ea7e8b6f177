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
//	       Release(o, t)▼    │ Claim: t+1
//	                 released(o, t, f)
//
// o is the owner, t the fencing token, f the fingerprint the key is bound to, x the lease expiry. Claim
// reports Claimed, InProgress (another owner's lease is live), Done (with the outcome) or Conflict (f
// differs — checked first, in every state, so a key stays bound to its first request for as long as its
// record exists). Each transition is one Lua script run atomically on the server.
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
//   - Crash after the platform call, before Complete: the next delivery takes over after the lease and calls
//     again. This is the one window a store cannot close; the platform's own idempotency key covers it.
//     Keep the lease longer than one call's timeout and Renew it while retrying.
//   - Crash after Complete, before the outcome is published and the offset committed: the redelivered event
//     gets Done and replays the stored outcome, so the outcome may be published twice (same content).
//   - Redis unreachable: every method returns an error, never a claim (fail closed); callers wait and retry.
//   - Redis loses data (a restart without persistence, a failover to a replica that missed the last
//     writes): the lost claims and outcomes are forgotten and their events can be processed again. The
//     store is exactly as durable as the Redis behind it; run it with AOF persistence.
//
// # Round trips
//
// Each method is one round trip (EVALSHA; Get is one GET). The first use of a script on a node after its
// script cache is empty costs one more (NOSCRIPT, then EVAL). Per processed event: a new event takes 2
// (Claim + Complete) plus 1 per Renew; a duplicate of a completed event takes 1 (Claim returns Done); a
// transient give-up takes 2 (Claim + Release); an event finding the key in progress takes 1 per attempt.
package dedupe
