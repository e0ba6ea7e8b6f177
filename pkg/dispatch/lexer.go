package dispatch

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// lexer reads one JSON text (RFC 8259) held in memory. It accepts exactly
// what encoding/json accepts (FuzzLexer checks this against json.Valid) and
// decodes strings the same way (invalid UTF-8 and lone surrogates become
// U+FFFD), but it does not allocate for structure or punctuation: the
// callers drive it with peek, str, number, literal, object and array.
type lexer struct {
	data []byte
	pos  int
	// text is data as a string, made on the first string or number read: every string without
	// escapes is then a substring of it, one allocation for the whole text instead of one per
	// key and value.
	text string
}

// slice returns data[start:end] as a string sharing the lexer's one copy of the text.
func (l *lexer) slice(start, end int) string {
	if len(l.text) != len(l.data) {
		l.text = string(l.data)
	}
	return l.text[start:end]
}

// syntaxError is a JSON syntax error at byte offset off of the text.
type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string { return e.msg }

// eof is the syntax error for a text that ends too early.
func (l *lexer) eof() error {
	return &syntaxError{msg: "unexpected end of input", off: len(l.data)}
}

// skipDepth bounds the nesting skip accepts; callers limit depth earlier.
const skipDepth = 512

// peek skips white space and returns the next byte, or 0 at the end.
func (l *lexer) peek() byte {
	for l.pos < len(l.data) {
		switch c := l.data[l.pos]; c {
		case ' ', '\t', '\n', '\r':
			l.pos++
		default:
			return c
		}
	}
	return 0
}

// unexpected describes the byte at pos as a syntax error.
func (l *lexer) unexpected() error {
	if l.pos >= len(l.data) {
		return l.eof()
	}
	r, _ := utf8.DecodeRune(l.data[l.pos:])
	return &syntaxError{msg: fmt.Sprintf("unexpected %q", r), off: l.pos}
}

// atEnd reports whether only white space is left.
func (l *lexer) atEnd() bool { return l.peek() == 0 && l.pos == len(l.data) }

// isValueStart reports whether c can start a JSON value.
func isValueStart(c byte) bool {
	switch c {
	case '{', '[', '"', '-', 't', 'f', 'n':
		return true
	}
	return c >= '0' && c <= '9'
}

// literal reads true, false or null (word) at pos.
func (l *lexer) literal(word string) error {
	if len(l.data)-l.pos < len(word) {
		l.pos = len(l.data)
		return l.eof()
	}
	for i := 0; i < len(word); i++ {
		if l.data[l.pos] != word[i] {
			return l.unexpected()
		}
		l.pos++
	}
	return nil
}

// number reads a number at pos and returns its literal text.
func (l *lexer) number() (string, error) {
	start := l.pos
	if l.pos < len(l.data) && l.data[l.pos] == '-' {
		l.pos++
	}
	switch {
	case l.pos >= len(l.data):
		return "", l.eof()
	case l.data[l.pos] == '0':
		l.pos++
	case l.data[l.pos] >= '1' && l.data[l.pos] <= '9':
		l.digits()
	default:
		return "", l.unexpected()
	}
	if l.pos < len(l.data) && l.data[l.pos] == '.' {
		l.pos++
		if l.digits() == 0 {
			return "", l.unexpected()
		}
	}
	if l.pos < len(l.data) && (l.data[l.pos] == 'e' || l.data[l.pos] == 'E') {
		l.pos++
		if l.pos < len(l.data) && (l.data[l.pos] == '+' || l.data[l.pos] == '-') {
			l.pos++
		}
		if l.digits() == 0 {
			return "", l.unexpected()
		}
	}
	return l.slice(start, l.pos), nil
}

func (l *lexer) digits() int {
	n := 0
	for l.pos < len(l.data) && l.data[l.pos] >= '0' && l.data[l.pos] <= '9' {
		l.pos++
		n++
	}
	return n
}

