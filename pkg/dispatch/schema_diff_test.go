package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The differential test: every seed event and a generated corpus of mutations of it run through
// the worker's validator (DecodeEnvelope + Channel.Prepare) and through the channel's generated
// JSON Schema. They must agree on every case the schema can express; a case only the worker can
// judge must be one of SchemaLimits, and every limit must be shown by at least one case.

// diffCase is one message value for one channel.
type diffCase struct {
	name    string
	channel string
	value   []byte
	// limit is the SchemaLimit the case breaks on purpose (the worker rejects, the schema
	// accepts); "" means the two must agree.
	limit string
}

// compileEventSchemas compiles the generated schema of every channel with a JSON Schema 2020-12
// validator (which also checks each against the 2020-12 meta-schema).
func compileEventSchemas(t testing.TB) map[string]*jsonschema.Schema {
	t.Helper()
	files, err := ContractFiles()
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	out := map[string]*jsonschema.Schema{}
	for _, id := range append(ChannelIDs(), "") {
		name := schemaFile(id)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(files["schemas/"+name]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.AddResource(SchemaBaseURL+name, doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s, err := c.Compile(SchemaBaseURL + name)
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		out[id] = s
	}
	return out
}

// schemaVerdict validates value as a JSON Schema validator sees it: parsed by a JSON parser
// (encoding/json: the first value, invalid UTF-8 and lone surrogates replaced, the last of
// duplicate members kept). A value no parser reads is rejected.
func schemaVerdict(s *jsonschema.Schema, value []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		if bytes.Contains([]byte(err.Error()), []byte("invalid character")) && json.Valid(firstValue(value)) {
			doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(firstValue(value)))
		}
		if err != nil {
			return err
		}
	}
	return s.Validate(doc)
}

// firstValue returns the first JSON value of data (what a streaming parser reads).
func firstValue(data []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if dec.Decode(&raw) != nil {
		return nil
	}
	return raw
}

// workerResult is what the worker's checks say of a value: decodeErr is what the schema should match
// (the envelope and the request's wire structs), err is the whole of Prepare, and phase says
// where an error beyond decoding came from ("rules" or "key").
type workerResult struct {
	decodeErr, err error
	phase          string
}

func workerVerdict(ch *Channel, value []byte) workerResult {
	env, err := DecodeEnvelope(value, 0)
	if err != nil {
		return workerResult{err, err, "decode"}
	}
	v, req := ch.spec.newRequest()
	if err := decodeObject(env.Request, "request", v, ch.spec.info); err != nil {
		return workerResult{err, err, "decode"}
	}
	if _, err := ch.Prepare(env); err != nil {
		if req.rules("request") != nil {
			return workerResult{nil, err, "rules"}
		}
		return workerResult{nil, err, "key"}
	}
	return workerResult{}
}

// phaseLimit names the SchemaLimit behind an error of Prepare's rules or key derivation.
func phaseLimit(phase string, err error) string {
	switch {
	case phase == "key":
		return "default-key"
	case strings.Contains(err.Error(), "cannot both be empty"):
		return "not-both-empty"
	case strings.Contains(err.Error(), "must equal Σ"):
		return "cross-field-sum"
	}
	return ""
}

