package telemetry

import (
	"strings"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
)

// KafkaHeaders is a propagation.TextMapCarrier over the headers of a kafka-go
// message, used in both directions:
//
//	ctx = prop.Extract(ctx, telemetry.KafkaCarrier(&in.Headers))
//	prop.Inject(ctx, telemetry.KafkaCarrier(&out.Headers))
//
// Keys match case-insensitively. Get returns the first matching header. Set
// replaces every header with that key by one header (so an outcome built from
// copied inbound headers never carries two traceparents) and never writes
// into the backing array of the slice it was given, so a slice shared with an
// inbound message is left intact. Not safe for concurrent use on the same
// headers.
type KafkaHeaders struct{ h *[]kafka.Header }

var _ propagation.TextMapCarrier = KafkaHeaders{}

// KafkaCarrier returns the carrier over *headers; headers must not be nil.
func KafkaCarrier(headers *[]kafka.Header) KafkaHeaders { return KafkaHeaders{h: headers} }

// Get returns the value of the first header named key, or "".
func (c KafkaHeaders) Get(key string) string {
	for _, h := range *c.h {
		if strings.EqualFold(h.Key, key) {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces all headers named key by one header key=value, appended last.
func (c KafkaHeaders) Set(key, value string) {
	old := *c.h
	kept := old
	for i, h := range old {
		if strings.EqualFold(h.Key, key) {
			// Copy instead of filtering in place: old may share its array.
			kept = make([]kafka.Header, 0, len(old))
			kept = append(kept, old[:i]...)
			for _, h := range old[i+1:] {
				if !strings.EqualFold(h.Key, key) {
					kept = append(kept, h)
				}
			}
			break
		}
	}
	// Full slice expression: append must not write past len into a shared array.
	*c.h = append(kept[:len(kept):len(kept)], kafka.Header{Key: key, Value: []byte(value)})
}

// Keys returns the distinct header keys in order of first appearance.
func (c KafkaHeaders) Keys() []string {
	keys := make([]string, 0, len(*c.h))
outer:
	for _, h := range *c.h {
		for _, k := range keys {
			if k == h.Key {
				continue outer
			}
		}
		keys = append(keys, h.Key)
	}
	return keys
}