// str reads a string at pos (its opening quote) and returns its value.
func (l *lexer) str() (string, error) {
	l.pos++ // '"'
	start := l.pos
	// Fast path: no escapes, ASCII or valid UTF-8.
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		switch {
		case c == '"':
			s := l.slice(start, l.pos)
			l.pos++
			return s, nil
		case c == '\\' || c < 0x20:
			return l.strSlow(start)
		case c < utf8.RuneSelf:
			l.pos++
		default:
			r, size := utf8.DecodeRune(l.data[l.pos:])
			if r == utf8.RuneError && size == 1 {
				return l.strSlow(start)
			}
			l.pos += size
		}
	}
	return "", l.eof()
}

// strSlow decodes escapes and replaces invalid UTF-8, from start (just after
// the opening quote).
func (l *lexer) strSlow(start int) (string, error) {
	buf := make([]byte, 0, l.pos-start+16)
	buf = append(buf, l.data[start:l.pos]...)
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		switch {
		case c == '"':
			l.pos++
			return string(buf), nil
		case c < 0x20:
			return "", l.unexpected()
		case c == '\\':
			l.pos++
			if l.pos >= len(l.data) {
				return "", l.eof()
			}
			switch e := l.data[l.pos]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, bad := hex4(l.data[l.pos+1:])
				if bad >= 0 {
					l.pos += 1 + bad
					return "", l.unexpected()
				}
				l.pos += 4
				if utf16.IsSurrogate(r) {
					// A valid pair is one rune; anything else is U+FFFD and
					// the next escape is read on its own (as encoding/json).
					r2 := rune(-1)
					if rest := l.data[l.pos+1:]; len(rest) >= 6 && rest[0] == '\\' && rest[1] == 'u' {
						if x, bad := hex4(rest[2:]); bad < 0 {
							r2 = x
						}
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
						l.pos += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", l.unexpected()
			}
			l.pos++
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			l.pos++
		default:
			r, size := utf8.DecodeRune(l.data[l.pos:])
			buf = utf8.AppendRune(buf, r) // invalid bytes: U+FFFD
			l.pos += size
		}
	}
	return "", l.eof()
}

// hex4 parses four hex digits at the start of b. bad is the index of the
// first byte that is not one (len(b) when b is too short), or -1.
func hex4(b []byte) (r rune, bad int) {
	for i := range 4 {
		if i >= len(b) {
			return 0, len(b)
		}
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, i
		}
		r = r<<4 | rune(c)
	}
	return r, -1
}

// object reads an object whose '{' is at pos, calling member for each
// member with its key; member must read the value.
func (l *lexer) object(member func(key string) error) error {
	l.pos++ // '{'
	if l.peek() == '}' {
		l.pos++
		return nil
	}
	for {
		if l.peek() != '"' {
			return l.unexpected()
		}
		key, err := l.str()
		if err != nil {
			return err
		}
		if l.peek() != ':' {
			return l.unexpected()
		}
		l.pos++
		if err := member(key); err != nil {
			return err
		}
		switch l.peek() {
		case ',':
			l.pos++
		case '}':
			l.pos++
			return nil
		default:
			return l.unexpected()
		}
	}
}

// array reads an array whose '[' is at pos, calling elem for each element
// with its index; elem must read the value.
func (l *lexer) array(elem func(i int) error) error {
	l.pos++ // '['
	if l.peek() == ']' {
		l.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := elem(i); err != nil {
			return err
		}
		switch l.peek() {
		case ',':
			l.pos++
		case ']':
			l.pos++
			return nil
		default:
			return l.unexpected()
		}
	}
}

// skip reads any one value.
func (l *lexer) skip(depth int) error {
	switch c := l.peek(); {
	case c == '{':
		if depth >= skipDepth {
			return &syntaxError{msg: "nested too deeply", off: l.pos}
		}
		return l.object(func(string) error { return l.skip(depth + 1) })
	case c == '[':
		if depth >= skipDepth {
			return &syntaxError{msg: "nested too deeply", off: l.pos}
		}
		return l.array(func(int) error { return l.skip(depth + 1) })
	case c == '"':
		_, err := l.str()
		return err
	case c == 't':
		return l.literal("true")
	case c == 'f':
		return l.literal("false")
	case c == 'n':
		return l.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := l.number()
		return err
	default:
		return l.unexpected()
	}
}