func TestSchemaWorkerAgree(t *testing.T) {
	schemas := compileEventSchemas(t)
	reg := registry(t)
	limits := map[string]bool{}
	for _, l := range SchemaLimits() {
		limits[l.ID] = true
	}

	var cases []diffCase
	for _, id := range ChannelIDs() {
		cases = append(cases, diffCases(t, id)...)
	}
	shown := map[string]int{}
	agreed := 0
	for _, c := range cases {
		ch, _ := reg.ByID(c.channel)
		w := workerVerdict(ch, c.value)
		decodeErr, err, phase := w.decodeErr, w.err, w.phase
		schemaErr := schemaVerdict(schemas[c.channel], c.value)
		switch {
		case c.limit != "":
			if !limits[c.limit] {
				t.Fatalf("%s: limit %q is not in SchemaLimits", c.name, c.limit)
			}
			if err == nil || schemaErr != nil {
				t.Errorf("%s: breaks only %s: want the worker to reject and the schema to accept; worker: %v, schema: %v\n%s",
					c.name, c.limit, err, schemaErr, clip(c.value))
				continue
			}
			shown[c.limit]++
		case (decodeErr == nil) != (schemaErr == nil):
			t.Errorf("%s: the worker and the schema disagree\nworker: %v\nschema: %v\n%s", c.name, decodeErr, schemaErr, clip(c.value))
			continue
		case err != nil && schemaErr == nil:
			limit := phaseLimit(phase, err)
			if limit == "" {
				t.Errorf("%s: the worker rejects (%s: %v) what the schema accepts, and no SchemaLimit explains it\n%s", c.name, phase, err, clip(c.value))
				continue
			}
			shown[limit]++
		default:
			agreed++
		}
	}
	t.Logf("%d cases: %d agreed; shown only by the worker: %v", len(cases), agreed, shown)
	for _, l := range SchemaLimits() {
		if l.ID == "session" { // depends on the deployment, not on the event
			continue
		}
		if shown[l.ID] == 0 {
			t.Errorf("no case shows the limit %q: add one, or drop the limit if the schema now expresses it", l.ID)
		}
	}
	if agreed < 1000 {
		t.Errorf("only %d agreeing cases: the corpus lost its mutations", agreed)
	}
}

func outcomeFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "outcome", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

// diffCases builds the corpus of one channel from its seed event.
func diffCases(t testing.TB, id string) []diffCase {
	t.Helper()
	base := decodeOrderedT(t, seed(t, id))
	g := &corpus{t: t, channel: id, base: base}
	g.add("seed", base, "")
	g.envelope()
	spec := channel(t, id).spec
	req, _ := base.get("request")
	g.object([]string{"request"}, req.(obj), spec.info)
	return g.cases
}

func decodeOrderedT(t testing.TB, b []byte) obj {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		t.Fatal(err)
	}
	return v.(obj)
}

// corpus collects the mutations of one seed event. Paths are lists of member names and list
// indexes ("0").
type corpus struct {
	t       testing.TB
	channel string
	base    obj
	cases   []diffCase
}

func (g *corpus) add(name string, doc any, limit string) {
	b, err := marshalNoEscape(doc)
	if err != nil {
		g.t.Fatalf("%s: %v", name, err)
	}
	g.addRaw(name, b, limit)
}

func (g *corpus) addRaw(name string, value []byte, limit string) {
	g.cases = append(g.cases, diffCase{name: g.channel + ": " + name, channel: g.channel, value: value, limit: limit})
}

// with returns a copy of the base event with the value at path replaced by v (removed when v is
// removed, appended as a duplicate member when dup).
func (g *corpus) with(path []string, v any) any { return replace(g.base, path, v, false) }

type removedValue struct{}

var removed = removedValue{}

func replace(node any, path []string, v any, dup bool) any {
	if len(path) == 0 {
		return v
	}
	switch n := node.(type) {
	case obj:
		out := make(obj, 0, len(n)+1)
		found := false
		for _, m := range n {
			if m.key != path[0] {
				out = append(out, m)
				continue
			}
			found = true
			if len(path) == 1 && dup {
				out = append(out, m, kv{m.key, v})
				continue
			}
			nv := replace(m.value, path[1:], v, dup)
			if nv != removed {
				out = append(out, kv{m.key, nv})
			}
		}
		if !found && len(path) == 1 && v != removed {
			out = append(out, kv{path[0], v})
		}
		return out
	case []any:
		i, _ := strconv.Atoi(path[0])
		out := slices.Clone(n)
		out[i] = replace(n[i], path[1:], v, dup)
		return out
	}
	panic(fmt.Sprintf("replace %v in %T", path, node))
}

