package dispatch

import (
	"errors"
	"strconv"
	"strings"
)

// ReasonRequired is the [FieldError.Reason] of a field that is absent, null,
// or (for strings) empty or blank where the API page marks it 必须.
const ReasonRequired = "required"

// ErrUnknownMethod is returned (wrapped) by [Registry.CheckParams] for a
// method no channel of the registry calls.
var ErrUnknownMethod = errors.New("unknown method")

// FieldError is an event or a request that does not match its contract.
//
// Path is a JSON path into the message value: "event_id",
// "request.goods_details[3].price", or, for keys that are not plain
// identifiers, `request["odd key"]`. Errors about the value as a whole (too
// large, not UTF-8, nested too deeply, not JSON, not an object) have an empty
// Path. Paths reported by [Registry.CheckParams] start at the form parameter
// name instead ("goods_details[0].price").
//
// Reason is a short lower-case phrase: [ReasonRequired], "unknown field",
// "must be a string", "must be one of ALIPAY, BANK_CARD", ...
type FieldError struct {
	Path   string
	Reason string
}

// *FieldError is what the gateway simulator expects of a failed field check.
var _ interface {
	error
	FieldPath() string
	Missing() bool
} = (*FieldError)(nil)

// Error is Path + ": " + Reason, or Reason alone when Path is empty.
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// FieldPath returns Path.
func (e *FieldError) FieldPath() string { return e.Path }

// Missing reports whether the field is required and was not given
// (Reason == [ReasonRequired]).
func (e *FieldError) Missing() bool { return e.Reason == ReasonRequired }

// seg is one step of a JSON path: an object key, or a list index when idx >= 0.
type seg struct {
	key string
	idx int
}

func keySeg(k string) seg { return seg{key: k, idx: -1} }

// formatPath renders segs as "a.b[3].c"; keys that are not identifiers are
// written as ["key"] so that every path is unambiguous.
func formatPath(segs []seg) string {
	var b strings.Builder
	for i, s := range segs {
		if s.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
			continue
		}
		if !isIdent(s.key) {
			b.WriteByte('[')
			b.WriteString(strconv.Quote(s.key))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

// joinPath joins a root ("request" or "" for form parameters) and plain keys.
func joinPath(root string, keys ...string) string {
	segs := make([]seg, 0, len(keys)+1)
	if root != "" {
		segs = append(segs, keySeg(root))
	}
	for _, k := range keys {
		segs = append(segs, keySeg(k))
	}
	return formatPath(segs)
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && c != '-' && (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}
