package dispatch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Fingerprint is the SHA-256 (lower-case hex) of the canonical JSON text of
// {"request": request, "seller": seller}. Two events with the same
// idempotency key are the same request exactly when their fingerprints match.
//
// The canonical form does not depend on member order, white space, string
// escapes or number spelling: object members are sorted by key (byte order of
// their UTF-8), members whose value is null are dropped (null means absent
// everywhere in the event contract), there is no insignificant white space,
// strings are written with the minimal escapes (\" \\ \b \f \n \r \t and
// \u00XX for other control characters; everything else raw UTF-8), and
// numbers are written in one normal form (integers as plain digits, "-0" as
// "0", 1.50 and 15e-1 both as "1.5"; see [appendNumber]).
//
// The fingerprint is stored with completed outcomes, so this function's output
// must never change for a given input; TestFingerprintStable pins it.
func Fingerprint(request json.RawMessage, seller string) (string, error) {
	bp := fingerprintBufs.Get().(*[]byte)
	buf := append((*bp)[:0], `{"request":`...)
	var err error
	if buf, err = appendCanonical(buf, request); err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	buf = append(buf, `,"seller":`...)
	buf = appendString(buf, seller)
	buf = append(buf, '}')
	sum := sha256.Sum256(buf)
	if cap(buf) <= 64<<10 { // an outsized one is left to the collector
		*bp = buf
		fingerprintBufs.Put(bp)
	}
	return hex.EncodeToString(sum[:]), nil
}

// fingerprintBufs holds the buffers the canonical text is hashed from: it is thrown away at once.
var fingerprintBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// canonicalDepth bounds the nesting appendCanonical accepts; envelopes are
// already limited to MaxDepth.
const canonicalDepth = 2 * MaxDepth

// appendCanonical appends the canonical form of the single JSON value in data.
func appendCanonical(dst, data []byte) ([]byte, error) {
	l := &lexer{data: data}
	c := &canonState{members: make([]member, 0, 32)}
	if cap(dst)-len(dst) < len(data) {
		dst = slices.Grow(dst, 2*len(data)) // member values, then the object sorted after them
	}
	out, err := c.value(dst, l, 0)
	if err != nil {
		return nil, err
	}
	if !l.atEnd() {
		return nil, errors.New("data after the JSON value")
	}
	return out, nil
}

// canonState is what a canonical encoding keeps across nesting levels: a stack of the members
// of the objects being encoded, so that objects do not each allocate their own.
type canonState struct {
	members []member
}

// value appends the canonical form of the next JSON value to buf.
func (c *canonState) value(buf []byte, l *lexer, depth int) ([]byte, error) {
	switch ch := l.peek(); {
	case ch == '{' || ch == '[':
		if depth >= canonicalDepth {
			return nil, errors.New("nested too deeply")
		}
		if ch == '[' {
			return c.array(buf, l, depth+1)
		}
		return c.object(buf, l, depth+1)
	case ch == '"':
		s, err := l.str()
		return appendString(buf, s), err
	case ch == 't':
		return append(buf, "true"...), l.literal("true")
	case ch == 'f':
		return append(buf, "false"...), l.literal("false")
	case ch == 'n':
		return append(buf, "null"...), l.literal("null")
	case ch == '-' || (ch >= '0' && ch <= '9'):
		lit, err := l.number()
		if err != nil {
			return nil, err
		}
		return appendNumber(buf, lit)
	default:
		return nil, l.unexpected()
	}
}

func (c *canonState) array(buf []byte, l *lexer, depth int) ([]byte, error) {
	buf = append(buf, '[')
	err := l.array(func(i int) error {
		if i > 0 {
			buf = append(buf, ',')
		}
		var err error
		buf, err = c.value(buf, l, depth)
		return err
	})
	if err != nil {
		return nil, err
	}
	return append(buf, ']'), nil
}

// member is an object member whose canonical value is buf[start:end].
type member struct {
	key        string
	start, end int
}

