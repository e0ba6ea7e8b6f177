package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Headers of a dead letter, besides the original message's own: why it failed and where it came
// from, so `worker replay` can send it back.
const (
	HeaderError           = "ordersync-error"
	HeaderSourceTopic     = "ordersync-source-topic"
	HeaderSourcePartition = "ordersync-source-partition"
	HeaderSourceOffset    = "ordersync-source-offset"
	// HeaderValueBytes and HeaderValueTruncated mark a reduced dead letter: its value was cut or
	// dropped to fit the producer's limit; the original is at the source coordinates.
	HeaderValueBytes     = "ordersync-value-bytes"
	HeaderValueTruncated = "ordersync-value-truncated"
)

// maxErrorHeader bounds the ordersync-error header of a dead letter.
const maxErrorHeader = 1024

// MinRecordBytes is the smallest Config.MaxRecordBytes: room for a reduced dead letter (its key,
// trace and ordersync-* headers) and a minimal outcome.
const MinRecordBytes = 16 << 10

// DeadLetter builds the dead letter of m: its key, value and headers plus the ordersync-error
// header (reason, cut to 1 KiB) and the source coordinates. Dead-letter headers m already carries
// (a replayed dead letter that failed again) are replaced.
func DeadLetter(topic string, m kafka.Message, reason string) kafka.Message {
	hs := make([]kafka.Header, 0, len(m.Headers)+4)
	for _, h := range m.Headers {
		if !isDeadLetterHeader(h.Key) {
			hs = append(hs, h)
		}
	}
	if len(reason) > maxErrorHeader {
		reason = reason[:maxErrorHeader]
	}
	hs = append(hs,
		kafka.Header{Key: HeaderError, Value: []byte(reason)},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	return kafka.Message{Topic: topic, Key: m.Key, Value: m.Value, Headers: hs}
}

func isDeadLetterHeader(key string) bool {
	switch key {
	case HeaderError, HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset, HeaderValueBytes, HeaderValueTruncated:
		return true
	}
	return false
}

// RecordSize is the size a record takes in a produce request, as kafka-go counts it against
// Writer.BatchBytes.
func RecordSize(m kafka.Message) int {
	n := 70 + len(m.Key) + len(m.Value) // record batch and record overhead, rounded up
	for _, h := range m.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}

// FitDeadLetter reduces a dead letter (made by [DeadLetter]) to at most limit bytes: the value is
// cut, and when even the key and headers leave no room it is dropped together with the original
// headers but the trace context; headers ordersync-value-bytes (the original value's size) and
// ordersync-value-truncated: true say so. A dead letter that fits is returned as it is. limit
// must be at least MinRecordBytes.
func FitDeadLetter(d kafka.Message, limit int) kafka.Message {
	if RecordSize(d) <= limit {
		return d
	}
	size := strconv.Itoa(len(d.Value))
	if old := Header(d, HeaderValueBytes); old != "" {
		size = old // reduced before
	}
	hs := make([]kafka.Header, 0, len(d.Headers)+2)
	for _, h := range d.Headers {
		if h.Key != HeaderValueBytes && h.Key != HeaderValueTruncated {
			hs = append(hs, h)
		}
	}
	hs = append(hs, kafka.Header{Key: HeaderValueBytes, Value: []byte(size)}, kafka.Header{Key: HeaderValueTruncated, Value: []byte("true")})
	r := kafka.Message{Topic: d.Topic, Key: d.Key, Headers: hs}
	if room := limit - RecordSize(r); room > 0 {
		r.Value = d.Value[:min(room, len(d.Value))]
		return r
	}
	// The key and headers alone do not fit: keep what replay and tracing need.
	keep := hs[:0:0]
	for _, h := range hs {
		switch {
		case isDeadLetterHeader(h.Key), h.Key == "traceparent", h.Key == "tracestate":
			keep = append(keep, h)
		}
	}
	r.Headers = keep
	if len(r.Key) > limit/4 {
		r.Key = r.Key[:limit/4]
	}
	return r
}

// outbox is what a processed task still has to publish, each record with its "send" span.
type outbox struct {
	records  []kafka.Message
	spans    []trace.Span
	limit    int  // the size the dead letter is reduced to
	fellBack bool // the processor's records were replaced by Result.Fallback
	shrinks  int  // reductions so far
}

// publish writes what t's result asks for. Records already acknowledged are not written again
// when a later attempt follows a partial failure. Produce errors are classified: a record that
// can never be written as it is (too large, invalid) is reduced — a dead letter cut, the
// processor's records replaced by their fallback — and written again; a topic that cannot be
// written (not authorized, missing, records still refused after reduction) is a *Pause of reason
// "unwritable"; anything else is transient.
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
		o.records, o.spans = nil, nil
		return nil
	}
	failed := make([]error, len(o.records)) // nil: written
	var werrs kafka.WriteErrors
	var tooLarge kafka.MessageTooLargeError
	switch {
	case errors.As(err, &werrs) && len(werrs) == len(o.records):
		copy(failed, werrs)
	case errors.As(err, &tooLarge):
		// Nothing was written; the oversized record is the one to reduce.
		for i := range failed {
			failed[i] = errRetry
			if sameRecord(o.records[i], tooLarge.Message) {
				failed[i] = kafka.MessageSizeTooLarge
			}
		}
	default:
		for i := range failed {
			failed[i] = err
		}
	}
	var unwritable error
	keep := 0
	for i, e := range failed {
		if e == nil {
			c.m.sent.Add(context.Background(), 1, c.m.topicAttrs(o.records[i].Topic))
			o.spans[i].End()
			continue
		}
		switch classifyProduce(e) {
		case produceRecord:
			if !c.shrink(t, i) {
				unwritable = fmt.Errorf("%s refuses a record even after reduction: %w", o.records[i].Topic, e)
			}
		case produceTopic:
			unwritable = fmt.Errorf("%s: %w", o.records[i].Topic, e)
		}
		o.records[keep], o.spans[keep] = o.records[i], o.spans[i]
		keep++
	}
	o.records, o.spans = o.records[:keep], o.spans[:keep]
	for _, s := range o.spans {
		s.AddEvent("retry", trace.WithAttributes(attribute.String("error", err.Error())))
	}
	if unwritable != nil {
		return &Pause{Scope: "unwritable", Reason: "unwritable", Level: slog.LevelError, Err: unwritable}
	}
	return err
}

