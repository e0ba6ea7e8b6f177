package dedupe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// DefaultPrefix is the default Config.Prefix.
	DefaultPrefix = "ordersync:dedupe:"
	// DefaultRetention is how long records are kept when no other duration is given: completed outcomes
	// (Complete with retention 0) and claimed or released records (Config.ClaimRetention 0).
	DefaultRetention = 7 * 24 * time.Hour
)

// Config configures a Store. The zero value is valid and means all defaults.
type Config struct {
	// Prefix starts every Redis key. Default DefaultPrefix ("ordersync:dedupe:"). It must not contain '{'
	// or '}', which would move the Redis Cluster hash tag into the prefix and put every key on one slot.
	Prefix string

	// ClaimRetention is the TTL of a record while it is claimed or released, refreshed on every write
	// (a claim, renewal or release). It is not the lease: lease expiry is kept inside the record, so a
	// crashed owner's key can be taken over as soon as its lease ends. ClaimRetention bounds how long the
	// key stays bound to its fingerprint and how long its fencing tokens are guaranteed never to repeat
	// (see the package doc); a stale owner can still Complete its own untaken claim until then. Leases
	// longer than ClaimRetention extend the TTL to the lease. Default DefaultRetention (7 days); set it to
	// the same value as the completion retention.
	ClaimRetention time.Duration

	// AutoPipeline sends the commands of concurrent callers together (go-redis AutoPipeline): a
	// round trip carries the claims, renewals and completions of many events at once instead of
	// one each. go-redis retries a batch whose connection failed as a whole, so a script may run
	// twice; every script gives the same answer the second time (see "Scripts run twice").
	// Default false: one round trip per call.
	AutoPipeline bool
}

// Validate reports whether c is usable; New calls it.
func (c Config) Validate() error {
	if strings.ContainsAny(c.Prefix, "{}") {
		return fmt.Errorf("dedupe: prefix %q must not contain '{' or '}'", c.Prefix)
	}
	if c.ClaimRetention < 0 {
		return fmt.Errorf("dedupe: claim retention %v must not be negative", c.ClaimRetention)
	}
	return nil
}

// Store is the Redis idempotency store. It is safe for concurrent use. It does not own the client: closing
// the client is the caller's job.
//
// Every method is one round trip (one EVALSHA, or GET for Get) bounded by ctx. A context that is
// already done fails before any I/O; a deadline bounds blocked socket reads and writes only if the client
// was created with ContextTimeoutEnabled (otherwise its ReadTimeout/WriteTimeout apply).
type Store struct {
	rdb    redis.UniversalClient
	exec   commander // rdb, or its autopipeliner
	prefix string
	hold   time.Duration
}

// commander runs the store's commands: the client, or its autopipeliner.
type commander interface {
	redis.Scripter
	Get(ctx context.Context, key string) *redis.StringCmd
}

// New returns a Store on rdb (a *redis.Client, *redis.ClusterClient, failover or ring client) with cfg's
// defaults applied. It makes no Redis calls. It returns an error if rdb is nil or cfg is invalid.
func New(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("dedupe: nil redis client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.ClaimRetention == 0 {
		cfg.ClaimRetention = DefaultRetention
	}
	s := &Store{rdb: rdb, exec: rdb, prefix: cfg.Prefix, hold: cfg.ClaimRetention}
	if cfg.AutoPipeline {
		// Owned by rdb: closing the client stops it.
		ap, err := rdb.AutoPipeline()
		if err != nil {
			return nil, fmt.Errorf("dedupe: auto-pipeline: %w", err)
		}
		s.exec = ap
	}
	return s, nil
}

// LoadScripts loads the store's Lua scripts into Redis (every master of a Cluster), so that the
// first operation on each node runs EVALSHA directly instead of failing with NOSCRIPT and falling
// back to EVAL. It is optional: without it every operation still works. Call it at start-up.
func (s *Store) LoadScripts(ctx context.Context) error {
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("dedupe: load scripts: %w", err)
		}
	}
	return nil
}

