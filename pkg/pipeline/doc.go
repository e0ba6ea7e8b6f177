// Package pipeline drives one consumed event to its outcome: it decodes and
// checks the event with its channel's contract (package dispatch), claims the
// idempotency key in Redis (package dedupe), calls the TOP API with
// exponential retry behind a per-gateway circuit breaker (package topapi),
// stores the outcome and hands the consumer the records to publish.
//
// [Pipeline.Process] implements consumer.Processor. Its result is one of the
// failure classes of docs/ARCHITECTURE.md: an outcome record (and a dead
// letter when the event needs a person), or a *consumer.Pause when the
// failure belongs to the whole app key or gateway — a long flow-control ban,
// an open circuit, refused credentials — and every event would fail alike.
//
// The dedupe states and which answers are stored:
//
//	absent → claimed(owner, lease, fingerprint) → done(outcome)
//
// An outcome is stored (a re-send is a duplicate) only when the platform
// executed the call or refused it on its merits. Exhausted retries, seller
// session errors and ambiguous calls release the claim instead, and the
// event goes to the dead-letter topic.
//
// A channel whose API has no field the platform deduplicates on
// (dispatch.Channel.DedupedBy empty: icbu-trade) is never called twice for an
// event: a failure after the request may have reached the platform, or a
// claim taken over from a crashed worker, ends as failed, kind ambiguous.
package pipeline