var errRetry = errors.New("written again with the reduced record")

func sameRecord(a, b kafka.Message) bool {
	return a.Topic == b.Topic && string(a.Key) == string(b.Key) && len(a.Value) == len(b.Value) && len(a.Headers) == len(b.Headers)
}

// shrink reduces record i of t's outbox for a retry; false when it cannot be reduced further.
func (c *Consumer) shrink(t *task, i int) bool {
	o := t.out
	r := &o.records[i]
	if o.shrinks++; o.shrinks > 8 {
		return false
	}
	if r.Topic == c.cfg.DeadLetterTopic && t.res.DeadLetter != "" {
		before := RecordSize(*r)
		o.limit = max(MinRecordBytes/2, min(o.limit, before)/2)
		*r = FitDeadLetter(*r, o.limit)
		return RecordSize(*r) < before
	}
	if o.fellBack || t.res.Fallback == nil {
		return false
	}
	// Replace the processor's records with their fallback, keeping any dead letter.
	o.fellBack = true
	var kept []kafka.Message
	var keptSpans []trace.Span
	for j, rec := range o.records {
		if rec.Topic == c.cfg.DeadLetterTopic && t.res.DeadLetter != "" {
			kept, keptSpans = append(kept, rec), append(keptSpans, o.spans[j])
		} else {
			o.spans[j].SetAttributes(attribute.Bool("ordersync.fallback", true))
			o.spans[j].End()
		}
	}
	fb := c.traced(t, t.res.Fallback())
	o.records = append(fb.records, kept...)
	o.spans = append(fb.spans, keptSpans...)
	return true
}

// produce error classes.
const (
	produceTransient = iota // retry as it is
	produceRecord           // this record can never be written as it is
	produceTopic            // nothing can be written to the topic for now
)

// classifyProduce sorts a produce error. kafka-go retries the errors it deems temporary itself
// (Writer.MaxAttempts); what comes back after that is classified here.
func classifyProduce(err error) int {
	if errors.Is(err, errRetry) {
		return produceTransient
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		switch ke {
		case kafka.MessageSizeTooLarge, kafka.RecordListTooLarge, kafka.InvalidRecord, kafka.InvalidMessageSize,
			kafka.InvalidTimestamp, kafka.InvalidMessage:
			return produceRecord
		case kafka.TopicAuthorizationFailed, kafka.ClusterAuthorizationFailed, kafka.TransactionalIDAuthorizationFailed,
			kafka.InvalidTopic, kafka.UnknownTopicOrPartition, kafka.SASLAuthenticationFailed, kafka.PolicyViolation:
			return produceTopic
		}
		if !ke.Temporary() && ke != kafka.RequestTimedOut && ke != kafka.NetworkException {
			return produceTopic
		}
	}
	return produceTransient // connections, timeouts, leadership moving: kafka-go gave up for now
}

// outbox builds the records of t's result: the processor's and, when due, the dead letter, each
// under its own "send <topic>" span whose context is injected into the record. Records that do not
// fit MaxRecordBytes are reduced before the first attempt.
func (c *Consumer) outbox(t *task) *outbox {
	recs := t.res.Records
	fellBack := false
	for _, r := range recs {
		if RecordSize(r) > c.cfg.MaxRecordBytes && t.res.Fallback != nil {
			recs, fellBack = t.res.Fallback(), true
			break
		}
	}
	if t.res.DeadLetter != "" {
		recs = append(recs[:len(recs):len(recs)], DeadLetter(c.cfg.DeadLetterTopic, t.msg, t.res.DeadLetter))
	}
	o := c.traced(t, recs)
	if t.res.DeadLetter != "" {
		// Fitted with its trace context in: the headers count against the limit too.
		last := len(o.records) - 1
		o.records[last] = FitDeadLetter(o.records[last], c.cfg.MaxRecordBytes)
	}
	o.limit, o.fellBack = c.cfg.MaxRecordBytes, fellBack
	return o
}

// traced starts a "send <topic>" span per record and injects its context into the record.
func (c *Consumer) traced(t *task, recs []kafka.Message) *outbox {
	o := &outbox{records: recs, spans: make([]trace.Span, len(recs))}
	for i := range recs {
		sctx, span := c.tracer.Start(t.ctx, "send "+recs[i].Topic, trace.WithSpanKind(trace.SpanKindProducer))
		if span.IsRecording() {
			span.SetAttributes(
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.operation.name", "send"),
				attribute.String("messaging.operation.type", "send"),
				attribute.String("messaging.destination.name", recs[i].Topic),
				attribute.String("messaging.kafka.message.key", c.cfg.RedactKey(string(recs[i].Key))),
			)
		}
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
