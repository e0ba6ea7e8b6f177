// Package consumer consumes the channel topics in one Kafka consumer group, runs each message
// through a [Processor] concurrently by key, publishes what the processor returns, and commits
// offsets only behind finished work.
//
// # Group consumption: why kafka.ConsumerGroup and not kafka.Reader
//
// kafka-go's Reader in group mode hides the rebalance: it has no revoke callback, it keeps
// handing out messages from its undrained queue after the partition moved (kafka-go#1398), and a
// late commit from the old owner can rewind the new owner's offset (kafka-go#1308). The consumer
// therefore drives [kafka.ConsumerGroup] directly. Each [kafka.Generation] carries the
// assignments; the consumer starts one fetch loop per assigned partition with a partition-bound
// Reader (no group) positioned at the committed offset. When the generation ends — a rebalance,
// a lost coordinator or Close — its context is cancelled, which is the revoke signal: fetching
// stops, in-flight work gets a bounded time to finish, the finished prefix is committed with the
// generation's id (the broker rejects commits from a generation that is over, which is what
// fences out #1308), and only then does the generation's function return and the rebalance go
// on. Fresh Readers per generation mean no stale queue (#1398).
//
// # Key-ordered concurrency
//
// Messages with the same key on a partition run one at a time in offset order; different keys
// run concurrently. Messages without a key have no order to keep and run independently. At most
// MaxInFlight messages across all partitions are between fetch and finish; when the limit is
// reached fetching waits (backpressure). A message parked by [Defer] (a long flow-control ban)
// gives its slot back while it waits, but still holds its key and its offset.
//
// # Offsets
//
// Per partition the consumer tracks fetched offsets; the committable offset is the lowest
// unfinished one (or one past the highest fetched when all are finished). A message is finished
// only after everything the processor returned for it was acknowledged by all in-sync replicas.
// Commits happen every CommitInterval and when a generation ends, never past unfinished work, so
// a crash replays at most the uncommitted tail, which the processor deduplicates.
//
// # Failure
//
// A processor error means "not now" (a dependency such as Redis is down): the message is retried
// with capped exponential backoff while it holds its slot, so a total outage stops fetching
// instead of spinning. A failed publish is retried the same way and nothing is committed past it.
// A panic in the processor is recovered and retried like an error.
package consumer
