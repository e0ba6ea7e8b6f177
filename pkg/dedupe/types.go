package dedupe

import (
	"errors"
	"strconv"
	"time"
)

// Sentinel errors. Returned errors wrap them (match with errors.Is) and name the operation and key.
var (
	// ErrLeaseLost is returned by Renew, Complete and Release when owner and token no longer hold the key:
	// another owner took the expired lease over, the key was completed or released, or its record expired.
	// The caller must stop working on the key; its result must not be published as the key's outcome.
	ErrLeaseLost = errors.New("dedupe: lease lost")

	// ErrNotFound is returned by Get when the key has no record.
	ErrNotFound = errors.New("dedupe: not found")

	// ErrInvalid is returned, before any Redis call, for invalid arguments (empty key, owner or
	// fingerprint, a non-positive lease or token, a negative retention). Retrying does not help.
	ErrInvalid = errors.New("dedupe: invalid argument")

	// ErrCorrupt is returned by every method when the Redis key holds something that is not one of the
	// store's records: another type (WRONGTYPE, e.g. a hash written there by something else), a string
	// the scripts cannot decode, or a reply of an unexpected shape. The error names the key and the Redis
	// key. Retrying does not help and the store never overwrites such a key: the caller must treat the
	// event as failed (and an operator must look at the key). Transient errors (connection refused,
	// timeouts, LOADING, CLUSTERDOWN, READONLY, OOM, ...) never match it.
	ErrCorrupt = errors.New("dedupe: corrupt record")

	// ErrInProgress, ErrDone and ErrConflict are what Claim.Err returns for the states InProgress, Done and
	// Conflict, for callers that prefer errors to switching on Claim.State. Claim itself never returns them.
	ErrInProgress = errors.New("dedupe: in progress")
	ErrDone       = errors.New("dedupe: already done")
	ErrConflict   = errors.New("dedupe: idempotency key used with another fingerprint")
)

// Key names one idempotency key of one channel. Its Redis key is <prefix>{<Channel>:<ID>}; the braces are a
// Redis Cluster hash tag, so everything about one key lives on one slot.
type Key struct {
	// Channel is the channel id, e.g. "omni-saas". Required; must not contain ':' so that every
	// (Channel, ID) pair maps to a distinct Redis key.
	Channel string
	// ID is the idempotency key within the channel. Required; any bytes.
	ID string
}

// String returns "<Channel>:<ID>", the form used in error messages.
func (k Key) String() string { return k.Channel + ":" + k.ID }

// State is the state of a key as seen by Claim or Get.
type State uint8

// States. Claim returns Claimed, InProgress, Done or Conflict; Get returns Claimed, Done or Released.
const (
	// Claimed: Claim gave the caller the lease (Get: some owner holds or held a lease that nobody has
	// taken over yet; compare Record.LeaseExpires with the time to tell whether it is still live).
	Claimed State = iota + 1
	// InProgress: another owner holds an unexpired lease. Try again after Claim.LeaseExpires.
	InProgress
	// Done: the key was completed; Claim.Outcome is the stored outcome, byte for byte.
	Done
	// Conflict: the key is bound to a different fingerprint (another request used the same key).
	Conflict
	// Released: the last owner released its claim; the next Claim with the same fingerprint takes it.
	Released
)

// String returns the state's name in lower case, e.g. "in_progress"; unknown values print as "state(N)".
func (s State) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case InProgress:
		return "in_progress"
	case Done:
		return "done"
	case Conflict:
		return "conflict"
	case Released:
		return "released"
	default:
		return "state(" + strconv.Itoa(int(s)) + ")"
	}
}

// Claim is the result of Store.Claim.
type Claim struct {
	// State is Claimed, InProgress, Done or Conflict.
	State State
	// Token is the fencing token: when Claimed, the caller's token, to pass to Renew, Complete and Release;
	// when InProgress, the holder's; when Done, the completer's; 0 on Conflict.
	Token int64
	// Owner is the caller when Claimed, the lease holder when InProgress, the completer when Done; empty on
	// Conflict.
	Owner string
	// LeaseExpires is when the lease ends by the Redis server's clock (millisecond precision), when Claimed
	// or InProgress; zero otherwise.
	LeaseExpires time.Time
	// Outcome is the outcome stored by Complete, byte-identical, when Done; nil otherwise.
	Outcome []byte
	// TookOver is true when Claimed by taking over another owner's expired claim (that owner may have
	// crashed or stalled after calling the platform: the caller cannot know whether the call was made).
	// It is false for a new key, a released key, and the caller's own live claim — unless that claim was
	// itself a takeover: a repeated Claim by the taker reports the takeover again, so a retried Claim
	// whose first reply was lost never hides one.
	TookOver bool
	// PreviousOwner is the owner whose expired claim was taken over, when TookOver; "" otherwise.
	PreviousOwner string
	// Note is, when Claimed a key its last owner released with ReleaseNoted, that note; a repeated
	// Claim by the same owner reports it again. nil otherwise.
	Note []byte
}

// Err returns nil when c.State is Claimed, and ErrInProgress, ErrDone or ErrConflict otherwise.
func (c Claim) Err() error {
	switch c.State {
	case Claimed:
		return nil
	case InProgress:
		return ErrInProgress
	case Done:
		return ErrDone
	case Conflict:
		return ErrConflict
	default:
		return errors.New("dedupe: unknown claim state " + c.State.String())
	}
}

// Record is a key's stored state, as returned by Store.Get.
type Record struct {
	// State is Claimed, Done or Released.
	State State
	// Owner is the owner of the current or last claim (for Done: the owner that completed it).
	Owner string
	// Token is the fencing token of the current or last claim.
	Token int64
	// Fingerprint is the fingerprint the key is bound to.
	Fingerprint string
	// LeaseExpires is when the lease ends by the Redis server's clock, when Claimed; zero otherwise.
	LeaseExpires time.Time
	// Outcome is the stored outcome when Done; nil otherwise.
	Outcome []byte
	// PreviousOwner is, when Claimed, the owner whose expired claim the current claim took over ("" if
	// the current claim was not a takeover); "" otherwise.
	PreviousOwner string
	// Note is the note of a Released record (ReleaseNoted), or of the release a Claimed record
	// followed; nil otherwise.
	Note []byte
}
