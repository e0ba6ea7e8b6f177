package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The wire structs of the channels describe the API pages with two tags:
// `json:"name"` (the wire name; ",omitempty" on optional fields) and
// `check:"..."`, a comma-separated list of rules:
//
//	required   必须: present and not null; strings not blank; lists not empty
//	nonneg     amounts, quantities, durations, timestamps: not negative
//	date       a "yyyy-MM-dd HH:mm:ss" string
//	decimal    a string holding a decimal number: -?digits(.digits)?
//	json       a string holding a JSON text
//	max=N      a list of at most N elements (最大列表长度)
//	enum=A|B   one of the listed strings
//
// Required scalars and objects are plain values; optional ones are pointers,
// so that an absent field is not sent while a present false or 0 is.

type valueKind uint8

const (
	kindString valueKind = iota + 1
	kindInt
	kindBool
	kindStruct
	kindList      // []struct
	kindStringMap // map[string]string
)

type fieldRule struct {
	required bool
	nonneg   bool
	date     bool
	decimal  bool
	jsonText bool
	max      int
	enum     []string
}

type fieldInfo struct {
	name  string
	index int
	kind  valueKind
	ptr   bool
	elem  *structInfo // kindStruct, kindList
	rule  fieldRule
}

type structInfo struct {
	typ    reflect.Type
	fields []fieldInfo
	byName map[string]int
}

// mustStructInfo describes a wire struct. It panics on a malformed tag or an
// unsupported field type: both are programming errors in this package's
// static declarations, caught by every test.
func mustStructInfo(t reflect.Type) *structInfo {
	si, err := newStructInfo(t)
	if err != nil {
		panic("dispatch: " + err.Error())
	}
	return si
}

func newStructInfo(t reflect.Type) (*structInfo, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct", t)
	}
	if t.NumField() > 64 {
		return nil, fmt.Errorf("%s has more than 64 fields", t)
	}
	si := &structInfo{typ: t, byName: make(map[string]int, t.NumField())}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			return nil, fmt.Errorf("%s.%s has no json name", t, sf.Name)
		}
		fi := fieldInfo{name: name, index: i}
		if err := parseRule(&fi.rule, sf.Tag.Get("check")); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t, sf.Name, err)
		}
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			fi.ptr = true
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.String:
			fi.kind = kindString
		case ft.Kind() == reflect.Int64:
			fi.kind = kindInt
		case ft.Kind() == reflect.Bool:
			fi.kind = kindBool
		case ft.Kind() == reflect.Struct:
			fi.kind = kindStruct
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !fi.ptr:
			fi.kind = kindList
			ft = ft.Elem()
		case ft.Kind() == reflect.Map && ft.Key().Kind() == reflect.String && ft.Elem().Kind() == reflect.String && !fi.ptr:
			fi.kind = kindStringMap
		default:
			return nil, fmt.Errorf("%s.%s: unsupported type %s", t, sf.Name, sf.Type)
		}
		if fi.kind != kindList && fi.kind != kindStringMap && fi.ptr == fi.rule.required {
			return nil, fmt.Errorf("%s.%s: required fields must be values, optional ones pointers", t, sf.Name)
		}
		if fi.kind == kindStruct || fi.kind == kindList {
			elem, err := newStructInfo(ft)
			if err != nil {
				return nil, err
			}
			fi.elem = elem
		}
		if _, dup := si.byName[name]; dup {
			return nil, fmt.Errorf("%s: duplicate json name %q", t, name)
		}
		si.byName[name] = len(si.fields)
		si.fields = append(si.fields, fi)
	}
	return si, nil
}

func parseRule(r *fieldRule, tag string) error {
	if tag == "" {
		return nil
	}
	for part := range strings.SplitSeq(tag, ",") {
		switch {
		case part == "required":
			r.required = true
		case part == "nonneg":
			r.nonneg = true
		case part == "date":
			r.date = true
		case part == "decimal":
			r.decimal = true
		case part == "json":
			r.jsonText = true
		case strings.HasPrefix(part, "max="):
			n, err := strconv.Atoi(part[len("max="):])
			if err != nil || n <= 0 {
				return fmt.Errorf("bad rule %q", part)
			}
			r.max = n
		case strings.HasPrefix(part, "enum="):
			r.enum = strings.Split(part[len("enum="):], "|")
		default:
			return fmt.Errorf("unknown rule %q", part)
		}
	}
	return nil
}

