package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/ordersync/ordersync/pkg/consumer"
)

// The AsyncAPI 3.0 document of the worker: every channel topic (default names), the results and
// dead-letter topics, their messages (key, headers, payload), the operations the worker performs
// and the Kafka bindings. The payloads are the schemas of schema.go, inlined as AsyncAPI Schema
// objects (what the AsyncAPI parser validates natively): they use only keywords that JSON Schema
// draft-07 and 2020-12 read alike, with $defs moved to components.schemas.

const (
	asyncAPIVersion    = "3.0.0"
	kafkaBindings      = "0.5.0"
	defaultResultTopic = "orders.results"
	defaultDLQTopic    = "orders.dlq"
	defaultGroupID     = "ordersync"
	traceparentPattern = `^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`
	exampleTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

// traceHeaders are the W3C trace context headers, continued from the input and written on every
// record the worker publishes.
func traceHeaders() obj {
	return obj{
		{"traceparent", obj{
			{"description", "W3C trace context (version-traceid-parentid-flags)."},
			{"type", "string"},
			{"pattern", traceparentPattern},
		}},
		{"tracestate", obj{{"description", "W3C trace state, vendor entries."}, {"type", "string"}}},
		{"baggage", obj{{"description", "W3C baggage."}, {"type", "string"}}},
	}
}

// rewriteRefs moves "#/$defs/X" references to "#/components/schemas/X" in a schema tree.
func rewriteRefs(v any) any {
	switch t := v.(type) {
	case obj:
		out := make(obj, 0, len(t))
		for _, m := range t {
			if s, ok := m.value.(string); ok && m.key == "$ref" {
				m.value = strings.Replace(s, "#/$defs/", "#/components/schemas/", 1)
			} else {
				m.value = rewriteRefs(m.value)
			}
			out = append(out, m)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = rewriteRefs(e)
		}
		return out
	}
	return v
}

// inline splits a generated schema into its body (no $defs, refs to components) and its
// definitions, added to schemas. A definition already there must be identical.
func inline(s obj, schemas *obj) (obj, error) {
	var body obj
	for _, m := range s {
		if m.key != "$defs" {
			body = append(body, m)
			continue
		}
		for _, d := range m.value.(obj) {
			def := rewriteRefs(d.value)
			if old, ok := schemas.get(d.key); ok {
				a, _ := json.Marshal(old)
				b, _ := json.Marshal(def)
				if !bytes.Equal(a, b) {
					return nil, fmt.Errorf("two different schemas named %s", d.key)
				}
				continue
			}
			schemas.set(d.key, def)
		}
	}
	return rewriteRefs(body).(obj), nil
}

// asyncAPIDocument renders the AsyncAPI document as YAML.
func asyncAPIDocument() ([]byte, error) {
	schemas := obj{}
	messages := obj{}
	channels := obj{}
	operations := obj{}

	schemas.set("TraceHeaders", obj{
		{"type", "object"},
		{"description", "Optional W3C trace context: the worker continues the publisher's trace."},
		{"properties", traceHeaders()},
	})

	for _, s := range specs {
		body, err := inline(eventSchema(s), &schemas)
		if err != nil {
			return nil, err
		}
		name := eventSchemaName(s.id)
		schemas.set(name, body)
		example, err := seedExample(s.id)
		if err != nil {
			return nil, err
		}
		msg := s.id + ".event"
		messages.set(msg, obj{
			{"name", msg},
			{"title", s.id + " order event"},
			{"summary", "An order event for " + s.method + "."},
			{"contentType", "application/json"},
			{"headers", obj{{"$ref", "#/components/schemas/TraceHeaders"}}},
			{"payload", obj{{"$ref", "#/components/schemas/" + name}}},
			{"bindings", obj{{"kafka", obj{
				{"key", obj{
					{"type", "string"},
					{"description", "Recommended: the event's idempotency key (default: " + keyDocs[s.id] + "), which keeps one order's events in one partition, in order."},
				}},
				{"bindingVersion", kafkaBindings},
			}}}},
			{"examples", []any{example}},
		})
		channels.set(s.id, obj{
			{"address", s.topic},
			{"title", s.id},
			{"description", fmt.Sprintf("Order events for the TOP API %s (channel %s). The topic is configurable: channels.%s.topic (ORDERSYNC_CHANNELS_%s_TOPIC).%s",
				s.method, s.id, s.id, strings.ToUpper(strings.ReplaceAll(s.id, "-", "_")), sessionNote(s))},
			{"messages", obj{{"event", obj{{"$ref", "#/components/messages/" + msg}}}}},
			{"bindings", obj{{"kafka", obj{{"topic", s.topic}, {"bindingVersion", kafkaBindings}}}}},
		})
		operations.set("receive-"+s.id, obj{
			{"action", "receive"},
			{"title", "Consume " + s.id + " events"},
			{"summary", "Validate, de-duplicate and deliver each event to " + s.method + "; publish one outcome."},
			{"channel", obj{{"$ref", "#/channels/" + s.id}}},
			{"messages", []any{obj{{"$ref", "#/channels/" + s.id + "/messages/event"}}}},
			{"bindings", obj{{"kafka", obj{
				{"groupId", obj{{"type", "string"}, {"description", "kafka.group_id, one group for all replicas."}, {"default", defaultGroupID}}},
				{"bindingVersion", kafkaBindings},
			}}}},
		})
	}

	out, err := outcomeSchema()
	if err != nil {
		return nil, err
	}
	body, err := inline(out, &schemas)
	if err != nil {
		return nil, err
	}
	schemas.set("Outcome", body)
	schemas.set("OutcomeHeaders", obj{
		{"type", "object"},
		{"description", "The worker's trace context and the channel."},
		{"properties", append(traceHeaders(), kv{HeaderChannel, obj{
			{"description", "The channel id (the outcome's channel)."},
			{"type", "string"},
		}})},
	})
	schemas.set("DeadLetterHeaders", obj{
		{"type", "object"},
		{"description", "The original record's headers (its trace context replaced by the worker's), plus these."},
		{"required", []string{consumer.HeaderError, consumer.HeaderSourceTopic, consumer.HeaderSourcePartition, consumer.HeaderSourceOffset}},
		{"properties", append(traceHeaders(),
			kv{consumer.HeaderError, obj{{"description", "Why the event was dead-lettered (the outcome's error.msg)."}, {"type", "string"}}},
			kv{consumer.HeaderSourceTopic, obj{{"description", "Topic of the original record; worker replay re-publishes there."}, {"type", "string"}}},
			kv{consumer.HeaderSourcePartition, obj{{"description", "Partition of the original record (decimal)."}, {"type", "string"}, {"pattern", "^[0-9]+$"}}},
			kv{consumer.HeaderSourceOffset, obj{{"description", "Offset of the original record (decimal)."}, {"type", "string"}, {"pattern", "^[0-9]+$"}}},
			kv{consumer.HeaderValueBytes, obj{{"description", "Set on a reduced dead letter: the size of the original value in bytes (decimal)."}, {"type", "string"}, {"pattern", "^[0-9]+$"}}},
			kv{consumer.HeaderValueTruncated, obj{{"description", "Set on a reduced dead letter: the value was truncated or dropped to fit the message limit; worker replay re-reads it from the source offset."}, {"type", "string"}, {"const", "true"}}},
		)},
	})
	messages.set("outcome", obj{
		{"name", "outcome"},
		{"title", "Outcome"},
		{"summary", "What happened to one consumed event (" + Schema + ")."},
		{"contentType", "application/json"},
		{"headers", obj{{"$ref", "#/components/schemas/OutcomeHeaders"}}},
		{"payload", obj{{"$ref", "#/components/schemas/Outcome"}}},
		{"bindings", obj{{"kafka", obj{
			{"key", obj{{"type", "string"}, {"description", "The idempotency key, or event_id when none could be derived."}}},
			{"bindingVersion", kafkaBindings},
		}}}},
	})
	messages.set("dead-letter", obj{
		{"name", "dead-letter"},
		{"title", "Dead letter"},
		{"summary", "A rejected event, or one that failed with kind exhausted, auth or ambiguous: the original record."},
		{"description", "The original key and value, byte for byte (a rejected value need not be valid JSON). " +
			"A dead letter that would not fit the producer's or broker's message limit is reduced: its value truncated or dropped, " +
			"with headers " + consumer.HeaderValueBytes + " and " + consumer.HeaderValueTruncated + "."},
		{"headers", obj{{"$ref", "#/components/schemas/DeadLetterHeaders"}}},
		{"payload", obj{{"description", "The original message value."}}},
		{"bindings", obj{{"kafka", obj{
			{"key", obj{{"type", "string"}, {"description", "The original record's key."}}},
			{"bindingVersion", kafkaBindings},
		}}}},
	})
	channels.set("results", obj{
		{"address", defaultResultTopic},
		{"title", "results"},
		{"description", "One outcome per consumed event, published (acknowledged by all in-sync replicas) before the event's offset is committed. Configurable: kafka.results_topic (ORDERSYNC_KAFKA_RESULTS_TOPIC)."},
		{"messages", obj{{"outcome", obj{{"$ref", "#/components/messages/outcome"}}}}},
		{"bindings", obj{{"kafka", obj{{"topic", defaultResultTopic}, {"bindingVersion", kafkaBindings}}}}},
	})
	channels.set("dlq", obj{
		{"address", defaultDLQTopic},
		{"title", "dead letters"},
		{"description", "Dead letters; worker replay re-publishes them to their source topics. Configurable: kafka.dlq_topic (ORDERSYNC_KAFKA_DLQ_TOPIC)."},
		{"messages", obj{{"dead-letter", obj{{"$ref", "#/components/messages/dead-letter"}}}}},
		{"bindings", obj{{"kafka", obj{{"topic", defaultDLQTopic}, {"bindingVersion", kafkaBindings}}}}},
	})
	operations.set("send-outcome", obj{
		{"action", "send"},
		{"title", "Publish outcomes"},
		{"channel", obj{{"$ref", "#/channels/results"}}},
		{"messages", []any{obj{{"$ref", "#/channels/results/messages/outcome"}}}},
	})
	operations.set("send-dead-letter", obj{
		{"action", "send"},
		{"title", "Publish dead letters"},
		{"channel", obj{{"$ref", "#/channels/dlq"}}},
		{"messages", []any{obj{{"$ref", "#/channels/dlq/messages/dead-letter"}}}},
	})

	doc := obj{
		{"asyncapi", asyncAPIVersion},
		{"info", obj{
			{"title", "ordersync"},
			{"version", "1.0.0"},
			{"description", "ordersync consumes order events from one Kafka topic per sales channel, validates each against its " +
				"Alibaba TOP API page, de-duplicates it by idempotency key, calls the API, and publishes one outcome per event " +
				"(" + Schema + ") to the results topic, and dead letters to the DLQ topic. Generated by `worker schema` from the " +
				"channel definitions the worker validates with; the payloads are also in schemas/*.json (JSON Schema 2020-12)."},
		}},
		{"defaultContentType", "application/json"},
		{"servers", obj{{"kafka", obj{
			{"host", "localhost:9092"},
			{"protocol", "kafka"},
			{"description", "The Kafka cluster: kafka.brokers (ORDERSYNC_KAFKA_BROKERS); TLS and SASL by configuration."},
		}}}},
		{"channels", channels},
		{"operations", operations},
		{"components", obj{
			{"schemas", schemas},
			{"messages", messages},
		}},
	}
	return toYAML(doc)
}

func eventSchemaName(id string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(id, "-") {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String() + "Event"
}

func sessionNote(s *spec) string {
	if s.session {
		return " Calls need the seller's session key: the event's seller, else top.default_seller."
	}
	return ""
}

// seedExample is a message example: the seed event as payload, its key and a traceparent.
func seedExample(id string) (obj, error) {
	dec := json.NewDecoder(bytes.NewReader(SeedEvents()[id]))
	dec.UseNumber()
	payload, err := decodeOrdered(dec)
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", id, err)
	}
	reg, err := NewRegistry(map[string]string{id: ""})
	if err != nil {
		return nil, err
	}
	ch, _ := reg.ByID(id)
	env, err := DecodeEnvelope(SeedEvents()[id], 0)
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", id, err)
	}
	prep, err := ch.Prepare(env)
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", id, err)
	}
	// An AsyncAPI message example has no place for the record key: the summary names it.
	return obj{
		{"name", "page-example"},
		{"summary", "The API page's request example as an event; its record key is " + prep.IdempotencyKey + "."},
		{"headers", obj{{"traceparent", exampleTraceparent}}},
		{"payload", payload},
	}, nil
}

