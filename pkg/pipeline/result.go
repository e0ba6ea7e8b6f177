package pipeline

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
)

// finish builds the result: the outcome record, and the dead-letter reason when dead.
func (p *Pipeline) finish(ctx context.Context, ev *event, dead bool) consumer.Result {
	o := &ev.outcome
	if o.CompletedAt.IsZero() {
		o.CompletedAt = p.cfg.Now().UTC()
	}
	key := o.IdempotencyKey
	if key == "" {
		key = o.EventID
	}
	body := ev.encoded
	if body == nil {
		var err error
		if body, err = p.encode(o); err != nil {
			// Only an unencodable response could do this; keep the outcome without it.
			o.Response = nil
			body, _ = o.MarshalJSON()
		}
	}
	record := func(value []byte) []kafka.Message {
		return []kafka.Message{{
			Topic:   p.cfg.ResultsTopic,
			Key:     []byte(key),
			Value:   value,
			Headers: []kafka.Header{{Key: dispatch.HeaderChannel, Value: []byte(o.Channel)}},
		}}
	}
	res := consumer.Result{
		Records: record(body),
		// What the consumer publishes instead when the broker refuses the outcome for good: the
		// same outcome without its response and with short error texts.
		Fallback: func() []kafka.Message {
			small := *o
			small.ResponseTruncated = small.ResponseTruncated || len(small.Response) > 0
			small.Response = nil
			if small.Error != nil {
				e := *small.Error
				e.Msg, e.SubMsg = cut(e.Msg, 512), cut(e.SubMsg, 512)
				small.Error = &e
			}
			b, _ := small.MarshalJSON()
			return record(b)
		},
	}
	if dead {
		res.DeadLetter = "dead letter"
		if o.Error != nil {
			res.DeadLetter = o.Error.Msg
		}
	}

	span := trace.SpanFromContext(ctx)
	failed := o.Status == dispatch.StatusFailed || o.Status == dispatch.StatusRejected
	if span.IsRecording() {
		span.SetAttributes(attribute.String("ordersync.status", o.Status))
		if failed && o.Error != nil {
			span.SetStatus(codes.Error, o.Error.Msg)
			span.SetAttributes(attribute.String("error.type", o.Error.Kind))
		}
	}
	if failed || p.cfg.LogSuccesses {
		attrs := []any{"event_id", o.EventID, "channel", o.Channel, "idempotency_key", o.IdempotencyKey, "status", o.Status,
			"attempts", o.Attempts, "topic", o.Source.Topic, "partition", o.Source.Partition, "offset", o.Source.Offset}
		if o.Error != nil {
			attrs = append(attrs, "error_kind", o.Error.Kind, "error_code", o.Error.Code, "error", o.Error.Msg)
		}
		if o.RequestID != "" {
			attrs = append(attrs, "request_id", o.RequestID)
		}
		p.log.InfoContext(ctx, "outcome", attrs...)
	}
	p.m.outcome(ctx, o.Channel, o.Status)
	return res
}

// recordOverhead is what an outcome record takes besides its value: the key (an idempotency key
// of up to 256 characters), the trace and channel headers, the record's framing.
const recordOverhead = 4 << 10

// encode is o's JSON, fitted to MaxRecordBytes: a response too large is cut to a JSON string of
// its start, or dropped, and ResponseTruncated says so; error texts too long are cut.
func (p *Pipeline) encode(o *dispatch.Outcome) ([]byte, error) {
	body, err := o.MarshalJSON()
	limit := p.cfg.MaxRecordBytes - recordOverhead
	if err != nil || len(body) <= limit {
		return body, err
	}
	if o.Error != nil {
		e := *o.Error
		e.Msg, e.SubMsg = cut(e.Msg, 4<<10), cut(e.SubMsg, 4<<10)
		o.Error = &e
	}
	raw := o.Response
	if len(raw) > 0 {
		o.ResponseTruncated = true
	}
	// Escaping a cut response as a JSON string can make it longer; shrink until it fits.
	for n := limit - (len(body) - len(raw)); n > 64 && len(raw) > 0; {
		s, err := json.Marshal(strings.ToValidUTF8(string(raw[:min(n, len(raw))]), ""))
		if err != nil {
			break
		}
		o.Response = s
		if body, err = o.MarshalJSON(); err == nil && len(body) <= limit {
			return body, nil
		}
		n -= max(len(body)-limit, n/8)
	}
	o.Response = nil
	return o.MarshalJSON()
}

// cut returns s shortened to at most n bytes, on a UTF-8 boundary, marked with "…".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "…"
}

// lenientEventID digs event_id out of a value that failed validation, for the outcome.
func lenientEventID(value []byte) string {
	if len(value) > dispatch.DefaultMaxBytes {
		return ""
	}
	var v struct {
		EventID json.RawMessage `json:"event_id"`
	}
	if json.Unmarshal(value, &v) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(v.EventID, &s) != nil || len(s) > 128 {
		return ""
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
