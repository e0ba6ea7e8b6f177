package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// Processor handles one consumed message. Process must be safe for concurrent use; it is never
// called concurrently for two messages with the same key on the same partition. What it returns
// puts the message in one of the failure classes (see the package doc):
//
//   - a Result and a nil error: the message is done — its records are published (and the message
//     dead-lettered when Result.DeadLetter says so), then it counts as finished;
//   - a *[Pause] error: intake pauses for the topics the pause names, the message keeps its slot
//     and its place and is processed again once the pause is over;
//   - any other error: transient — the message is processed again after a capped backoff while it
//     keeps its in-flight slot.
//
// Process must honour ctx: when it is cancelled (a revoke or shutdown ran out of time) it should
// give up promptly; the message then stays uncommitted and goes to the partition's next owner.
type Processor interface {
	Process(ctx context.Context, m kafka.Message) (Result, error)
}

// ProcessorFunc adapts a function to [Processor].
type ProcessorFunc func(ctx context.Context, m kafka.Message) (Result, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, m kafka.Message) (Result, error) {
	return f(ctx, m)
}

// Result is what a processed message produced.
type Result struct {
	// Records are published before the message counts as finished (its outcome). Each gets a
	// "send <topic>" span whose context is injected into its headers.
	Records []kafka.Message
	// DeadLetter, when not empty, says why the message also goes to Config.DeadLetterTopic: the
	// original key, value and headers plus the ordersync-error (this text) and source headers,
	// reduced to fit Config.MaxRecordBytes (see [FitDeadLetter]).
	DeadLetter string
	// Fallback, when set, returns smaller records to publish instead of Records when these cannot
	// be written as they are: larger than Config.MaxRecordBytes, or refused by the broker for good
	// (too large, invalid). It is called at most once, and only then.
	Fallback func() []kafka.Message
}

// Pause is the error a processor returns when no message can get past a condition for a while:
// a flow-control ban, an open circuit breaker, credentials the platform refuses. The consumer
// stops fetching the topics the pause names and gives the message back (and every other message
// of those topics that reaches the processor meanwhile): its slot is freed and its partition
// rewinds to it, so nothing of it is held while it waits. After Until — or periodically, when
// Until is zero — one message is fetched as a probe. When the probe gets past the condition,
// intake resumes in offset order with a ramp (1, 2, 4, ... messages in flight); when it meets the
// condition again, the pause goes on (with backoff when Until is zero). A paused message's
// processing starts afresh after the pause, so no retry budget runs while it waits.
type Pause struct {
	// Scope identifies the condition, e.g. "ban app 12345678". Pauses with the same scope are one
	// pause; a probe that meets a pause of another scope ends its own.
	Scope string
	// Reason is a low-cardinality class for metrics and /readyz: "ban", "circuit_open",
	// "credentials", "unwritable".
	Reason string
	// Topics are the topics whose intake stops; nil means every topic.
	Topics []string
	// Until is when to probe; zero means probe after Config.ProbeInterval, doubling up to
	// Config.MaxProbeInterval while probes fail.
	Until time.Time
	// Level is the level of the log record written when the pause starts. Default slog.LevelInfo.
	Level slog.Level
	// Err is the cause, for logs and /readyz; it must not hold secrets.
	Err error
}

func (p *Pause) Error() string {
	return fmt.Sprintf("intake paused (%s: %s): %v", p.Reason, p.Scope, p.Err)
}

func (p *Pause) Unwrap() error { return p.Err }

// PauseState describes a pause in force, for health checks.
type PauseState struct {
	Scope   string
	Reason  string
	Topics  []string // nil: every topic
	Since   time.Time
	Until   time.Time // next probe; zero while a probe runs
	Probing bool      // a probe message is being processed
	Err     string
}
