package dispatch

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// SchemaLimit is a rule the worker enforces that the generated JSON Schemas do not express: an
// event can pass its schema and still be rejected for it. `worker validate` checks every one.
type SchemaLimit struct {
	// ID names the limit in tests ("cross-field-sum").
	ID string
	// Channels the rule applies to; nil = every channel.
	Channels []string
	// Rule says what the worker checks, Why why a schema cannot, and Where where the worker
	// enforces it.
	Rule, Why, Where string
}

// SchemaLimits lists the rules the generated schemas cannot express, in a fixed order. The
// differential test (schema_diff_test.go) proves each: an event breaking only that rule passes
// its schema and is rejected by the worker.
func SchemaLimits() []SchemaLimit {
	return slices.Clone(schemaLimits)
}

var schemaLimits = []SchemaLimit{
	{
		ID:    "size",
		Rule:  fmt.Sprintf("A message value is at most worker.max_message_bytes (default %d bytes, 1 MiB).", DefaultMaxBytes),
		Why:   "A schema validates a parsed value, not the bytes it came in.",
		Where: "DecodeEnvelope (pkg/dispatch/envelope.go)",
	},
	{
		ID:    "json-text",
		Rule:  "The value is one JSON text in valid UTF-8: no invalid bytes, nothing after the value.",
		Why:   "A schema sees the value only after a parser accepted (or repaired) it.",
		Where: "DecodeEnvelope and the lexer (pkg/dispatch/envelope.go, lexer.go)",
	},
	{
		ID:    "depth",
		Rule:  fmt.Sprintf("Objects and arrays nest at most %d levels, counting the envelope, including inside ignored envelope fields.", MaxDepth),
		Why:   "JSON Schema has no keyword for nesting depth.",
		Where: "DecodeEnvelope (tooDeep, pkg/dispatch/envelope.go)",
	},
	{
		ID:    "duplicate-member",
		Rule:  "No object has the same member name twice (in the envelope's own fields and anywhere in request).",
		Why:   "JSON parsers keep one of the two; a schema never sees the other.",
		Where: "DecodeEnvelope and Channel.Prepare (binder.object, pkg/dispatch/decode.go)",
	},
	{
		ID:    "integer-literal",
		Rule:  "Integers are written without a fraction or an exponent: 100, not 100.0 or 1e2.",
		Why:   "JSON Schema's integer type accepts any number with a zero fraction.",
		Where: "Channel.Prepare (fieldRule.parseInt, pkg/dispatch/decode.go)",
	},
	{
		ID:    "calendar",
		Rule:  "Dates exist: the day fits the month and year (no 2026-02-30) in yyyy-MM-dd HH:mm:ss fields and in occurred_at.",
		Why:   "The schemas check the format and each field's range with a pattern; a pattern for every month and leap year is not worth its length.",
		Where: "Channel.Prepare (isDateTime, pkg/dispatch/decode.go) and DecodeEnvelope (time.Parse RFC 3339)",
	},
	{
		ID:       "embedded-json",
		Channels: []string{"diantao-tripartite"},
		Rule:     "tripartite_order_info_dto.extend is a string holding a JSON text.",
		Why:      "contentMediaType is an annotation in JSON Schema 2020-12: validators need not check it.",
		Where:    "Channel.Prepare (the json check rule, pkg/dispatch/decode.go)",
	},
	{
		ID:       "not-both-empty",
		Channels: []string{"mos-haiding"},
		Rule:     "order_sync_request.order and order_sync_request.refund_order cannot both be empty (absent, null, {} or only null members).",
		Why:      "A conditional requirement across two members, written in Go (HaidingRequest.rules), not in the tags the schemas are generated from.",
		Where:    "HaidingRequest.rules (pkg/dispatch/mos_haiding.go)",
	},
	{
		ID:       "cross-field-sum",
		Channels: []string{"mos-haiding"},
		Rule:     "order.total_fee, when given, equals Σ sale_price × quantity over order_items (rounded either way when the sum has a fraction of a fen).",
		Why:      "JSON Schema cannot compute across members.",
		Where:    "HaidingRequest.rules (pkg/dispatch/mos_haiding.go)",
	},
	{
		ID: "default-key",
		Rule: fmt.Sprintf("Without an envelope idempotency_key, the request value the channel's default key comes from is present, not blank and at most %d characters: "+
			"tmall-aliauto sync_single_order_req.idempotent_id, omni-saas request_no, mos-haiding refund_order.out_refund_no (a refund) or order.out_trade_no (an order), "+
			"diantao-tripartite tripartite_order_info_dto.out_order_id.", MaxIdempotencyKeyLen),
		Why:   "A requirement conditional on the envelope, from each channel's key derivation in Go.",
		Where: "Channel.Prepare and each channel's key method (keyPart, pkg/dispatch/prepare.go)",
	},
	{
		ID:    "session",
		Rule:  "Channels that need a session (omni-saas, icbu-trade, mos-haiding) reject an event whose seller (or top.default_seller) has no session key.",
		Why:   "It depends on the deployment's sessions file, not on the event.",
		Where: "Pipeline.Process (pkg/pipeline/pipeline.go); worker validate does not check it",
	},
}

// contractReadme renders api/README.md: the files, how to use them, and SchemaLimits.
func contractReadme() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("<!-- Generated by `worker schema` (go generate ./cmd/worker) from pkg/dispatch: do not edit. -->\n")
	b.WriteString("# ordersync contract\n\n")
	b.WriteString("Generated from the channel definitions the worker validates with (`pkg/dispatch`: the wire structs' `json` and\n" +
		"`check` tags, the envelope limits and the `Outcome` type); `make test` fails when these files drift from the code.\n" +
		"Regenerate with `go run ./cmd/worker schema` (or `go generate ./cmd/worker`).\n\n")
	b.WriteString("| file | what |\n|---|---|\n")
	b.WriteString("| [`asyncapi.yaml`](asyncapi.yaml) | AsyncAPI " + asyncAPIVersion + ": the channel topics, `" + defaultResultTopic + "` and `" + defaultDLQTopic +
		"`, message keys, headers, payloads, the worker's operations and Kafka bindings |\n")
	for _, s := range specs {
		fmt.Fprintf(&b, "| [`schemas/%s`](schemas/%[1]s) | JSON Schema 2020-12 of an event on `%s` (%s) |\n", schemaFile(s.id), s.topic, s.method)
	}
	fmt.Fprintf(&b, "| [`schemas/%s`](schemas/%[1]s) | JSON Schema 2020-12 of an outcome on `%s` (`%s`) |\n\n", schemaFile(""), defaultResultTopic, Schema)
	b.WriteString("Validate events before publishing with `worker validate --channel ID FILE` (exactly the worker's checks) or with\n" +
		"any JSON Schema 2020-12 validator. A schema accepts every event the worker accepts; it rejects what the worker\n" +
		"rejects except for the rules below, which only the worker (and `worker validate`) checks.\n\n")
	b.WriteString("## Rules the schemas cannot express\n\n")
	b.WriteString("| rule | channels | why not in the schema | enforced by |\n|---|---|---|---|\n")
	for _, l := range schemaLimits {
		ch := "all"
		if l.Channels != nil {
			ch = strings.Join(l.Channels, ", ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdCell(l.Rule), ch, mdCell(l.Why), mdCell(l.Where))
	}
	return b.Bytes(), nil
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
