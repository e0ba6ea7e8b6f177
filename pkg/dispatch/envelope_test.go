package dispatch

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func nested(depth int) string {
	// depth counts the envelope object: request is level 2.
	inner := strings.Repeat(`{"a":`, depth-1) + "1" + strings.Repeat("}", depth-1)
	return `{"event_id":"e","request":` + inner + `}`
}

func TestDecodeEnvelope(t *testing.T) {
	long := strings.Repeat("e", MaxEventIDLen)
	tests := []struct {
		name     string
		value    string
		maxBytes int
		want     *Envelope
		wantErr  string
	}{
		{name: "minimal", value: `{"event_id":"e1","request":{}}`,
			want: &Envelope{EventID: "e1", Request: []byte(`{}`)}},
		{name: "all fields", value: `{"event_id":"e1","idempotency_key":"k","occurred_at":"2026-11-21T10:00:00+08:00","seller":"s","request":{"a": 1}}`,
			want: &Envelope{EventID: "e1", IdempotencyKey: "k", OccurredAt: "2026-11-21T10:00:00+08:00", Seller: "s", Request: []byte(`{"a": 1}`)}},
		{name: "unknown envelope fields ignored", value: `{"event_id":"e1","v":2,"meta":{"x":[1,{"y":null}]},"request":{}}`,
			want: &Envelope{EventID: "e1", Request: []byte(`{}`)}},
		{name: "null optional fields", value: `{"event_id":"e1","idempotency_key":null,"occurred_at":null,"seller":null,"request":{}}`,
			want: &Envelope{EventID: "e1", Request: []byte(`{}`)}},
		{name: "white space", value: " \n{ \"request\" : { } , \"event_id\" : \"e1\" }\n ",
			want: &Envelope{EventID: "e1", Request: []byte(`{ }`)}},
		{name: "occurred_at UTC with fraction", value: `{"event_id":"e1","occurred_at":"2026-11-21T02:00:00.123Z","request":{}}`,
			want: &Envelope{EventID: "e1", OccurredAt: "2026-11-21T02:00:00.123Z", Request: []byte(`{}`)}},
		{name: "event_id 128 chars", value: `{"event_id":"` + long + `","request":{}}`,
			want: &Envelope{EventID: long, Request: []byte(`{}`)}},
		{name: "event_id 128 runes", value: `{"event_id":"` + strings.Repeat("事", 128) + `","request":{}}`,
			want: &Envelope{EventID: strings.Repeat("事", 128), Request: []byte(`{}`)}},
		{name: "depth 32", value: nested(32), want: &Envelope{EventID: "e",
			Request: []byte(strings.Repeat(`{"a":`, 31) + "1" + strings.Repeat("}", 31))}},
		{name: "brackets inside strings do not count", value: `{"event_id":"[[[[{{{{\"","request":{"s":"` + strings.Repeat("[", 100) + `"}}`,
			want: &Envelope{EventID: `[[[[{{{{"`, Request: []byte(`{"s":"` + strings.Repeat("[", 100) + `"}`)}},
		{name: "exactly max bytes", value: `{"event_id":"e","request":{}}`, maxBytes: 29,
			want: &Envelope{EventID: "e", Request: []byte(`{}`)}},

		{name: "too large", value: `{"event_id":"e","request":{}}`, maxBytes: 28,
			wantErr: "value is 29 bytes, more than the 28 allowed"},
		{name: "default limit", value: `{"event_id":"e","request":{"s":"` + strings.Repeat("x", DefaultMaxBytes) + `"}}`,
			wantErr: "value is 1048611 bytes, more than the 1048576 allowed"},
		{name: "invalid UTF-8", value: "{\"event_id\":\"e\xff\",\"request\":{}}", wantErr: "value is not valid UTF-8"},
		{name: "depth 33", value: nested(33), wantErr: "value is nested more than 32 levels deep"},
		{name: "deep garbage", value: strings.Repeat("[", 10000), wantErr: "value is nested more than 32 levels deep"},
		{name: "empty", value: "", wantErr: "value is empty"},
		{name: "blank", value: "  \n", wantErr: "value is empty"},
		{name: "syntax", value: `{"event_id":"e",}`, wantErr: "invalid JSON at offset 16: unexpected '}'"},
		{name: "truncated", value: `{"event_id":"e","request":{`, wantErr: "invalid JSON at offset 27: unexpected end of input"},
		{name: "syntax inside request", value: `{"event_id":"e","request":{"a":tru}}`, wantErr: "invalid JSON at offset 34: unexpected '}'"},
		{name: "syntax in ignored field", value: `{"event_id":"e","x":[1,],"request":{}}`, wantErr: "invalid JSON at offset 23: unexpected ']'"},
		{name: "trailing data", value: `{"event_id":"e","request":{}} {}`, wantErr: "invalid JSON: data after the value"},
		{name: "array", value: `[{"event_id":"e"}]`, wantErr: "value is not a JSON object"},
		{name: "string", value: `"e"`, wantErr: "value is not a JSON object"},
		{name: "null", value: `null`, wantErr: "value is not a JSON object"},

		{name: "event_id missing", value: `{"request":{}}`, wantErr: "event_id: required"},
		{name: "event_id empty", value: `{"event_id":"","request":{}}`, wantErr: "event_id: required"},
		{name: "event_id null", value: `{"event_id":null,"request":{}}`, wantErr: "event_id: required"},
		{name: "event_id blank", value: `{"event_id":" \t","request":{}}`, wantErr: "event_id: required"},
		{name: "idempotency_key blank", value: `{"event_id":"e","idempotency_key":"  ","request":{}}`, wantErr: "idempotency_key: blank"},
		{name: "event_id number", value: `{"event_id":123,"request":{}}`, wantErr: "event_id: must be a string"},
		{name: "event_id object", value: `{"event_id":{},"request":{}}`, wantErr: "event_id: must be a string"},
		{name: "event_id 129 chars", value: `{"event_id":"` + long + `x","request":{}}`, wantErr: "event_id: longer than 128 characters"},
		{name: "event_id duplicate", value: `{"event_id":"a","event_id":"b","request":{}}`, wantErr: "event_id: duplicate field"},
		{name: "idempotency_key 257", value: `{"event_id":"e","idempotency_key":"` + strings.Repeat("k", 257) + `","request":{}}`,
			wantErr: "idempotency_key: longer than 256 characters"},
		{name: "idempotency_key number", value: `{"event_id":"e","idempotency_key":7,"request":{}}`, wantErr: "idempotency_key: must be a string"},
		{name: "occurred_at not RFC 3339", value: `{"event_id":"e","occurred_at":"2026-11-21 10:00:00","request":{}}`, wantErr: "occurred_at: not RFC 3339"},
		{name: "occurred_at no zone", value: `{"event_id":"e","occurred_at":"2026-11-21T10:00:00","request":{}}`, wantErr: "occurred_at: not RFC 3339"},
		{name: "occurred_at epoch", value: `{"event_id":"e","occurred_at":1700000000,"request":{}}`, wantErr: "occurred_at: must be a string"},
		{name: "seller number", value: `{"event_id":"e","seller":1,"request":{}}`, wantErr: "seller: must be a string"},
		{name: "request missing", value: `{"event_id":"e"}`, wantErr: "request: required"},
		{name: "request null", value: `{"event_id":"e","request":null}`, wantErr: "request: required"},
		{name: "request array", value: `{"event_id":"e","request":[]}`, wantErr: "request: must be an object"},
		{name: "request string", value: `{"event_id":"e","request":"{}"}`, wantErr: "request: must be an object"},
		{name: "request duplicate", value: `{"event_id":"e","request":{},"request":{}}`, wantErr: "request: duplicate field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEnvelope([]byte(tt.value), tt.maxBytes)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("DecodeEnvelope = %+v, want error %q", got, tt.wantErr)
				}
				if fe := fieldErr(t, err); fe.Error() != tt.wantErr {
					t.Errorf("error = %q, want %q", fe.Error(), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeEnvelope: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("envelope (-want +got):\n%s", diff)
			}
		})
	}
}

