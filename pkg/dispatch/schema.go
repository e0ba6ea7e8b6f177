package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The JSON Schemas (2020-12) of the input events and of the outcome, generated from the same
// declarations the worker validates with: the wire structs' json and check tags (structInfo), the
// envelope limits of envelope.go and the Outcome type. cmd/worker's `schema` command writes them
// to api/schemas/; [ContractFiles] also returns the AsyncAPI document (asyncapi.go) that embeds
// them. What a schema cannot express is listed by [SchemaLimits].

// SchemaBaseURL is the base of the schemas' $id: api/schemas/ in the repository.
const SchemaBaseURL = "https://raw.githubusercontent.com/ordersync/ordersync/main/api/schemas/"

const draft202012 = "https://json-schema.org/draft/2020-12/schema"

// obj is a JSON object whose members keep their order when encoded, so that the generated files
// read top-down (type, required, properties, ...) and diff cleanly.
type obj []kv

type kv struct {
	key   string
	value any
}

// set appends or replaces key.
func (o *obj) set(key string, value any) {
	for i := range *o {
		if (*o)[i].key == key {
			(*o)[i].value = value
			return
		}
	}
	*o = append(*o, kv{key, value})
}

func (o obj) get(key string) (any, bool) {
	for _, m := range o {
		if m.key == key {
			return m.value, true
		}
	}
	return nil, false
}