func pathName(path []string) string {
	var b strings.Builder
	for i, p := range path {
		if _, err := strconv.Atoi(p); err == nil {
			b.WriteString("[" + p + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func num(s string) json.Number { return json.Number(s) }

// envelope adds the mutations of the envelope fields and of the value as a whole.
func (g *corpus) envelope() {
	set := func(field, what string, v any, limit string) {
		g.add(field+": "+what, g.with([]string{field}, v), limit)
	}
	long := func(n int, s string) string { return strings.Repeat(s, n) }
	for _, c := range []struct {
		field, what string
		v           any
		limit       string
	}{
		{"event_id", "removed", removed, ""},
		{"event_id", "null", nil, ""},
		{"event_id", "empty", "", ""},
		{"event_id", "blank", " \t", ""},
		{"event_id", "no-break space", "\u00a0", ""},
		{"event_id", "128 characters", long(128, "e"), ""},
		{"event_id", "128 two-byte characters", long(128, "é"), ""},
		{"event_id", "129 characters", long(129, "e"), ""},
		{"event_id", "a number", num("12"), ""},
		{"event_id", "an object", obj{}, ""},
		{"idempotency_key", "given", "K-1", ""},
		{"idempotency_key", "empty", "", ""},
		{"idempotency_key", "null", nil, ""},
		{"idempotency_key", "blank", "  ", ""},
		{"idempotency_key", "ideographic space", "\u3000", ""},
		{"idempotency_key", "256 characters", long(256, "k"), ""},
		{"idempotency_key", "257 characters", long(257, "k"), ""},
		{"idempotency_key", "a number", num("5"), ""},
		{"occurred_at", "removed", removed, ""},
		{"occurred_at", "empty", "", ""},
		{"occurred_at", "null", nil, ""},
		{"occurred_at", "UTC", "2026-11-21T02:00:00Z", ""},
		{"occurred_at", "fraction", "2026-11-21T10:00:00.123456789+08:00", ""},
		{"occurred_at", "comma fraction", "2026-11-21T10:00:00,5+08:00", ""},
		{"occurred_at", "offset +24:00", "2026-11-21T10:00:00+24:00", ""},
		{"occurred_at", "lower-case t", "2026-11-21t10:00:00Z", ""},
		{"occurred_at", "lower-case z", "2026-11-21T10:00:00z", ""},
		{"occurred_at", "space for T", "2026-11-21 10:00:00+08:00", ""},
		{"occurred_at", "no offset", "2026-11-21T10:00:00", ""},
		{"occurred_at", "offset without colon", "2026-11-21T10:00:00+0800", ""},
		{"occurred_at", "hour 24", "2026-11-21T24:00:00Z", ""},
		{"occurred_at", "month 13", "2026-13-21T10:00:00Z", ""},
		{"occurred_at", "30 February", "2026-02-30T10:00:00Z", "calendar"},
		{"occurred_at", "a word", "yesterday", ""},
		{"occurred_at", "a number", num("1700000000"), ""},
		{"seller", "given", "shop-a", ""},
		{"seller", "empty", "", ""},
		{"seller", "null", nil, ""},
		{"seller", "a number", num("1"), ""},
		{"seller", "a list", []any{"a"}, ""},
		{"request", "removed", removed, ""},
		{"request", "null", nil, ""},
		{"request", "a list", []any{}, ""},
		{"request", "a string", "{}", ""},
		{"request", "empty", obj{}, ""},
		{"extra", "an unknown envelope field", obj{{"a", []any{num("1"), nil}}}, ""},
	} {
		set(c.field, c.what, c.v, c.limit)
	}
	g.add("event_id: twice", replace(g.base, []string{"event_id"}, "evt-dup", true), "duplicate-member")

	deep := any("x")
	for range MaxDepth {
		deep = []any{deep}
	}
	g.add("an unknown envelope field nested 33 deep", g.with([]string{"extra"}, deep), "depth")
	g.add("an unknown envelope field nested 32 deep", g.with([]string{"extra"}, deep.([]any)[0]), "")
	g.add("a value over 1 MiB", g.with([]string{"padding"}, long(DefaultMaxBytes, "p")), "size")

	seedValue, _ := marshalNoEscape(g.base)
	g.addRaw("data after the value", append(slices.Clone(seedValue), []byte(" {}")...), "json-text")
	withSeller := func(raw string) []byte {
		v, _ := marshalNoEscape(g.with([]string{"seller"}, "SELLER"))
		return bytes.Replace(v, []byte(`"SELLER"`), []byte(raw), 1)
	}
	g.addRaw("seller: invalid UTF-8", withSeller("\"shop-\xff\""), "json-text")
	g.addRaw("seller: an escaped lone surrogate", withSeller(`"shop-\ud800"`), "") // both read U+FFFD
	g.addRaw("seller: an escaped surrogate pair", withSeller(`"shop-\ud83d\ude00"`), "")
	g.addRaw("not an object", []byte(`["event"]`), "")
	g.addRaw("empty", []byte(``), "")
}

// object adds the mutations of one object of the request, described by si, and recurses.
func (g *corpus) object(path []string, node obj, si *structInfo) {
	p := pathName(path)
	g.add(p+": an unknown member", g.with(append(slices.Clone(path), "zz_unknown"), "x"), "")
	var optional []string
	for i := range si.fields {
		if f := &si.fields[i]; !f.rule.required {
			if _, ok := node.get(f.name); ok {
				optional = append(optional, f.name)
			}
		}
	}
	if len(optional) > 1 {
		doc := any(g.base)
		for _, name := range optional {
			doc = replace(doc, append(slices.Clone(path), name), removed, false)
		}
		g.add(p+": every optional member removed", doc, "")
	}
	if len(node) > 0 {
		g.add(p+": a member twice", replace(g.base, append(slices.Clone(path), node[0].key), node[0].value, true), "duplicate-member")
	}
	for i := range si.fields {
		f := &si.fields[i]
		fp := append(slices.Clone(path), f.name)
		v, present := node.get(f.name)
		if !present {
			g.add(pathName(fp)+": added", g.with(fp, sample(f)), "")
			continue
		}
		g.field(fp, v, f)
	}
}

// sample is a value of f's type that keeps to its rules (its own members may still be missing).
func sample(f *fieldInfo) any {
	switch f.kind {
	case kindString:
		switch {
		case f.rule.enum != nil:
			return f.rule.enum[len(f.rule.enum)-1]
		case f.rule.date:
			return "2026-01-31 23:59:59"
		case f.rule.decimal:
			return "12.50"
		case f.rule.jsonText:
			return `{"a":1}`
		}
		return "sample"
	case kindInt:
		return num("7")
	case kindBool:
		return false
	case kindStruct:
		return obj{}
	case kindList:
		return []any{obj{}}
	case kindStringMap:
		return obj{{"k", "v"}}
	}
	return nil
}

// field adds the mutations of one present member.
func (g *corpus) field(path []string, v any, f *fieldInfo) {
	p := pathName(path)
	set := func(what string, nv any, limit string) { g.add(p+": "+what, g.with(path, nv), limit) }
	set("removed", removed, "")
	set("null", nil, "")
	wrong := map[valueKind][]any{
		kindString:    {num("1"), true, obj{}, []any{}},
		kindInt:       {"1", true, num("1.5"), obj{}, []any{}},
		kindBool:      {"true", num("1"), obj{}},
		kindStruct:    {[]any{}, "x", num("1")},
		kindList:      {obj{}, "x", num("1")},
		kindStringMap: {[]any{}, "x", num("1")},
	}[f.kind]
	for _, w := range wrong {
		b, _ := json.Marshal(w)
		set("type changed to "+string(b), w, "")
	}
	switch f.kind {
	case kindString:
		g.stringValues(set, f)
	case kindInt:
		set("0", num("0"), "")
		set("-1", num("-1"), "")
		set("max int64", num("9223372036854775807"), "")
		set("min int64", num("-9223372036854775808"), "")
		set("beyond int64", num("9223372036854775808"), "")
		set("below int64", num("-9223372036854775809"), "")
		set("written with a fraction", num(string(v.(json.Number))+".0"), "integer-literal")
		set("written with an exponent", num(string(v.(json.Number))+"e0"), "integer-literal")
	case kindBool:
		set("negated", !v.(bool), "")
	case kindStruct:
		set("empty", obj{}, "")
		g.object(path, v.(obj), f.elem)
	case kindList:
		list := v.([]any)
		set("empty", []any{}, "")
		set("an element null", append(slices.Clone(list), nil), "")
		set("an element a string", append(slices.Clone(list), "x"), "")
		set("an empty element", append(slices.Clone(list), obj{}), "")
		if f.rule.max > 0 {
			full := make([]any, f.rule.max)
			for i := range full {
				full[i] = list[0]
			}
			set(fmt.Sprintf("%d elements (the limit)", f.rule.max), full, "")
			set(fmt.Sprintf("%d elements (over the limit)", f.rule.max+1), append(full, list[0]), "")
		}
		g.object(append(slices.Clone(path), "0"), list[0].(obj), f.elem)
	case kindStringMap:
		set("empty", obj{}, "")
		set("a number value", obj{{"k", num("1")}}, "")
		set("a null value", obj{{"k", nil}}, "")
		set("two entries", obj{{"k", "v"}, {"l", ""}}, "")
	}
}

// stringValues adds the values that test a string field's rules.
func (g *corpus) stringValues(set func(string, any, string), f *fieldInfo) {
	for _, c := range []struct{ what, v string }{{"empty", ""}, {"blank", "  "}, {"line separator", "\u2028"}, {"padded", " x "}} {
		limit := ""
		if f.rule.jsonText && strings.TrimSpace(c.v) != "" && !json.Valid([]byte(c.v)) {
			limit = "embedded-json" // a required string, not blank: only its content is wrong
		}
		set(c.what, c.v, limit)
	}
	for _, e := range f.rule.enum {
		set("enum "+e, e, "")
	}
	if f.rule.enum != nil {
		set("outside the enumeration", "NOT_"+f.rule.enum[0], "")
		set("enum in lower case", strings.ToLower(f.rule.enum[0]), "")
	}
	if f.rule.date {
		for _, c := range []struct{ what, v, limit string }{
			{"a date", "2026-01-31 23:59:59", ""},
			{"a leap day", "2028-02-29 00:00:00", ""},
			{"29 February of a common year", "2026-02-29 00:00:00", "calendar"},
			{"31 April", "2026-04-31 00:00:00", "calendar"},
			{"month 13", "2026-13-01 00:00:00", ""},
			{"hour 24", "2026-01-01 24:00:00", ""},
			{"ISO T", "2026-01-01T00:00:00", ""},
			{"a fraction", "2026-01-01 00:00:00.5", ""},
			{"a date alone", "2026-01-01", ""},
		} {
			set(c.what, c.v, c.limit)
		}
	}
	if f.rule.decimal {
		for _, v := range []string{"0", "12", "12.50", "007.5", "-0.0", "-3", "-3.5", "1.", ".5", "1e3", "+1", "1,5", "abc"} {
			set("decimal "+strconv.Quote(v), v, "")
		}
	}
	if f.rule.jsonText {
		set("JSON object text", `{"a":[1,2]}`, "")
		set("JSON scalar text", `12`, "")
		set("not JSON text", `{"a":`, "embedded-json")
	}
}

// TestSchemaSeedsAndOutcomes: the seed events pass their schemas, and the outcome schema accepts
// the outcome events of testdata/outcome and rejects broken ones.
func TestSchemaSeedsAndOutcomes(t *testing.T) {
	schemas := compileEventSchemas(t)
	for id, v := range SeedEvents() {
		if err := schemaVerdict(schemas[id], v); err != nil {
			t.Errorf("seed %s: %v", id, err)
		}
	}
	for _, name := range []string{"succeeded", "failed", "rejected"} {
		if err := schemaVerdict(schemas[""], outcomeFile(t, name)); err != nil {
			t.Errorf("outcome %s: %v", name, err)
		}
	}
	good := outcomeFile(t, "failed")
	for _, c := range []struct {
		name   string
		change []string
	}{
		{"unknown status", []string{"status", `"lost"`}},
		{"unknown error kind", []string{"error.kind", `"oops"`}},
		{"no source", []string{"source", deleteValue}},
		{"negative offset", []string{"source.offset", `-1`}},
		{"other schema", []string{"schema", `"ordersync.outcome.v2"`}},
		{"short trace id", []string{"trace_id", `"abc"`}},
		{"response_truncated not a boolean", []string{"response_truncated", `"yes"`}},
	} {
		if err := schemaVerdict(schemas[""], editJSON(t, good, c.change...)); err == nil {
			t.Errorf("outcome with %s: the schema accepts it", c.name)
		}
	}
	for _, c := range []struct {
		name   string
		change []string
	}{
		{"ambiguous", []string{"error.kind", `"ambiguous"`}},
		{"response truncated", []string{"response_truncated", `true`}},
		{"a field added later", []string{"x_new", `1`}},
	} {
		if err := schemaVerdict(schemas[""], editJSON(t, good, c.change...)); err != nil {
			t.Errorf("outcome with %s: %v", c.name, err)
		}
	}
}
