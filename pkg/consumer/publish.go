package consumer

import (
	"context"
	"errors"
	"strconv"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Headers of a dead letter, besides the original message's own (DESIGN.md §4).
const (
	HeaderError           = "ordersync-error"
	HeaderSourceTopic     = "ordersync-source-topic"
	HeaderSourcePartition = "ordersync-source-partition"
	HeaderSourceOffset    = "ordersync-source-offset"
)

// DeadLetter builds the dead letter of m: its key, value and headers plus the ordersync-error
// header (reason) and the source coordinates.
func DeadLetter(topic string, m kafka.Message, reason string) kafka.Message {
	hs := make([]kafka.Header, 0, len(m.Headers)+4)
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderError, HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset:
			// A replayed dead letter that failed again: the new coordinates replace the old.
		default:
			hs = append(hs, h)
		}
	}
	hs = append(hs,
		kafka.Header{Key: HeaderError, Value: []byte(reason)},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	return kafka.Message{Topic: topic, Key: m.Key, Value: m.Value, Headers: hs}
}

// outbox is what a processed task still has to publish, each record with its "send" span.
type outbox struct {
	records []kafka.Message
	spans   []trace.Span
}

// publish writes what t's result asks for. Records already acknowledged are not written again
// when a later attempt follows a partial failure.
func (c *Consumer) publish(t *task) error {
	if t.out == nil {
		t.out = c.outbox(t)
	}
	o := t.out
	if len(o.records) == 0 {
		return nil
	}
	err := c.cfg.Writer.WriteMessages(t.ctx, o.records...)
	if err == nil {
		for i, r := range o.records {
			c.m.sent.Add(context.Background(), 1, c.m.topicAttrs(r.Topic))
			o.spans[i].End()
		}
		t.out = &outbox{}
		return nil
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == len(o.records) {
		left := &outbox{}
		for i, e := range werrs {
			if e == nil {
				c.m.sent.Add(context.Background(), 1, c.m.topicAttrs(o.records[i].Topic))
				o.spans[i].End()
				continue
			}
			left.records = append(left.records, o.records[i])
			left.spans = append(left.spans, o.spans[i])
		}
		t.out = left
	}
	for _, s := range t.out.spans {
		s.AddEvent("retry", trace.WithAttributes(attribute.String("error", err.Error())))
	}
	return err
}

// outbox builds the records of t's result: the processor's and, when due, the dead letter, each
// under its own "send <topic>" span whose context is injected into the record.
func (c *Consumer) outbox(t *task) *outbox {
	recs := t.res.Records
	if t.res.DeadLetter != "" {
		recs = append(recs[:len(recs):len(recs)], DeadLetter(c.cfg.DeadLetterTopic, t.msg, t.res.DeadLetter))
	}
	o := &outbox{records: recs, spans: make([]trace.Span, len(recs))}
	for i := range recs {
		sctx, span := c.tracer.Start(t.ctx, "send "+recs[i].Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.name", "send"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", recs[i].Topic),
			attribute.String("messaging.kafka.message.key", c.cfg.RedactKey(string(recs[i].Key))),
		))
		c.cfg.Propagator.Inject(sctx, HeaderCarrier{Headers: &recs[i].Headers})
		o.spans[i] = span
	}
	return o
}

// endUnsent ends the spans of records never acknowledged, as failed.
func (o *outbox) endUnsent(why string) {
	if o == nil {
		return
	}
	for _, s := range o.spans {
		s.SetStatus(codes.Error, why)
		s.SetAttributes(attribute.String("error.type", "publish"))
		s.End()
	}
	o.spans = nil
}
