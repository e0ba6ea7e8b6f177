package telemetry

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys added by the handler from the record's context.
const (
	LogKeyTraceID = "trace_id"
	LogKeySpanID  = "span_id"
)

// NewLogger returns a logger writing to w as JSON (format "json", also the
// default for "" or an unknown value) or logfmt-style text (format "text",
// case-insensitive), dropping records below level. Its handler is
// [NewHandler]: trace_id/span_id from the context and phone masking. The
// logger is safe for concurrent use if w is (slog serialises writes per
// handler).
func NewLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if strings.EqualFold(strings.TrimSpace(format), "text") {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(NewHandler(h))
}

// NewHandler wraps next so that every record
//
//   - carries top-level "trace_id" and "span_id" attributes (lower-case hex)
//     when the context passed to the logging call holds a valid span context
//     (use the *Context logging methods, e.g. logger.InfoContext(ctx, ...));
//     they stay top-level even inside WithGroup;
//   - has mainland-China mobile numbers masked by [MaskPhone] in the message
//     and in every string value, error value (replaced by its masked text
//     when it holds a number), json.RawMessage value and LogValuer result, at
//     any group depth, including attributes given to WithAttrs.
//
// Other values (structs, maps, slices, []byte) are passed through unmasked:
// log ids and outcomes, never raw payloads. NewHandler panics if next is nil
// (a programming error). The returned handler is safe for concurrent use if
// next is.
func NewHandler(next slog.Handler) slog.Handler {
	if next == nil {
		panic("telemetry: NewHandler with nil handler")
	}
	return &handler{next: next}
}

// handler implements slog.Handler; see NewHandler.
type handler struct {
	// next has every WithAttrs applied that came before the first WithGroup.
	next slog.Handler
	// pending holds the groups (and the attributes added inside them) opened
	// with WithGroup. They are applied in Handle, so that trace_id/span_id can
	// be added outside them.
	pending []groupOrAttrs
}

type groupOrAttrs struct {
	group string      // non-empty: a group opened here
	attrs []slog.Attr // otherwise: attributes added here
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	masked := maskAttrs(attrs)
	if len(h.pending) == 0 {
		return &handler{next: h.next.WithAttrs(masked)}
	}
	return &handler{next: h.next, pending: appendPending(h.pending, groupOrAttrs{attrs: masked})}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{next: h.next, pending: appendPending(h.pending, groupOrAttrs{group: name})}
}

func appendPending(p []groupOrAttrs, g groupOrAttrs) []groupOrAttrs {
	out := make([]groupOrAttrs, len(p), len(p)+1)
	copy(out, p)
	return append(out, g)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	msg := MaskPhone(r.Message)
	if msg == r.Message && len(h.pending) == 0 && !sc.IsValid() {
		// Common case without a span: pass r through unless an attribute
		// needs masking (checked without allocating).
		changed := false
		r.Attrs(func(a slog.Attr) bool {
			_, changed = maskAttr(a)
			return !changed
		})
		if !changed {
			return h.next.Handle(ctx, r)
		}
	}
	var attrs []slog.Attr
	if r.NumAttrs() > 0 {
		attrs = make([]slog.Attr, 0, r.NumAttrs())
		r.Attrs(func(a slog.Attr) bool {
			m, _ := maskAttr(a)
			attrs = append(attrs, m)
			return true
		})
	}

	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	// Nest the record's attributes inside the pending groups, innermost last.
	for i := len(h.pending) - 1; i >= 0; i-- {
		p := h.pending[i]
		if p.group == "" {
			attrs = append(append(make([]slog.Attr, 0, len(p.attrs)+len(attrs)), p.attrs...), attrs...)
			continue
		}
		attrs = []slog.Attr{{Key: p.group, Value: slog.GroupValue(attrs...)}}
	}
	out.AddAttrs(attrs...)
	if sc.IsValid() {
		out.AddAttrs(
			slog.String(LogKeyTraceID, sc.TraceID().String()),
			slog.String(LogKeySpanID, sc.SpanID().String()),
		)
	}
	return h.next.Handle(ctx, out)
}

// maskAttrs returns attrs with phone numbers masked; attrs itself when
// nothing changed.
func maskAttrs(attrs []slog.Attr) []slog.Attr {
	var out []slog.Attr
	for i, a := range attrs {
		m, changed := maskAttr(a)
		if changed && out == nil {
			out = make([]slog.Attr, len(attrs))
			copy(out, attrs[:i])
		}
		if out != nil {
			out[i] = m
		}
	}
	if out == nil {
		return attrs
	}
	return out
}

// maskAttr masks phone numbers in a's value and reports whether it changed
// anything (a LogValuer is resolved, which counts as a change).
func maskAttr(a slog.Attr) (slog.Attr, bool) {
	changed := false
	if a.Value.Kind() == slog.KindLogValuer {
		a.Value = a.Value.Resolve()
		changed = true
	}
	switch a.Value.Kind() {
	case slog.KindString:
		s := a.Value.String()
		if m := MaskPhone(s); m != s {
			return slog.String(a.Key, m), true
		}
	case slog.KindGroup:
		g := a.Value.Group()
		if m := maskAttrs(g); len(m) > 0 && &m[0] != &g[0] {
			return slog.Attr{Key: a.Key, Value: slog.GroupValue(m...)}, true
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			s := v.Error()
			if m := MaskPhone(s); m != s {
				return slog.String(a.Key, m), true
			}
		case json.RawMessage:
			s := string(v)
			if m := MaskPhone(s); m != s {
				return slog.Any(a.Key, json.RawMessage(m)), true
			}
		}
	}
	return a, changed
}
