package dispatch

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lexAny decodes data with the lexer into the shapes encoding/json produces
// with UseNumber (numbers as json.Number), for differential testing.
func lexAny(data []byte) (any, error) {
	l := &lexer{data: data}
	v, err := lexValue(l)
	if err != nil {
		return nil, err
	}
	if !l.atEnd() {
		return nil, l.unexpected()
	}
	return v, nil
}

func lexValue(l *lexer) (any, error) {
	switch c := l.peek(); {
	case c == '{':
		m := map[string]any{}
		err := l.object(func(key string) error {
			v, err := lexValue(l)
			m[key] = v
			return err
		})
		return m, err
	case c == '[':
		a := []any{}
		err := l.array(func(int) error {
			v, err := lexValue(l)
			a = append(a, v)
			return err
		})
		return a, err
	case c == '"':
		return l.str()
	case c == 't':
		return true, l.literal("true")
	case c == 'f':
		return false, l.literal("false")
	case c == 'n':
		return nil, l.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		lit, err := l.number()
		return json.Number(lit), err
	default:
		return nil, l.unexpected()
	}
}

func stdAny(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

var lexerCases = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e+10`, `-12.25E-3`, `true`, `false`, `null`,
	" \t\r\n{ \"a\" : [ 1 , { } ] } \n",
	`"\"\\\/\b\f\n\r\t"`, `"\u00e9\u4E2D"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`,
	`"\ud83d\ud83d\ude00"`, "\"\xff\xfe\"", "\"a\xc3\"", "\"\u2028\x7f\"", `{"a":1,"a":2}`,
	// invalid
	``, ` `, `{`, `}`, `[1,]`, `[,1]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{a:1}`, `{'a':1}`, `01`, `1.`, `.1`,
	`-`, `+1`, `1e`, `1e+`, `0x10`, `tru`, `nul`, `falsey`, `"abc`, `"\x"`, `"\u12"`, `"\u12G4"`,
	"\"a\x01\"", "\"tab\there\"", `[1 2]`, `{"a":1 "b":2}`, `NaN`, `Infinity`, `"\`, `1 2`, "\x00",
	// canonicalisation
	`{"b":1,"a":[1.50,-0,1e400,"\u00e9"]}`, `[1e-400]`, `{"a":{"a":null}}`, `[0,-0,1.0,15e-1,1e21,1e-7,123456789012345678901234567890]`,
}

func TestLexerMatchesEncodingJSON(t *testing.T) {
	for _, in := range lexerCases {
		got, gotErr := lexAny([]byte(in))
		want, wantErr := stdAny([]byte(in))
		if json.Valid([]byte(in)) != (gotErr == nil) {
			t.Errorf("%q: lexer error %v, json.Valid %v", in, gotErr, json.Valid([]byte(in)))
			continue
		}
		// reflect.DeepEqual first: cmp.Diff is exponential on deeply nested
		// slices, so it only explains a difference.
		if wantErr == nil && gotErr == nil && !reflect.DeepEqual(want, got) {
			t.Errorf("%q (-encoding/json +lexer):\n%s", in, cmp.Diff(want, got))
		}
	}
}

func FuzzLexer(f *testing.F) {
	for _, in := range lexerCases {
		f.Add([]byte(in))
	}
	for _, v := range SeedEvents() {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if tooDeep(data, skipDepth) {
			return // both would accept; the lexer's callers bound depth
		}
		got, gotErr := lexAny(data)
		valid := json.Valid(data)
		if valid != (gotErr == nil) {
			t.Fatalf("%q: lexer error %v, json.Valid %v", data, gotErr, valid)
		}
		if !valid {
			return
		}
		want, err := stdAny(data)
		if err != nil {
			t.Fatalf("%q: encoding/json: %v", data, err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%q (-encoding/json +lexer):\n%s", data, cmp.Diff(want, got))
		}
		l := &lexer{data: data}
		if err := l.skip(0); err != nil || !l.atEnd() {
			t.Fatalf("%q: skip: %v, at %d of %d", data, err, l.pos, len(data))
		}
		// Canonical JSON is valid JSON and a fixed point (it fails only on
		// duplicate keys, huge exponents or depth).
		canon, err := appendCanonical(nil, data)
		if err != nil {
			return
		}
		if !json.Valid(canon) {
			t.Fatalf("canonical(%q) = %q is not JSON", data, canon)
		}
		if again, err := appendCanonical(nil, canon); err != nil || string(again) != string(canon) {
			t.Fatalf("canonical(%q) = %q, then %q (%v)", data, canon, again, err)
		}
	})
}
