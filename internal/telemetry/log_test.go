package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const phone, masked = "13912345678", "139****5678"

var testTime = time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)

// spanContext returns a context holding a valid, sampled span context.
func spanContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	t.Cleanup(func() { span.End() })
	return ctx, span.SpanContext()
}

// decodeJSON returns the one JSON record in buf without the time field.
func decodeJSON(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("decode %q: %v", buf.String(), err)
	}
	delete(m, "time")
	return m
}

type phoneValuer struct{}

func (phoneValuer) LogValue() slog.Value { return slog.StringValue("valuer " + phone) }

func TestLoggerJSON(t *testing.T) {
	ctx, sc := spanContext(t)
	tid, sid := sc.TraceID().String(), sc.SpanID().String()
	tests := []struct {
		name string
		ctx  context.Context
		log  func(l *slog.Logger, ctx context.Context)
		want map[string]any
	}{
		{
			name: "no span: no ids",
			ctx:  context.Background(),
			log:  func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "outcome", "status", "succeeded") },
			want: map[string]any{"level": "INFO", "msg": "outcome", "status": "succeeded"},
		},
		{
			name: "span: ids",
			ctx:  ctx,
			log:  func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "outcome", "status", "succeeded") },
			want: map[string]any{"level": "INFO", "msg": "outcome", "status": "succeeded", "trace_id": tid, "span_id": sid},
		},
		{
			name: "message and string attr masked",
			ctx:  context.Background(),
			log: func(l *slog.Logger, ctx context.Context) {
				l.WarnContext(ctx, "bad receiver "+phone, "mobile", phone, "n", 13912345678)
			},
			// Numbers are not strings: an int attribute is not masked (log ids, not payloads).
			want: map[string]any{"level": "WARN", "msg": "bad receiver " + masked, "mobile": masked, "n": float64(13912345678)},
		},
		{
			name: "error, RawMessage and LogValuer masked",
			ctx:  context.Background(),
			log: func(l *slog.Logger, ctx context.Context) {
				l.ErrorContext(ctx, "rejected",
					"error", fmt.Errorf("receiver_mobile %s: %w", phone, errors.New("invalid")),
					"request", json.RawMessage(`{"mobile":"`+phone+`"}`),
					"valuer", phoneValuer{})
			},
			want: map[string]any{
				"level": "ERROR", "msg": "rejected",
				"error":   "receiver_mobile " + masked + ": invalid",
				"request": map[string]any{"mobile": masked},
				"valuer":  "valuer " + masked,
			},
		},
		{
			name: "inline group masked",
			ctx:  context.Background(),
			log: func(l *slog.Logger, ctx context.Context) {
				l.InfoContext(ctx, "m", slog.Group("buyer", "mobile", phone, slog.Group("alt", "mobile", phone)))
			},
			want: map[string]any{"level": "INFO", "msg": "m", "buyer": map[string]any{
				"mobile": masked, "alt": map[string]any{"mobile": masked},
			}},
		},
		{
			name: "WithAttrs masked",
			ctx:  ctx,
			log:  func(l *slog.Logger, ctx context.Context) { l.With("mobile", phone).InfoContext(ctx, "m") },
			want: map[string]any{"level": "INFO", "msg": "m", "mobile": masked, "trace_id": tid, "span_id": sid},
		},
		{
			name: "WithGroup keeps ids top-level and masks",
			ctx:  ctx,
			log: func(l *slog.Logger, ctx context.Context) {
				l.With("channel", "omni-saas").WithGroup("event").With("mobile", phone).
					WithGroup("inner").InfoContext(ctx, "m", "k", phone)
			},
			want: map[string]any{
				"level": "INFO", "msg": "m", "channel": "omni-saas", "trace_id": tid, "span_id": sid,
				"event": map[string]any{"mobile": masked, "inner": map[string]any{"k": masked}},
			},
		},
		{
			name: "empty group omitted",
			ctx:  ctx,
			log:  func(l *slog.Logger, ctx context.Context) { l.WithGroup("event").InfoContext(ctx, "m") },
			want: map[string]any{"level": "INFO", "msg": "m", "trace_id": tid, "span_id": sid},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(NewLogger(&buf, "json", slog.LevelInfo), tt.ctx)
			if diff := cmp.Diff(tt.want, decodeJSON(t, &buf)); diff != "" {
				t.Errorf("record mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoggerText(t *testing.T) {
	ctx, sc := spanContext(t)
	var buf bytes.Buffer
	l := NewLogger(&buf, "TEXT", slog.LevelDebug)
	l.WithGroup("g").DebugContext(ctx, "call "+phone, "mobile", phone)
	got := buf.String()
	for _, want := range []string{
		`level=DEBUG`, `msg="call ` + masked + `"`, `g.mobile=` + masked,
		`trace_id=` + sc.TraceID().String(), `span_id=` + sc.SpanID().String(),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("text record %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, phone) {
		t.Errorf("text record %q holds the phone number", got)
	}
}

func TestLoggerLevelAndFormat(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogger(&buf, "yaml", slog.LevelWarn) // unknown format: JSON
	l.Info("dropped")
	if buf.Len() != 0 {
		t.Fatalf("info record written at warn level: %q", buf.String())
	}
	l.Warn("kept")
	if got := decodeJSON(t, &buf)["msg"]; got != "kept" {
		t.Errorf("msg = %v, want kept", got)
	}
}

// The caller's record must not be modified: slog may hand the same record to
// several handlers.
func TestHandlerDoesNotModifyRecord(t *testing.T) {
	ctx, _ := spanContext(t)
	r := slog.NewRecord(testTime, slog.LevelInfo, "m "+phone, 0)
	r.AddAttrs(slog.String("mobile", phone))
	h := NewHandler(slog.NewJSONHandler(io.Discard, nil)).WithGroup("g")
	if err := h.Handle(ctx, r); err != nil {
		t.Fatal(err)
	}
	var got []string
	r.Attrs(func(a slog.Attr) bool { got = append(got, a.String()); return true })
	if diff := cmp.Diff([]string{"mobile=" + phone}, got); diff != "" || r.Message != "m "+phone {
		t.Errorf("record changed: msg %q, attrs (-want +got):\n%s", r.Message, diff)
	}
}

func BenchmarkLogger(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("bench").Start(context.Background(), "op")
	defer span.End()
	plain := slog.New(slog.NewJSONHandler(io.Discard, nil))
	wrapped := NewLogger(io.Discard, "json", slog.LevelInfo)
	log := func(l *slog.Logger, ctx context.Context) {
		l.InfoContext(ctx, "outcome", "channel", "omni-saas", "status", "succeeded", "event_id", "evt-0001", "attempts", 1)
	}
	b.Run("slog_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			log(plain, ctx)
		}
	})
	b.Run("telemetry_json_no_span", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			log(wrapped, context.Background())
		}
	})
	b.Run("telemetry_json_span", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			log(wrapped, ctx)
		}
	})
}