// checkString returns why s breaks the rule, or "".
func (r *fieldRule) checkString(s string) string {
	if r.required && strings.TrimSpace(s) == "" {
		return ReasonRequired
	}
	if r.enum != nil && !slices.Contains(r.enum, s) {
		return "must be one of " + strings.Join(r.enum, ", ")
	}
	if r.date && !isDateTime(s) {
		return "not yyyy-MM-dd HH:mm:ss"
	}
	if r.decimal {
		if !isDecimal(s) {
			return "must be a decimal number"
		}
		if r.nonneg && isNegativeDecimal(s) {
			return "must not be negative"
		}
	}
	if r.jsonText && !json.Valid([]byte(s)) {
		return "must be a JSON text"
	}
	return ""
}

// parseInt parses a JSON number that must be an integer fitting int64.
func (r *fieldRule) parseInt(lit string) (int64, string) {
	if strings.ContainsAny(lit, ".eE") {
		return 0, "must be an integer"
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, "out of int64 range"
		}
		return 0, "must be an integer"
	}
	if r.nonneg && n < 0 {
		return 0, "must not be negative"
	}
	return n, ""
}

const dateTimeLayout = "2006-01-02 15:04:05"

func isDateTime(s string) bool {
	// time.Parse accepts a fractional second the layout does not have; the
	// page's format has none.
	if len(s) != len(dateTimeLayout) {
		return false
	}
	_, err := time.Parse(dateTimeLayout, s)
	return err == nil
}