// The request does not alias the caller's buffer, which Kafka readers reuse.
func TestDecodeEnvelopeCopiesRequest(t *testing.T) {
	value := []byte(`{"event_id":"e","request":{"a":"b"}}`)
	env := mustDecode(t, value)
	for i := range value {
		value[i] = ' '
	}
	if got := string(env.Request); got != `{"a":"b"}` {
		t.Errorf("request = %q after reusing the buffer", got)
	}
}

func TestFieldError(t *testing.T) {
	tests := []struct {
		err         *FieldError
		wantText    string
		wantMissing bool
	}{
		{&FieldError{Path: "request.goods_details[3].price", Reason: ReasonRequired}, "request.goods_details[3].price: required", true},
		{&FieldError{Path: "event_id", Reason: "must be a string"}, "event_id: must be a string", false},
		{&FieldError{Reason: "value is empty"}, "value is empty", false},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.wantText {
			t.Errorf("Error() = %q, want %q", got, tt.wantText)
		}
		if got := tt.err.Missing(); got != tt.wantMissing {
			t.Errorf("%v: Missing() = %v, want %v", tt.err, got, tt.wantMissing)
		}
		if got := tt.err.FieldPath(); got != tt.err.Path {
			t.Errorf("FieldPath() = %q, want %q", got, tt.err.Path)
		}
	}
}