// MarshalJSON encodes o with its members in order.
func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := marshalNoEscape(m.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.key, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalNoEscape is json.Marshal without HTML escaping (patterns hold < and >... and & reads
// better unescaped).
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// indentJSON encodes v as indented JSON with a final newline. Non-ASCII white space (in
// patterns) is written as \u escapes, so that it can be read.
func indentJSON(v any) ([]byte, error) {
	raw, err := marshalNoEscape(v)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return escapeSpaces(b.Bytes()), nil
}

// escapeSpaces replaces the non-ASCII white space runes in JSON or double-quoted YAML text with
// \uXXXX escapes, which both read back as the same rune.
func escapeSpaces(text []byte) []byte {
	var b bytes.Buffer
	for _, r := range string(text) {
		if r > 0x7f && unicode.IsSpace(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.Bytes()
}

// Patterns shared by the schemas. They use only what ECMA-262 and RE2 regular expressions agree
// on; white space is spelled out as literal characters, because \s differs between the two.
var (
	// notBlank matches a string with a character strings.TrimSpace keeps (unicode.IsSpace).
	notBlank = "[^" + spaceChars() + "]"
	// datePattern is a "yyyy-MM-dd HH:mm:ss" time with every field in its range; time.Parse
	// also checks the day against the month and year, which the pattern does not.
	datePattern = `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$`
	// decimalPattern is isDecimal; nonnegDecimalPattern adds !isNegativeDecimal ("-0.0" is not
	// negative).
	decimalPattern       = `^-?[0-9]+(\.[0-9]+)?$`
	nonnegDecimalPattern = `^([0-9]+(\.[0-9]+)?|-0+(\.0+)?)$`
	// rfc3339Pattern is what time.Parse(time.RFC3339, s) accepts, but for the day against the
	// month and year: an upper-case T and Z, a fraction after '.' or ',', an offset of any two
	// two-digit numbers.
	rfc3339Pattern = `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.,][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`
	// traceIDPattern is a W3C trace id as outcomes carry it.
	traceIDPattern = `^[0-9a-f]{32}$`
)

// spaceChars lists, as literal characters, every rune below U+10000 that unicode.IsSpace reports.
func spaceChars() string {
	var b strings.Builder
	for r := rune(0); r < 0x10000; r++ {
		if unicode.IsSpace(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// int64 bounds, exact in the schema (json.Number keeps every digit).
var (
	minInt64 = json.Number(strconv.FormatInt(-1<<63, 10))
	maxInt64 = json.Number(strconv.FormatInt(1<<63-1, 10))
)

// schemaGen builds the schema of one channel's event: the envelope, and the request's wire
// structs as $defs named after their Go types.
type schemaGen struct {
	defs obj
}

// fieldSchema is the schema of one wire field, nullable when the field is optional (null is
// absent).
func (g *schemaGen) fieldSchema(f *fieldInfo) any {
	var s obj
	optional := !f.rule.required
	typ := func(t string) any {
		if optional {
			return []string{t, "null"}
		}
		return t
	}
	switch f.kind {
	case kindString:
		s.set("type", typ("string"))
		if f.rule.enum != nil {
			e := make([]any, 0, len(f.rule.enum)+1)
			for _, v := range f.rule.enum {
				e = append(e, v)
			}
			if optional {
				e = append(e, nil)
			}
			s.set("enum", e)
		}
		if f.rule.required {
			s.set("minLength", 1)
		}
		var patterns []string
		if f.rule.required {
			patterns = append(patterns, notBlank)
		}
		switch {
		case f.rule.date:
			patterns = append(patterns, datePattern)
			s.set("description", "yyyy-MM-dd HH:mm:ss")
		case f.rule.decimal && f.rule.nonneg:
			patterns = append(patterns, nonnegDecimalPattern)
			s.set("description", "a non-negative decimal number, as a string")
		case f.rule.decimal:
			patterns = append(patterns, decimalPattern)
			s.set("description", "a decimal number, as a string")
		}
		switch len(patterns) {
		case 0:
		case 1:
			s.set("pattern", patterns[0])
		default: // every pattern must match
			all := make([]any, len(patterns))
			for i, p := range patterns {
				all[i] = obj{{"pattern", p}}
			}
			s.set("allOf", all)
		}
		if f.rule.jsonText {
			s.set("contentMediaType", "application/json")
			s.set("description", "a JSON text, as a string")
		}
	case kindInt:
		s.set("type", typ("integer"))
		if f.rule.nonneg {
			s.set("minimum", 0)
		} else {
			s.set("minimum", minInt64)
		}
		s.set("maximum", maxInt64)
	case kindBool:
		s.set("type", typ("boolean"))
	case kindStruct:
		ref := g.def(f.elem)
		if !optional {
			return ref
		}
		return obj{{"anyOf", []any{ref, obj{{"type", "null"}}}}}
	case kindList:
		s.set("type", typ("array"))
		s.set("items", g.def(f.elem))
		if f.rule.required {
			s.set("minItems", 1)
		}
		if f.rule.max > 0 {
			s.set("maxItems", f.rule.max)
		}
	case kindStringMap:
		s.set("type", typ("object"))
		s.set("additionalProperties", obj{{"type", "string"}})
	}
	return s
}

// def adds the schema of a wire struct to $defs (once) and returns a reference to it.
func (g *schemaGen) def(si *structInfo) obj {
	name := si.typ.Name()
	ref := obj{{"$ref", "#/$defs/" + name}}
	if _, ok := g.defs.get(name); ok {
		return ref
	}
	g.defs.set(name, nil) // reserve the slot: definitions appear in first-use order
	var s obj
	s.set("type", "object")
	var required []string
	props := obj{}
	for i := range si.fields {
		f := &si.fields[i]
		if f.rule.required {
			required = append(required, f.name)
		}
		props.set(f.name, g.fieldSchema(f))
	}
	if len(required) > 0 {
		s.set("required", required)
	}
	s.set("properties", props)
	s.set("additionalProperties", false)
	g.defs.set(name, s)
	return ref
}

// keyDocs says how each channel derives its default idempotency key (the channel table of the README); a test
// checks it against Prepare.
var keyDocs = map[string]string{
	"tmall-aliauto":      "request.sync_single_order_req.idempotent_id",
	"omni-saas":          "request.request_no",
	"icbu-trade":         "event_id",
	"mos-haiding":        `"refund:" + request.order_sync_request.refund_order.out_refund_no for a refund (refund_order not empty), else "order:" + request.order_sync_request.order.out_trade_no`,
	"diantao-tripartite": `request.tripartite_order_info_dto.out_order_id + ":" + request.tripartite_order_info_dto.trade_finished`,
}

// eventSchema is the JSON Schema of an input event of channel s, without $schema and $id.
func eventSchema(s *spec) obj {
	g := &schemaGen{}
	reqRef := g.def(s.info)
	var o obj
	o.set("title", s.id+" event")
	o.set("description", fmt.Sprintf("The value of a message on topic %s (channel %s): an event for the TOP API %s. "+
		"Unknown envelope fields are ignored; unknown fields inside request are rejected. "+
		"The default idempotency key is %s. Rules this schema cannot express are listed in api/README.md.",
		s.topic, s.id, s.method, keyDocs[s.id]))
	o.set("type", "object")
	o.set("required", []string{"event_id", "request"})
	o.set("properties", obj{
		{"event_id", obj{
			{"description", fmt.Sprintf("Identifies the event: 1 to %d characters, not blank.", MaxEventIDLen)},
			{"type", "string"},
			{"minLength", 1},
			{"maxLength", MaxEventIDLen},
			{"pattern", notBlank},
		}},
		{"idempotency_key", obj{
			{"description", fmt.Sprintf("Overrides the channel's default idempotency key (%s); empty or null is absent. At most %d characters, not blank.",
				keyDocs[s.id], MaxIdempotencyKeyLen)},
			{"type", []string{"string", "null"}},
			{"maxLength", MaxIdempotencyKeyLen},
			{"pattern", "^$|" + notBlank},
		}},
		{"occurred_at", obj{
			{"description", "When the event happened, RFC 3339 (2026-11-21T10:00:00+08:00); empty or null is absent."},
			{"type", []string{"string", "null"}},
			{"format", "date-time"},
			{"pattern", "^$|" + rfc3339Pattern},
		}},
		{"seller", obj{
			{"description", "Selects the seller's session key (channels that need one); empty or null is the default seller."},
			{"type", []string{"string", "null"}},
		}},
		{"request", withDescription(reqRef, "The business parameters of "+s.method+", by the API page's names and nesting.")},
	})
	o.set("$defs", g.defs)
	return o
}

// withDescription puts a $ref under allOf when it needs a sibling, so that draft-07 tools (which
// ignore a $ref's siblings) read it the same way.
func withDescription(ref obj, desc string) obj {
	return obj{{"description", desc}, {"allOf", []any{ref}}}
}

// errorKinds lists every ErrorInfo.Kind.
var errorKinds = []string{KindValidation, KindConflict, KindPlatform, KindBusiness, KindExhausted, KindAuth, KindAmbiguous}

// statuses lists every Outcome.Status.
var statuses = []string{StatusSucceeded, StatusFailed, StatusRejected, StatusDuplicate}

// outcomeFieldDocs annotates the Outcome's JSON fields; a test checks that every name is one.
func outcomeFieldDocs() map[string]obj {
	ids := ChannelIDs()
	channels := make([]any, 0, len(ids)+1)
	methods := make([]any, 0, len(ids)+1)
	for _, id := range ids {
		channels = append(channels, id)
		for _, s := range specs {
			if s.id == id {
				methods = append(methods, s.method)
			}
		}
	}
	channels = append(channels, "")
	methods = append(methods, "")
	return map[string]obj{
		"schema":             {{"description", "The outcome format and its version."}, {"const", Schema}},
		"event_id":           {{"description", "The event's event_id; empty when it could not be read."}},
		"channel":            {{"description", "The channel of the consumed topic; empty when no enabled channel consumes it."}, {"enum", channels}},
		"method":             {{"description", "The channel's TOP API method; empty with channel."}, {"enum", methods}},
		"idempotency_key":    {{"description", "The idempotency key (the record's key, too); empty when none could be derived (the key is then event_id)."}},
		"status":             {{"description", "succeeded, failed, rejected (never sent) or duplicate (the key completed before; response and error replay the original)."}, {"enum", anySlice(statuses)}},
		"attempts":           {{"description", "Gateway calls made for this event."}, {"minimum", 0}},
		"response":           {{"description", "The API's response object (inside <method>_response), ids intact; a JSON string when the platform's answer was not valid JSON or was cut to fit (see response_truncated)."}},
		"response_truncated": {{"description", "true when response was too large for the results topic's record limit: it holds the start of the answer as a JSON string, or is absent."}},
		"error":              {{"description", "Why the event failed or was rejected."}},
		"request_id":         {{"description", "The TOP request id, when the platform gave one."}},
		"source":             {{"description", "The consumed record."}},
		"received_at":        {{"description", "When the worker took the event (RFC 3339, nanoseconds, UTC)."}},
		"completed_at":       {{"description", "When the outcome was decided (RFC 3339, nanoseconds, UTC)."}},
		"trace_id":           {{"description", "The W3C trace id of the event's processing span."}, {"pattern", traceIDPattern}},
		"kind":               {{"description", "validation, conflict, platform, business, exhausted, auth or ambiguous."}, {"enum", anySlice(errorKinds)}},
		"code":               {{"description", "The platform's error code, or the worker's: missing, invalid, unknown-channel, missing-session, conflict, internal, dedupe-corrupt, taken-over, redelivered."}},
		"msg":                {{"description", "What went wrong; for validation, the JSON path and the reason (request.store_id: required)."}},
		"sub_code":           {{"description", "The platform's sub-code (isv.*, isp.*)."}},
		"sub_msg":            {{"description", "The platform's sub-message."}},
		"retryable":          {{"description", "Whether the platform error was transient."}},
		"topic":              {{"description", "Topic of the consumed record."}},
		"partition":          {{"minimum", 0}},
		"offset":             {{"minimum", 0}},
	}
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// outcomeSchema is the JSON Schema of an Outcome as MarshalJSON writes it, from its type's json
// tags, without $schema and $id.
func outcomeSchema() (obj, error) {
	docs := outcomeFieldDocs()
	defs := obj{}
	root, err := structSchema(reflect.TypeFor[Outcome](), docs, &defs)
	if err != nil {
		return nil, err
	}
	var o obj
	o.set("title", "ordersync outcome")
	o.set("description", "The value of a record on the results topic (orders.results): what happened to one consumed event. "+
		"Consumers must ignore fields they do not know: new optional fields may appear within "+Schema+".")
	o = append(o, root...)
	o.set("$defs", defs)
	return o, nil
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

// structSchema is the schema of a struct encoded by encoding/json: fields without omitempty are
// required. Nested structs become $defs. Annotations come from docs by JSON name.
func structSchema(t reflect.Type, docs map[string]obj, defs *obj) (obj, error) {
	props := obj{}
	var required []string
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			required = append(required, name)
		}
		var s obj
		ft := sf.Type
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		switch {
		case ft == timeType:
			s = obj{{"type", "string"}, {"format", "date-time"}}
		case ft == rawType:
			s = obj{}
		case ft.Kind() == reflect.String:
			s = obj{{"type", "string"}}
		case ft.Kind() == reflect.Bool:
			s = obj{{"type", "boolean"}}
		case ft.Kind() == reflect.Int, ft.Kind() == reflect.Int64:
			s = obj{{"type", "integer"}}
		case ft.Kind() == reflect.Struct:
			sub, err := structSchema(ft, docs, defs)
			if err != nil {
				return nil, err
			}
			defs.set(ft.Name(), sub)
			ref := obj{{"$ref", "#/$defs/" + ft.Name()}}
			if d, ok := docs[name]; ok {
				if desc, ok := d.get("description"); ok {
					ref = withDescription(ref, desc.(string))
				}
			}
			props.set(name, ref)
			continue
		default:
			return nil, fmt.Errorf("%s.%s: no schema for %s", t, sf.Name, sf.Type)
		}
		desc := obj{}
		for _, m := range docs[name] {
			if m.key == "description" {
				desc = append(obj{m}, desc...)
				continue
			}
			s.set(m.key, m.value)
		}
		props.set(name, append(desc, s...))
	}
	var o obj
	o.set("type", "object")
	o.set("required", required)
	o.set("properties", props)
	return o, nil
}

// schemaFile names the schema file of a channel's events, or "outcome.json".
func schemaFile(channelID string) string {
	if channelID == "" {
		return "outcome.json"
	}
	return channelID + ".event.json"
}

// withHeader adds $schema and $id in front of a schema.
func withHeader(s obj, file string) obj {
	return append(obj{{"$schema", draft202012}, {"$id", SchemaBaseURL + file}}, s...)
}

// ContractFiles returns the generated contract, keyed by path relative to the api/ directory:
// "asyncapi.yaml", "schemas/<channel>.event.json" per channel and "schemas/outcome.json".
// Generating twice gives the same bytes.
func ContractFiles() (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, s := range specs {
		b, err := indentJSON(withHeader(eventSchema(s), schemaFile(s.id)))
		if err != nil {
			return nil, fmt.Errorf("%s schema: %w", s.id, err)
		}
		files["schemas/"+schemaFile(s.id)] = b
	}
	out, err := outcomeSchema()
	if err != nil {
		return nil, fmt.Errorf("outcome schema: %w", err)
	}
	if files["schemas/outcome.json"], err = indentJSON(withHeader(out, schemaFile(""))); err != nil {
		return nil, fmt.Errorf("outcome schema: %w", err)
	}
	doc, err := asyncAPIDocument()
	if err != nil {
		return nil, fmt.Errorf("asyncapi: %w", err)
	}
	files["asyncapi.yaml"] = doc
	readme, err := contractReadme()
	if err != nil {
		return nil, err
	}
	files["README.md"] = readme
	return files, nil
}