// isDecimal reports whether s is -?[0-9]+(\.[0-9]+)?.
func isDecimal(s string) bool {
	s = strings.TrimPrefix(s, "-")
	intPart, frac, hasFrac := strings.Cut(s, ".")
	return allDigits(intPart) && (!hasFrac || allDigits(frac))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isNegativeDecimal reports whether a valid decimal is below zero ("-0.0" is
// not).
func isNegativeDecimal(s string) bool {
	return strings.HasPrefix(s, "-") && strings.ContainsAny(s, "123456789")
}

// binder decodes JSON strictly into a wire struct: unknown and duplicate
// fields, wrong JSON types, non-integers and out-of-range numbers are errors
// at their exact path, and every check rule is applied as values arrive. It
// stops at the first problem.
type binder struct {
	lx   lexer
	segs []seg
}

func newBinder(data []byte, root string) *binder {
	b := &binder{lx: lexer{data: data}, segs: make([]seg, 0, 8)}
	if root != "" {
		b.segs = append(b.segs, keySeg(root))
	}
	return b
}

func (b *binder) fail(reason string) error {
	return &FieldError{Path: formatPath(b.segs), Reason: reason}
}

// syntax reports a lexer error at the current path; errors about a whole
// message value (empty path) give the byte offset.
func (b *binder) syntax(err error) error {
	var se *syntaxError
	if len(b.segs) == 0 && errors.As(err, &se) {
		return b.fail(fmt.Sprintf("invalid JSON at offset %d: %s", se.off, se.msg))
	}
	return b.fail("invalid JSON: " + err.Error())
}

// end checks that nothing but white space follows the decoded value.
func (b *binder) end(root int) error {
	b.segs = b.segs[:root]
	if !b.lx.atEnd() {
		return b.fail("invalid JSON: data after the value")
	}
	return nil
}

// value decodes the next JSON value into v, described by f.
func (b *binder) value(v reflect.Value, f *fieldInfo) error {
	c := b.lx.peek()
	if !isValueStart(c) {
		return b.syntax(b.lx.unexpected())
	}
	if c == 'n' { // null: absent
		if err := b.lx.literal("null"); err != nil {
			return b.syntax(err)
		}
		if f.rule.required {
			return b.fail(ReasonRequired)
		}
		return nil
	}
	switch f.kind {
	case kindString:
		if c != '"' {
			return b.fail("must be a string")
		}
		s, err := b.lx.str()
		if err != nil {
			return b.syntax(err)
		}
		if reason := f.rule.checkString(s); reason != "" {
			return b.fail(reason)
		}
		setScalar(v, reflect.ValueOf(s), f.ptr)
	case kindInt:
		if c != '-' && (c < '0' || c > '9') {
			return b.fail("must be a number")
		}
		lit, err := b.lx.number()
		if err != nil {
			return b.syntax(err)
		}
		n, reason := f.rule.parseInt(lit)
		if reason != "" {
			return b.fail(reason)
		}
		setScalar(v, reflect.ValueOf(n), f.ptr)
	case kindBool:
		var err error
		switch c {
		case 't':
			err = b.lx.literal("true")
		case 'f':
			err = b.lx.literal("false")
		default:
			return b.fail("must be a boolean")
		}
		if err != nil {
			return b.syntax(err)
		}
		setScalar(v, reflect.ValueOf(c == 't'), f.ptr)
	case kindStruct:
		if c != '{' {
			return b.fail("must be an object")
		}
		target := v
		if f.ptr {
			p := reflect.New(f.elem.typ)
			v.Set(p)
			target = p.Elem()
		}
		return b.object(target, f.elem)
	case kindList:
		if c != '[' {
			return b.fail("must be an array")
		}
		return b.list(v, f)
	case kindStringMap:
		if c != '{' {
			return b.fail("must be an object")
		}
		return b.stringMap(v)
	}
	return nil
}

func setScalar(v, x reflect.Value, ptr bool) {
	if ptr {
		p := reflect.New(x.Type())
		p.Elem().Set(x)
		v.Set(p)
		return
	}
	v.Set(x)
}

// errReported stops the lexer's member or element loop after a callback
// recorded its own field error, so that the caller reports that error rather
// than a syntax error.
var errReported = errors.New("reported")

// object decodes the members of the object at the lexer's position.
func (b *binder) object(v reflect.Value, si *structInfo) error {
	var seen uint64
	var fieldErr error
	err := b.lx.object(func(key string) error {
		b.segs = append(b.segs, keySeg(key))
		i, ok := si.byName[key]
		switch {
		case !ok:
			fieldErr = b.fail("unknown field")
		case seen&(1<<i) != 0:
			fieldErr = b.fail("duplicate field")
		default:
			seen |= 1 << i
			f := &si.fields[i]
			fieldErr = b.value(v.Field(f.index), f)
		}
		if fieldErr != nil {
			return errReported
		}
		b.segs = b.segs[:len(b.segs)-1]
		return nil
	})
	switch {
	case fieldErr != nil:
		return fieldErr
	case err != nil:
		return b.syntax(err)
	}
	for i := range si.fields {
		if f := &si.fields[i]; f.rule.required && seen&(1<<i) == 0 {
			b.segs = append(b.segs, keySeg(f.name))
			return b.fail(ReasonRequired)
		}
	}
	return nil
}

func (b *binder) list(v reflect.Value, f *fieldInfo) error {
	n := 0
	var fieldErr error
	err := b.lx.array(func(i int) error {
		b.segs = append(b.segs, seg{idx: i})
		switch {
		case f.rule.max > 0 && i == f.rule.max:
			b.segs = b.segs[:len(b.segs)-1]
			fieldErr = b.fail(fmt.Sprintf("more than %d elements", f.rule.max))
		case b.lx.peek() != '{':
			if !isValueStart(b.lx.peek()) {
				fieldErr = b.syntax(b.lx.unexpected())
			} else {
				fieldErr = b.fail("must be an object")
			}
		default:
			elem := reflect.New(f.elem.typ).Elem()
			if fieldErr = b.object(elem, f.elem); fieldErr == nil {
				v.Set(reflect.Append(v, elem))
			}
		}
		if fieldErr != nil {
			return errReported
		}
		b.segs = b.segs[:len(b.segs)-1]
		n++
		return nil
	})
	switch {
	case fieldErr != nil:
		return fieldErr
	case err != nil:
		return b.syntax(err)
	case n == 0 && f.rule.required:
		return b.fail("must not be empty")
	}
	return nil
}

func (b *binder) stringMap(v reflect.Value) error {
	m := make(map[string]string)
	var fieldErr error
	err := b.lx.object(func(key string) error {
		b.segs = append(b.segs, keySeg(key))
		_, dup := m[key]
		switch c := b.lx.peek(); {
		case dup:
			fieldErr = b.fail("duplicate field")
		case !isValueStart(c):
			fieldErr = b.syntax(b.lx.unexpected())
		case c != '"':
			fieldErr = b.fail("must be a string")
		default:
			s, err := b.lx.str()
			if err != nil {
				fieldErr = b.syntax(err)
			}
			m[key] = s
		}
		if fieldErr != nil {
			return errReported
		}
		b.segs = b.segs[:len(b.segs)-1]
		return nil
	})
	switch {
	case fieldErr != nil:
		return fieldErr
	case err != nil:
		return b.syntax(err)
	}
	v.Set(reflect.ValueOf(m))
	return nil
}

// decodeObject decodes data, which must hold one JSON object, into v (a
// struct described by si). root is the first path segment of errors.
func decodeObject(data []byte, root string, v reflect.Value, si *structInfo) error {
	b := newBinder(data, root)
	nroot := len(b.segs)
	switch c := b.lx.peek(); {
	case c == 0 && b.lx.atEnd():
		return b.fail(ReasonRequired)
	case c == 'n':
		if err := b.lx.literal("null"); err != nil {
			return b.syntax(err)
		}
		if err := b.end(nroot); err != nil {
			return err
		}
		return b.fail(ReasonRequired)
	case c == '{':
	case !isValueStart(c):
		return b.syntax(b.lx.unexpected())
	default:
		return b.fail("must be an object")
	}
	if err := b.object(v, si); err != nil {
		return err
	}
	return b.end(nroot)
}

// systemParams are the gateway's own form parameters; CheckParams skips them
// if a caller passes the whole form.
var systemParams = map[string]bool{
	"method": true, "app_key": true, "timestamp": true, "v": true, "sign": true,
	"sign_method": true, "session": true, "format": true, "partner_id": true,
	"simplify": true, "target_app_key": true,
}

// decodeParams decodes form parameters as sent to the gateway (objects and
// lists as JSON text, scalars as strings) into v, a top-level request struct.
// Error paths start at the parameter name.
func decodeParams(params map[string]string, v reflect.Value, si *structInfo) error {
	var unknown []string
	for name := range params {
		if _, ok := si.byName[name]; !ok && !systemParams[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return &FieldError{Path: formatPath([]seg{keySeg(unknown[0])}), Reason: "unknown parameter"}
	}
	for i := range si.fields {
		f := &si.fields[i]
		raw := params[f.name]
		fail := func(reason string) error {
			return &FieldError{Path: formatPath([]seg{keySeg(f.name)}), Reason: reason}
		}
		if raw == "" {
			if f.rule.required {
				return fail(ReasonRequired)
			}
			continue
		}
		if !utf8.ValidString(raw) {
			return fail("not valid UTF-8")
		}
		fv := v.Field(f.index)
		switch f.kind {
		case kindString:
			if reason := f.rule.checkString(raw); reason != "" {
				return fail(reason)
			}
			setScalar(fv, reflect.ValueOf(raw), f.ptr)
		case kindInt:
			n, reason := f.rule.parseInt(raw)
			if reason != "" {
				return fail(reason)
			}
			setScalar(fv, reflect.ValueOf(n), f.ptr)
		case kindBool:
			if raw != "true" && raw != "false" {
				return fail("must be true or false")
			}
			setScalar(fv, reflect.ValueOf(raw == "true"), f.ptr)
		default:
			b := newBinder([]byte(raw), f.name)
			if err := b.value(fv, f); err != nil {
				return err
			}
			if err := b.end(1); err != nil {
				return err
			}
		}
	}
	return nil
}