// object appends the canonical form of the object at l to buf: each member's value is encoded
// after buf's end, then the members are written sorted after the values, and that is moved down
// to where the object starts.
func (c *canonState) object(buf []byte, l *lexer, depth int) ([]byte, error) {
	base, mbase := len(buf), len(c.members)
	defer func() { c.members = c.members[:mbase] }()
	err := l.object(func(key string) error {
		if l.peek() == 'n' { // null members are absent
			return l.literal("null")
		}
		start := len(buf)
		var err error
		buf, err = c.value(buf, l, depth)
		c.members = append(c.members, member{key, start, len(buf)})
		return err
	})
	if err != nil {
		return nil, err
	}
	members := c.members[mbase:]
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	values := len(buf)
	buf = append(buf, '{')
	for i, m := range members {
		if i > 0 {
			if m.key == members[i-1].key {
				return nil, fmt.Errorf("duplicate key %q", m.key)
			}
			buf = append(buf, ',')
		}
		buf = appendString(buf, m.key)
		buf = append(buf, ':')
		buf = append(buf, buf[m.start:m.end]...)
	}
	buf = append(buf, '}')
	n := copy(buf[base:], buf[values:])
	return buf[:base+n], nil
}

// appendString writes s as a JSON string with the minimal escapes; invalid
// UTF-8 becomes U+FFFD (see appendQuoted).
func appendString(dst []byte, s string) []byte { return appendQuoted(dst, s, false) }

// appendQuoted appends s as a JSON string: \" \\ \b \f \n \r \t, \u00XX for the other control
// characters, everything else as it is, and invalid UTF-8 as U+FFFD. htmlSafe writes what
// encoding/json writes by default on top: < > & as \u003c \u003e \u0026, U+2028 and U+2029 as
// \u2028 and \u2029, and U+FFFD as the escape \ufffd. The canonical form (htmlSafe false) must never
// change: TestFingerprintStable pins it.
func appendQuoted(dst []byte, s string, htmlSafe bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				dst = append(dst, s[start:i]...)
				if htmlSafe {
					dst = append(dst, `\ufffd`...)
				} else {
					dst = append(dst, "\ufffd"...)
				}
				start = i + 1
			case htmlSafe && (r == '\u2028' || r == '\u2029'):
				dst = append(dst, s[start:i]...)
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigit[r&0xf])
				start = i + size
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' && (!htmlSafe || (c != '<' && c != '>' && c != '&')) {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendNumber writes the JSON number literal lit in its normal form: the
// value's significant digits d (no leading or trailing zeros) and exponent e
// (value = d × 10^e) are written as
//
//   - plain digits when e >= 0 and the integer has at most 21 digits
//     ("100" for 100, 1e2 and 100.0; "-0" and "0.0" become "0");
//   - a decimal fraction when e < 0 and the point falls at most five zeros
//     before the digits ("1.5", "0.000015");
//   - otherwise scientific: d[0], "." and d[1:] if any, "e" and the
//     exponent ("1e21", "1.25e-9").
func appendNumber(dst []byte, lit string) ([]byte, error) {
	s := lit
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	exp := int64(0)
	if hasExp {
		var err error
		expText = strings.TrimPrefix(expText, "+")
		if exp, err = strconv.ParseInt(expText, 10, 32); err != nil {
			return nil, fmt.Errorf("number %q: exponent out of range", lit)
		}
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	exp -= int64(len(frac))
	if digits == "" {
		return append(dst, '0'), nil
	}
	trimmed := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(trimmed))
	digits = trimmed
	if neg {
		dst = append(dst, '-')
	}
	n := int64(len(digits))
	point := n + exp // position of the decimal point relative to digits[0]
	switch {
	case exp >= 0 && point <= 21:
		dst = append(dst, digits...)
		for range exp {
			dst = append(dst, '0')
		}
	case exp < 0 && point > 0:
		dst = append(dst, digits[:point]...)
		dst = append(dst, '.')
		dst = append(dst, digits[point:]...)
	case exp < 0 && point > -6:
		dst = append(dst, '0', '.')
		for range -point {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if n > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		dst = strconv.AppendInt(dst, point-1, 10)
	}
	return dst, nil
}