// RedisKey returns the Redis key holding k's record: <prefix>{<channel>:<id>}. For operators and tests.
func (s *Store) RedisKey(k Key) string {
	return s.prefix + "{" + k.Channel + ":" + k.ID + "}"
}

// Claim tries to take key for owner, for lease, binding it to fingerprint. The result's State says what
// happened (see the Claim type and the package doc):
//   - no record, or a released one: Claimed, with the next fencing token (1 for a new key);
//   - owner's own claim: Claimed again with the same token, lease extended to at least lease from now
//     (so a retried Claim is harmless);
//   - another owner's unexpired claim: InProgress with that owner, its token and lease expiry;
//   - another owner's expired claim: taken over atomically, Claimed with the token incremented, TookOver
//     set and PreviousOwner naming that owner (it may have called the platform before it stopped);
//   - completed: Done with the stored outcome;
//   - any record bound to a different fingerprint: Conflict.
//
// Owners must be unique per claim attempt, e.g. "<pod>/<pid>/<sequence>": a repeated owner is taken for a
// retry of the same attempt and gets the same token, so two attempts sharing an owner would both hold the
// key. An error is never a claim: on error the caller must not proceed (fail closed).
func (s *Store) Claim(ctx context.Context, key Key, fingerprint, owner string, lease time.Duration) (Claim, error) {
	if err := checkKey(key); err != nil {
		return Claim{}, fmt.Errorf("claim %s: %w", key, err)
	}
	if err := checkArgs(fingerprint, owner, lease); err != nil {
		return Claim{}, fmt.Errorf("claim %s: %w", key, err)
	}
	ttl := max(s.hold, lease)
	reply, err := s.run(ctx, claimScript, key, fingerprint, owner, millis(lease), millis(ttl))
	if err != nil {
		return Claim{}, fmt.Errorf("claim %s: %w", key, err)
	}
	c, err := parseClaim(reply)
	if err != nil {
		return Claim{}, fmt.Errorf("claim %s: %w", key, s.corrupt(key, err))
	}
	return c, nil
}

// Renew sets the lease of owner's claim on key to end lease from now (by the server's clock), if owner and
// token still hold it. It succeeds for an expired lease that nobody has taken over. Otherwise it returns
// ErrLeaseLost (wrapped).
func (s *Store) Renew(ctx context.Context, key Key, owner string, token int64, lease time.Duration) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("renew %s: %w", key, err)
	}
	if err := checkHolder(owner, token); err != nil {
		return fmt.Errorf("renew %s: %w", key, err)
	}
	if lease <= 0 {
		return fmt.Errorf("renew %s: lease %v not positive: %w", key, lease, ErrInvalid)
	}
	ttl := max(s.hold, lease)
	return s.cas(ctx, "renew", renewScript, key, owner, token, millis(lease), millis(ttl))
}

// Complete stores outcome as key's result, if owner and token still hold the claim, and keeps it for
// retention (0 means DefaultRetention). Later Claims with the same fingerprint get Done with these exact
// bytes. A claim whose lease expired but that nobody took over can still be completed: the token proves no
// one else has worked on the key since. If the claim was taken over, released or the record is gone,
// Complete writes nothing and returns ErrLeaseLost (wrapped). Completing again with the same owner, token
// and outcome (a retried call) succeeds without a write.
func (s *Store) Complete(ctx context.Context, key Key, owner string, token int64, outcome []byte, retention time.Duration) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("complete %s: %w", key, err)
	}
	if err := checkHolder(owner, token); err != nil {
		return fmt.Errorf("complete %s: %w", key, err)
	}
	if retention < 0 {
		return fmt.Errorf("complete %s: retention %v negative: %w", key, retention, ErrInvalid)
	}
	if retention == 0 {
		retention = DefaultRetention
	}
	return s.cas(ctx, "complete", completeScript, key, owner, token, outcome, millis(retention))
}

// Release gives up owner's claim on key (for example after a transient failure), if owner and token still
// hold it, so that a later Claim with the same fingerprint can try again. The record stays, without an
// owner, as a tombstone keeping the fingerprint and the token, so tokens never repeat; its TTL is
// Config.ClaimRetention. Otherwise it returns ErrLeaseLost (wrapped). Releasing twice succeeds.
func (s *Store) Release(ctx context.Context, key Key, owner string, token int64) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	if err := checkHolder(owner, token); err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return s.cas(ctx, "release", releaseScript, key, owner, token, millis(s.hold), "")
}

