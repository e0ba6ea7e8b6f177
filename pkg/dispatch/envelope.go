package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the input event: what is rejected before the value is parsed further.
const (
	// DefaultMaxBytes is the largest message value DecodeEnvelope accepts
	// when its maxBytes is 0 or negative: 1 MiB.
	DefaultMaxBytes = 1 << 20
	// MaxDepth is the deepest nesting of objects and arrays accepted in a
	// message value; the envelope object itself is level 1, so `request` is
	// level 2.
	MaxDepth = 32
	// MaxEventIDLen is the longest event_id, in characters (Unicode code
	// points, not bytes).
	MaxEventIDLen = 128
	// MaxIdempotencyKeyLen is the longest envelope idempotency_key, and the
	// longest request value a channel's default key is derived from, in
	// characters.
	MaxIdempotencyKeyLen = 256
)

// Envelope is a decoded input event. Unknown top-level fields
// of the message are ignored.
type Envelope struct {
	// EventID identifies the event: 1..MaxEventIDLen characters.
	EventID string `json:"event_id"`
	// IdempotencyKey overrides the channel's default key when not empty.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// OccurredAt is an RFC 3339 time, or empty.
	OccurredAt string `json:"occurred_at,omitempty"`
	// Seller selects the seller's session key; empty for the default seller.
	Seller string `json:"seller,omitempty"`
	// Request is the JSON object of the API's business parameters, as it
	// appeared in the message (a copy: it does not alias the decoded value).
	Request json.RawMessage `json:"request"`
}

// DecodeEnvelope decodes one message value into an Envelope, checking in this
// order, each before looking further: the size (len(value) <= maxBytes;
// maxBytes <= 0 means DefaultMaxBytes), valid UTF-8, a nesting depth of at
// most MaxDepth (a byte scan, no parsing), JSON syntax, a top-level object,
// and then the fields: event_id (required, not blank), idempotency_key (not
// blank), occurred_at, seller (strings; null or "" is absent) and request
// (required, an object; its content is checked by [Channel.Prepare]).
//
// Every failure is a *[FieldError]. Failures about the value as a whole have
// an empty Path; field failures name the field ("event_id: required",
// "occurred_at: not RFC 3339"). A duplicate top-level field is rejected
// rather than resolved in favour of either copy. It is safe for concurrent
// use.
func DecodeEnvelope(value []byte, maxBytes int) (*Envelope, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(value) > maxBytes {
		return nil, &FieldError{Reason: fmt.Sprintf("value is %d bytes, more than the %d allowed", len(value), maxBytes)}
	}
	if !utf8.Valid(value) {
		return nil, &FieldError{Reason: "value is not valid UTF-8"}
	}
	if tooDeep(value, MaxDepth) {
		return nil, &FieldError{Reason: fmt.Sprintf("value is nested more than %d levels deep", MaxDepth)}
	}

	b := newBinder(value, "")
	lx := &b.lx
	switch c := lx.peek(); {
	case c == 0 && lx.atEnd():
		return nil, &FieldError{Reason: "value is empty"}
	case c == '{':
	case !isValueStart(c):
		return nil, b.syntax(lx.unexpected())
	default:
		return nil, &FieldError{Reason: "value is not a JSON object"}
	}
	env := &Envelope{}
	var seen [5]bool
	var hasRequest bool
	var fieldErr error
	err := lx.object(func(key string) error {
		fail := func(reason string) error {
			fieldErr = &FieldError{Path: formatPath([]seg{keySeg(key)}), Reason: reason}
			return errReported
		}
		var dst *string
		slot := -1
		switch key {
		case "event_id":
			dst, slot = &env.EventID, 0
		case "idempotency_key":
			dst, slot = &env.IdempotencyKey, 1
		case "occurred_at":
			dst, slot = &env.OccurredAt, 2
		case "seller":
			dst, slot = &env.Seller, 3
		case "request":
			slot = 4
		}
		if slot >= 0 {
			if seen[slot] {
				return fail("duplicate field")
			}
			seen[slot] = true
		}
		c := lx.peek()
		switch {
		case slot < 0: // unknown envelope field: ignored, but must be valid JSON
			return lx.skip(1)
		case !isValueStart(c):
			return lx.unexpected()
		case c == 'n':
			return lx.literal("null")
		case slot == 4:
			if c != '{' {
				return fail("must be an object")
			}
			start := lx.pos
			if err := lx.skip(1); err != nil {
				return err
			}
			env.Request, hasRequest = bytes.Clone(lx.data[start:lx.pos]), true
			return nil
		case c != '"':
			return fail("must be a string")
		default:
			s, err := lx.str()
			*dst = s
			return err
		}
	})
	switch {
	case fieldErr != nil:
		return nil, fieldErr
	case err != nil:
		return nil, b.syntax(err)
	}
	if err := b.end(0); err != nil {
		return nil, err
	}

	switch n := utf8.RuneCountInString(env.EventID); {
	case strings.TrimSpace(env.EventID) == "":
		return nil, &FieldError{Path: "event_id", Reason: ReasonRequired}
	case n > MaxEventIDLen:
		return nil, &FieldError{Path: "event_id", Reason: fmt.Sprintf("longer than %d characters", MaxEventIDLen)}
	}
	switch {
	case utf8.RuneCountInString(env.IdempotencyKey) > MaxIdempotencyKeyLen:
		return nil, &FieldError{Path: "idempotency_key", Reason: fmt.Sprintf("longer than %d characters", MaxIdempotencyKeyLen)}
	case env.IdempotencyKey != "" && strings.TrimSpace(env.IdempotencyKey) == "":
		// Every event with this key would be a duplicate of the first.
		return nil, &FieldError{Path: "idempotency_key", Reason: "blank"}
	}
	if env.OccurredAt != "" {
		if _, err := time.Parse(time.RFC3339, env.OccurredAt); err != nil {
			return nil, &FieldError{Path: "occurred_at", Reason: "not RFC 3339"}
		}
	}
	if !hasRequest {
		return nil, &FieldError{Path: "request", Reason: ReasonRequired}
	}
	return env, nil
}

// tooDeep reports whether data nests objects and arrays more than limit
// levels deep. It only tracks strings and brackets, so it is cheap and safe
// on any input, valid JSON or not.
func tooDeep(data []byte, limit int) bool {
	depth := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			if depth++; depth > limit {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}
