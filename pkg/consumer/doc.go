// Package consumer consumes the channel topics in one Kafka consumer group, runs each message
// through a [Processor] concurrently by key, publishes what the processor returns (and the dead
// letters it asks for), and commits offsets only behind finished work.
//
// # Group consumption: why kafka.ConsumerGroup and not kafka.Reader
//
// kafka-go's Reader in group mode hides the rebalance: it has no revoke callback, it keeps
// handing out messages from its undrained queue after the partition moved (kafka-go#1398), and a
// late commit from the old owner can rewind the new owner's offset (kafka-go#1308). The consumer
// therefore drives [kafka.ConsumerGroup] directly. Each [kafka.Generation] carries the
// assignments; the consumer starts one fetch loop per assigned partition positioned at the
// committed offset. When the generation ends — a rebalance, a lost coordinator or Close — its
// context is cancelled, which is the revoke signal: fetching stops, in-flight work gets a bounded
// time to finish, the finished prefix is committed with the generation's id (the broker rejects
// commits from a generation that is over, which is what fences out #1308), and only then does
// the generation's function return and the rebalance go on.
//
// # Fetching
//
// A partition is read with the Kafka Fetch API at the read_committed isolation level: records of
// aborted transactions and transaction markers never reach the processor (kafka-go's Reader and
// Conn return markers as messages, and aborted records too). A record is decoded only after it
// took an in-flight slot, so fetched but unfinished messages — running, queued behind their key,
// or waiting to be published — never exceed MaxInFlight; a partition holds at most one fetch
// response (MaxBytes) meanwhile. The partitions' high watermarks are asked of the brokers every
// LagInterval as well, so the lag gauges keep growing while fetching stands still.
//
// # Key-ordered concurrency
//
// Messages with the same key on a partition run one at a time in offset order; different keys
// run concurrently. Messages without a key have no order to keep and run independently. When
// MaxInFlight messages are between fetch and finish, fetching waits (backpressure).
//
// # Failure classes
//
// What the processor returns puts a message in one of four classes:
//
//   - done: a [Result] with records (the outcome). They are published with all in-sync replicas
//     acknowledging, then the message is finished and its offset may be committed.
//   - permanent: a Result that also names a dead-letter reason. The consumer publishes the
//     original key, value and headers to DeadLetterTopic with the reason and the source
//     coordinates (see [DeadLetter]) next to the records.
//   - retry: any error but a pause — a dependency such as Redis is down. The message is processed
//     again after a capped exponential backoff (100ms doubling to 5s) while it keeps its slot, so a
//     total outage stops fetching instead of spinning. A failed publish is retried the same way,
//     and nothing is committed past the message meanwhile. A processor panic is a retry.
//   - pause: a *[Pause] error — no message of some topics can get past a condition for a while (a
//     flow-control ban, an open circuit, refused credentials). Intake of those topics stops: their
//     fetch loops stop fetching (the group keeps heartbeating, so the partitions stay assigned),
//     and the message, with every other message of those topics that reaches the processor
//     meanwhile, is dropped: its slot is freed and its partition rewinds to it, so a pause holds
//     neither memory nor slots and other topics keep flowing. At the pause's end time (or after
//     ProbeInterval, doubling to MaxProbeInterval, when it has none; or at once on [Consumer.Probe])
//     one message is fetched and processed as a probe. If it meets the same pause, the pause goes
//     on; otherwise intake resumes in offset order with a ramp — 1, 2, 4, ... messages of those
//     topics in flight, doubling every RampStep — and the pause is over. A paused message starts
//     its processing afresh afterwards, so no retry budget runs while it waits. [Consumer.Paused]
//     describes the pauses in force.
//
// # Offsets
//
// Per partition the consumer tracks fetched offsets; the committable offset is the lowest
// unfinished one (or one past the highest fetched when all are finished). A dropped offset is
// unfinished until it is fetched again and finished. Commits happen every CommitInterval and when
// a generation ends, never past unfinished work, so a crash replays at most the uncommitted tail,
// which the processor deduplicates.
package consumer
