package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// maskingExporter hands next the spans with every mainland-China mobile
// number masked by [MaskPhone]: in the span name, the status description and
// every string or string-slice attribute of the span, its events and its
// links. Instrumentation records values it does not understand — the Kafka
// message key, an idempotency key, an error text from the platform — so the
// masking happens once, here, for every span whatever its origin. It runs in
// the batch processor's goroutine, off the event's path; a span with nothing
// to mask is passed on as it is, without copying.
type maskingExporter struct{ next sdktrace.SpanExporter }

func (e maskingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	var out []sdktrace.ReadOnlySpan // a copy of spans, made at the first change
	for i, s := range spans {
		m, changed := maskSpan(s)
		if changed && out == nil {
			out = make([]sdktrace.ReadOnlySpan, len(spans))
			copy(out, spans[:i])
		}
		if out != nil {
			out[i] = m
		}
	}
	if out == nil {
		out = spans
	}
	return e.next.ExportSpans(ctx, out)
}

func (e maskingExporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }

// maskedSpan is a span with masked copies of its name, attributes, events,
// links and status; everything else comes from the original.
type maskedSpan struct {
	sdktrace.ReadOnlySpan
	name   string
	attrs  []attribute.KeyValue
	events []sdktrace.Event
	links  []sdktrace.Link
	status sdktrace.Status
}

func (s *maskedSpan) Name() string                     { return s.name }
func (s *maskedSpan) Attributes() []attribute.KeyValue { return s.attrs }
func (s *maskedSpan) Events() []sdktrace.Event         { return s.events }
func (s *maskedSpan) Links() []sdktrace.Link           { return s.links }
func (s *maskedSpan) Status() sdktrace.Status          { return s.status }

// maskSpan returns s with phone numbers masked and whether anything changed.
func maskSpan(s sdktrace.ReadOnlySpan) (sdktrace.ReadOnlySpan, bool) {
	name := MaskPhone(s.Name())
	status := s.Status()
	desc := MaskPhone(status.Description)
	attrs, ac := maskKVs(s.Attributes())
	events, ec := maskEvents(s.Events())
	links, lc := maskLinks(s.Links())
	if name == s.Name() && desc == status.Description && !ac && !ec && !lc {
		return s, false
	}
	status.Description = desc
	return &maskedSpan{ReadOnlySpan: s, name: name, attrs: attrs, events: events, links: links, status: status}, true
}

func maskEvents(evs []sdktrace.Event) ([]sdktrace.Event, bool) {
	var out []sdktrace.Event
	for i, ev := range evs {
		name := MaskPhone(ev.Name)
		attrs, changed := maskKVs(ev.Attributes)
		if (changed || name != ev.Name) && out == nil {
			out = make([]sdktrace.Event, len(evs))
			copy(out, evs[:i])
		}
		if out != nil {
			ev.Name, ev.Attributes = name, attrs
			out[i] = ev
		}
	}
	if out == nil {
		return evs, false
	}
	return out, true
}

func maskLinks(links []sdktrace.Link) ([]sdktrace.Link, bool) {
	var out []sdktrace.Link
	for i, l := range links {
		attrs, changed := maskKVs(l.Attributes)
		if changed && out == nil {
			out = make([]sdktrace.Link, len(links))
			copy(out, links[:i])
		}
		if out != nil {
			l.Attributes = attrs
			out[i] = l
		}
	}
	if out == nil {
		return links, false
	}
	return out, true
}

// maskKVs returns kvs with phone numbers masked in string and string-slice
// values; kvs itself and false when there was nothing to mask.
func maskKVs(kvs []attribute.KeyValue) ([]attribute.KeyValue, bool) {
	var out []attribute.KeyValue
	for i, kv := range kvs {
		m, changed := maskKV(kv)
		if changed && out == nil {
			out = make([]attribute.KeyValue, len(kvs))
			copy(out, kvs[:i])
		}
		if out != nil {
			out[i] = m
		}
	}
	if out == nil {
		return kvs, false
	}
	return out, true
}

func maskKV(kv attribute.KeyValue) (attribute.KeyValue, bool) {
	switch kv.Value.Type() {
	case attribute.STRING:
		s := kv.Value.AsString()
		if m := MaskPhone(s); m != s {
			return kv.Key.String(m), true
		}
	case attribute.STRINGSLICE:
		ss := kv.Value.AsStringSlice() // a copy
		changed := false
		for i, s := range ss {
			if m := MaskPhone(s); m != s {
				ss[i], changed = m, true
			}
		}
		if changed {
			return kv.Key.StringSlice(ss), true
		}
	}
	return kv, false
}