// decodeOrdered decodes the next JSON value with its objects as obj, members in order.
func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch d := tok.(type) {
	case json.Delim:
		if d == '[' {
			list := []any{}
			for dec.More() {
				e, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, e)
			}
			_, err := dec.Token()
			return list, err
		}
		o := obj{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			o = append(o, kv{k.(string), v})
		}
		_, err := dec.Token()
		return o, err
	}
	return tok, nil
}

// toYAML renders v (built of obj, slices, strings, numbers, booleans and nil) as block-style
// YAML with the members in order.
func toYAML(v any) ([]byte, error) {
	n, err := yamlNode(v)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# Generated by `worker schema` (go generate ./cmd/worker) from pkg/dispatch: do not edit.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return escapeSpaces(b.Bytes()), nil
}

func yamlNode(v any) (*yaml.Node, error) {
	scalar := func(tag, value string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
	}
	switch t := v.(type) {
	case obj:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, m := range t {
			c, err := yamlNode(m.value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.key, err)
			}
			n.Content = append(n.Content, scalar("!!str", m.key), c)
		}
		return n, nil
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range t {
			c, err := yamlNode(e)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case []string:
		return yamlNode(anySlice(t))
	case string:
		n := scalar("!!str", t)
		if strings.ContainsFunc(t, func(r rune) bool { return r > 0x7f && unicode.IsSpace(r) }) {
			n.Style = yaml.DoubleQuotedStyle // escapeSpaces writes those runes as \u escapes
		}
		return n, nil
	case json.Number:
		if _, err := t.Int64(); err == nil {
			return scalar("!!int", t.String()), nil
		}
		return scalar("!!float", t.String()), nil
	case int:
		return scalar("!!int", fmt.Sprint(t)), nil
	case bool:
		return scalar("!!bool", fmt.Sprint(t)), nil
	case nil:
		return scalar("!!null", "null"), nil
	}
	return nil, fmt.Errorf("no YAML for %T", v)
}