// ReleaseNoted is Release leaving a note on the tombstone: the next Claim of key gets it
// (Claim.Note), and so does a retry of that Claim. A caller whose call may have reached a platform
// that does not deduplicate it notes so, to recognise its own event coming back (redelivered after
// a crash before its outcome was published) and not call again.
func (s *Store) ReleaseNoted(ctx context.Context, key Key, owner string, token int64, note []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	if err := checkHolder(owner, token); err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return s.cas(ctx, "release", releaseScript, key, owner, token, millis(s.hold), note)
}

// Get returns key's record, or ErrNotFound (wrapped) if there is none, or ErrCorrupt (wrapped) if the key
// holds something else. It does not change anything.
func (s *Store) Get(ctx context.Context, key Key) (Record, error) {
	if err := checkKey(key); err != nil {
		return Record{}, fmt.Errorf("get %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("get %s: %w", key, err)
	}
	v, err := s.exec.Get(ctx, s.RedisKey(key)).Result()
	if errors.Is(err, redis.Nil) {
		return Record{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	if isCorrupt(err) {
		err = s.corrupt(key, err)
	}
	if err != nil {
		return Record{}, fmt.Errorf("get %s: %w", key, err)
	}
	r, err := decodeRecord(v)
	if err != nil {
		return Record{}, fmt.Errorf("get %s: %w", key, s.corrupt(key, err))
	}
	return r, nil
}

// run executes script on key's record; go-redis tries EVALSHA first and falls back to EVAL on NOSCRIPT.
// A record that is not ours comes back as ErrCorrupt.
func (s *Store) run(ctx context.Context, script *redis.Script, key Key, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, err := script.Run(ctx, s.exec, []string{s.RedisKey(key)}, args...).Result()
	if isCorrupt(err) {
		return nil, s.corrupt(key, err)
	}
	return v, err
}

// corrupt wraps cause, what was wrong with key's record, as an ErrCorrupt naming the Redis key.
func (s *Store) corrupt(key Key, cause error) error {
	return &corruptError{rkey: s.RedisKey(key), cause: cause}
}

// corruptError matches both ErrCorrupt and its cause.
type corruptError struct {
	rkey  string
	cause error
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("%v at %s: %v", ErrCorrupt, e.rkey, e.cause)
}

func (e *corruptError) Unwrap() []error { return []error{ErrCorrupt, e.cause} }

// isCorrupt reports whether err is Redis saying that the key holds something the store cannot read: a
// value of another type (WRONGTYPE, from GET or from a script's GET), or a string the scripts' decode
// rejected. Redis 7 reports the latter as "ERR user_script:N: dedupe: malformed record script: ...",
// Redis 6 as "ERR Error running script (...): @user_script:N: dedupe: malformed record", miniredis in
// its own words; all contain the marker. Connection errors are not Redis errors and never match; nor do
// server errors that are about the server rather than the key (LOADING, CLUSTERDOWN, READONLY, OOM, ...).
func isCorrupt(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.Contains(msg, "WRONGTYPE") || strings.Contains(msg, malformedMarker)
}

// malformedMarker is what the scripts' decode raises (scripts.go).
const malformedMarker = "dedupe: malformed record"

// cas runs a compare-and-set script that replies 1 (applied) or 0 (owner/token no longer hold the key).
func (s *Store) cas(ctx context.Context, op string, script *redis.Script, key Key, args ...any) error {
	reply, err := s.run(ctx, script, key, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	switch reply {
	case int64(1):
		return nil
	case int64(0):
		return fmt.Errorf("%s %s: %w", op, key, ErrLeaseLost)
	default:
		return fmt.Errorf("%s %s: %w", op, key, s.corrupt(key, fmt.Errorf("unexpected reply %v", reply)))
	}
}

var errMalformed = errors.New(malformedMarker)

func checkKey(k Key) error {
	switch {
	case k.Channel == "":
		return fmt.Errorf("empty channel: %w", ErrInvalid)
	case strings.Contains(k.Channel, ":"):
		return fmt.Errorf("channel %q contains ':': %w", k.Channel, ErrInvalid)
	case k.ID == "":
		return fmt.Errorf("empty id: %w", ErrInvalid)
	}
	return nil
}

func checkArgs(fingerprint, owner string, lease time.Duration) error {
	switch {
	case fingerprint == "":
		return fmt.Errorf("empty fingerprint: %w", ErrInvalid)
	case owner == "":
		return fmt.Errorf("empty owner: %w", ErrInvalid)
	case owner[0] == '\n':
		return fmt.Errorf("owner starts with a newline: %w", ErrInvalid)
	case lease <= 0:
		return fmt.Errorf("lease %v not positive: %w", lease, ErrInvalid)
	}
	return nil
}

func checkHolder(owner string, token int64) error {
	switch {
	case owner == "":
		return fmt.Errorf("empty owner: %w", ErrInvalid)
	case token <= 0:
		return fmt.Errorf("token %d not positive: %w", token, ErrInvalid)
	}
	return nil
}

// millis converts d to whole milliseconds, rounding up so that a positive duration never becomes 0.
func millis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func parseClaim(reply any) (Claim, error) {
	a, ok := reply.([]any)
	if !ok || len(a) != 7 {
		return Claim{}, fmt.Errorf("unexpected reply %v", reply)
	}
	state, ok1 := a[0].(int64)
	token, ok2 := a[1].(int64)
	owner, ok3 := a[2].(string)
	exp, ok4 := a[3].(int64)
	outcome, ok5 := a[4].(string)
	prev, ok6 := a[5].(string)
	note, ok7 := a[6].(string)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 {
		return Claim{}, fmt.Errorf("unexpected reply %v", reply)
	}
	c := Claim{Token: token, Owner: owner}
	switch state {
	case 1:
		c.State = Claimed
		c.TookOver, c.PreviousOwner = prev != "", prev
		if note != "" {
			c.Note = []byte(note)
		}
	case 2:
		c.State = InProgress
	case 3:
		c.State = Done
		c.Outcome = []byte(outcome)
	case 4:
		c.State = Conflict
	default:
		return Claim{}, fmt.Errorf("unexpected state %d in reply", state)
	}
	if c.State == Claimed || c.State == InProgress {
		c.LeaseExpires = time.UnixMilli(exp)
	}
	return c, nil
}

// decodeRecord parses a stored record; the format is described in scripts.go.
func decodeRecord(v string) (Record, error) {
	header, body, ok := strings.Cut(v, "\n")
	if !ok || len(header) < 2 {
		return Record{}, errMalformed
	}
	fields := strings.Split(header[1:], " ")
	if len(fields) != 4 {
		return Record{}, errMalformed
	}
	var n [4]int64 // token, lease expiry, len(owner), len(fingerprint)
	for i, f := range fields {
		x, err := strconv.ParseInt(f, 10, 64)
		if err != nil || x < 0 || f[0] == '+' {
			return Record{}, errMalformed
		}
		n[i] = x
	}
	lo, lf := n[2], n[3]
	if lo > int64(len(body)) || lf > int64(len(body))-lo {
		return Record{}, errMalformed
	}
	r := Record{Token: n[0], Owner: body[:lo], Fingerprint: body[lo : lo+lf]}
	switch header[0] {
	case 'c':
		r.State = Claimed
		r.LeaseExpires = time.UnixMilli(n[1])
		if rest := body[lo+lf:]; strings.HasPrefix(rest, "\n") {
			r.Note = []byte(rest[1:])
		} else {
			r.PreviousOwner = rest
		}
	case 'd':
		r.State = Done
		r.Outcome = []byte(body[lo+lf:])
	case 'r':
		r.State = Released
		if rest := body[lo+lf:]; rest != "" {
			r.Note = []byte(rest)
		}
	default:
		return Record{}, errMalformed
	}
	return r, nil
}
