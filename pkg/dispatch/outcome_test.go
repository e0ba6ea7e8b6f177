package dispatch

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ordersync/ordersync/pkg/topapi"
)

// TestOutcomeGolden compares the JSON of outcomes byte for byte with
// testdata/outcome/*.json: the outcome event's fields, in the documented order, optional
// ones omitted when empty.
func TestOutcomeGolden(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	tests := []struct {
		file string
		o    Outcome
	}{
		{"succeeded.json", Outcome{
			EventID: "evt-000123", Channel: "omni-saas", Method: "alibaba.omni.saas.order.create",
			IdempotencyKey: "REQ-3436967", Status: StatusSucceeded, Attempts: 2,
			Response:    json.RawMessage(`{"trade_no": 10309483976732423, "total_amount": 10000, "actual_pay_fee": 9000}`),
			RequestID:   "8ej1gs5m9ssl",
			Source:      Source{Topic: "orders.omni-saas", Partition: 0, Offset: 42},
			ReceivedAt:  time.Date(2026, 11, 21, 2, 0, 0, 123456789, time.UTC),
			CompletedAt: time.Date(2026, 11, 21, 2, 0, 1, 500000000, time.UTC),
			TraceID:     "4bf92f3577b34da6a3ce929d0e0e4736",
		}},
		{"failed.json", Outcome{
			Schema: Schema, EventID: "evt-000124", Channel: "omni-saas", Method: "alibaba.omni.saas.order.create",
			IdempotencyKey: "REQ-3436968", Status: StatusFailed, Attempts: 1,
			Error: ErrorFromTOP(&topapi.Error{Code: 50, Msg: "Remote service error",
				SubCode: "isv.invalid-parameter", SubMsg: "非法参数", RequestID: "8ej1gs5m9ssm"}),
			RequestID:   "8ej1gs5m9ssm",
			Source:      Source{Topic: "orders.omni-saas", Partition: 3, Offset: 7},
			ReceivedAt:  time.Date(2026, 11, 21, 10, 0, 0, 0, cst),
			CompletedAt: time.Date(2026, 11, 21, 10, 0, 0, 250000000, cst),
		}},
		{"rejected.json", Outcome{
			Status:      StatusRejected,
			Error:       ErrorFromValidation(&FieldError{Reason: "value is not valid UTF-8"}),
			Source:      Source{Topic: "orders.unknown", Partition: 1, Offset: 9},
			ReceivedAt:  time.Date(2026, 11, 21, 2, 0, 0, 0, time.UTC),
			CompletedAt: time.Date(2026, 11, 21, 2, 0, 0, 0, time.UTC),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "outcome", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			want = bytes.TrimSuffix(want, []byte("\n"))
			got, err := json.Marshal(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("outcome JSON\n got %s\nwant %s", got, want)
			}
			// Pointer and value encode alike, and the JSON reads back.
			if p, _ := json.Marshal(&tt.o); !bytes.Equal(p, got) {
				t.Errorf("*Outcome encodes as %s", p)
			}
			var back Outcome
			if err := json.Unmarshal(want, &back); err != nil {
				t.Fatal(err)
			}
			again, err := json.Marshal(back)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, want) {
				t.Errorf("round trip\n got %s\nwant %s", again, want)
			}
		})
	}
}

// Regression guard: a response that is not JSON must not make the outcome
// impossible to encode (a stuck partition).
func TestOutcomeInvalidResponse(t *testing.T) {
	b, err := json.Marshal(Outcome{Status: StatusSucceeded, Response: json.RawMessage("<xml>ok</xml>")})
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var back struct {
		Response string `json:"response"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.Response != "<xml>ok</xml>" {
		t.Errorf("response = %q (%v), want the text as a JSON string; outcome %s", back.Response, err, b)
	}
}

// reflectOutcomeJSON is how Outcome was encoded with encoding/json's reflection; MarshalJSON
// must write the same bytes.
func reflectOutcomeJSON(o Outcome) ([]byte, error) {
	type plain Outcome
	p := plain(o)
	if p.Schema == "" {
		p.Schema = Schema
	}
	if len(p.Response) > 0 && !json.Valid(p.Response) {
		s, err := json.Marshal(string(p.Response))
		if err != nil {
			return nil, err
		}
		p.Response = s
	}
	return json.Marshal(p)
}

func FuzzOutcomeJSON(f *testing.F) {
	f.Add("evt-1", "REQ-<1>&", "msg \u2028 \x01 \"q\" \\", []byte(`{"trade_no": 10309483976732423, "a": "<b>"}`), 3, int64(42), true, int64(1763690400123456789))
	f.Add("", "", "\xff\xfe", []byte(`not json`), 0, int64(0), false, int64(0))
	f.Add("é\u2029", "k", "", []byte(`[1, 2 ,{"x":"\u2028"}]`), -1, int64(-5), true, int64(-62135596800000000))
	f.Fuzz(func(t *testing.T, eventID, key, msg string, response []byte, attempts int, offset int64, withError bool, nanos int64) {
		o := Outcome{EventID: eventID, Channel: "omni-saas", Method: "alibaba.omni.saas.order.create", IdempotencyKey: key,
			Status: StatusFailed, Attempts: attempts, Response: response, ResponseTruncated: offset%2 == 0, RequestID: msg,
			Source: Source{Topic: "orders." + key, Partition: attempts, Offset: offset}, ReceivedAt: time.Unix(0, nanos).UTC(),
			CompletedAt: time.Unix(0, nanos).In(time.FixedZone("x", 8*3600)), TraceID: eventID}
		if withError {
			o.Error = &ErrorInfo{Kind: KindPlatform, Code: key, Msg: msg, SubCode: eventID, SubMsg: msg + key, Retryable: attempts > 2}
		}
		want, werr := reflectOutcomeJSON(o)
		got, gerr := o.MarshalJSON()
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("errors differ: reflection %v, MarshalJSON %v", werr, gerr)
		}
		if string(got) != string(want) {
			t.Fatalf("MarshalJSON differs from encoding/json:\n got %s\nwant %s", got, want)
		}
	})
}
