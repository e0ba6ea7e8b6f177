package consumer

import (
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier adapts kafka-go message headers to an OpenTelemetry TextMapCarrier, so one
// propagator injects and extracts trace context (traceparent, tracestate, baggage) in both
// directions. Set replaces every header of the same key instead of appending, so a record built
// from copied inbound headers never carries two traceparents.
type HeaderCarrier struct {
	Headers *[]kafka.Header
}

var _ propagation.TextMapCarrier = HeaderCarrier{}

// Get returns the value of the first header named key, or "".
func (c HeaderCarrier) Get(key string) string {
	for _, h := range *c.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces the headers named key with one holding value.
func (c HeaderCarrier) Set(key, value string) {
	hs := (*c.Headers)[:0:0]
	for _, h := range *c.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	*c.Headers = append(hs, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(*c.Headers))
	for _, h := range *c.Headers {
		keys = append(keys, h.Key)
	}
	return keys
}

// Header returns the value of the first header named key, or "" when there is none.
func Header(m kafka.Message, key string) string {
	return HeaderCarrier{Headers: &m.Headers}.Get(key)
}
