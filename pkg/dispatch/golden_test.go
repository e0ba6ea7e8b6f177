package dispatch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ordersync/ordersync/pkg/topapi"
)

// golden is testdata/golden/<channel>.json: what the seed event of a channel
// (the Java request example of its API page, testdata/seed/<channel>.json)
// must become, and how the page's response example must be read.
type golden struct {
	Method         string                     `json:"method"`
	NeedsSession   bool                       `json:"needs_session"`
	IdempotencyKey string                     `json:"idempotency_key"`
	JSONParams     map[string]json.RawMessage `json:"json_params"`   // objects and lists, compared decoded
	StringParams   map[string]string          `json:"string_params"` // scalars, compared as strings
	Response       json.RawMessage            `json:"response"`      // inner object of <method>_response
	Status         string                     `json:"status"`
	Error          *ErrorInfo                 `json:"error"`
}

func loadGolden(t *testing.T, id string) golden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("golden %s: %v", id, err)
	}
	return g
}

func TestGolden(t *testing.T) {
	for _, id := range ChannelIDs() {
		t.Run(id, func(t *testing.T) {
			g := loadGolden(t, id)
			c := channel(t, id)
			if c.Method != g.Method || c.NeedsSession != g.NeedsSession {
				t.Errorf("channel = %s session %v, want %s session %v", c.Method, c.NeedsSession, g.Method, g.NeedsSession)
			}

			p, err := c.Prepare(mustDecode(t, seed(t, id)))
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if p.IdempotencyKey != g.IdempotencyKey {
				t.Errorf("key = %q, want %q", p.IdempotencyKey, g.IdempotencyKey)
			}
			if p.Request.Method != g.Method || p.Request.Session != "" {
				t.Errorf("request method %q session %q, want %q and no session", p.Request.Method, p.Request.Session, g.Method)
			}

			// Every parameter, nothing more: objects and lists compared as
			// decoded JSON (numbers as their literal), scalars as strings.
			var gotNames, wantNames []string
			for name := range p.Request.Params {
				gotNames = append(gotNames, name)
			}
			for name, want := range g.JSONParams {
				wantNames = append(wantNames, name)
				got, ok := p.Request.Params[name]
				if !ok {
					continue
				}
				if !json.Valid([]byte(got)) || strings.ContainsAny(got, "\n\t") || strings.Contains(got, ": ") {
					t.Errorf("param %s = %q, want compact JSON", name, got)
				}
				if diff := cmp.Diff(decodeJSON(t, want), decodeJSON(t, []byte(got))); diff != "" {
					t.Errorf("param %s (-want +got):\n%s", name, diff)
				}
			}
			for name, want := range g.StringParams {
				wantNames = append(wantNames, name)
				if got, ok := p.Request.Params[name]; ok && got != want {
					t.Errorf("param %s = %q, want %q", name, got, want)
				}
			}
			slices.Sort(gotNames)
			slices.Sort(wantNames)
			if diff := cmp.Diff(wantNames, gotNames); diff != "" {
				t.Errorf("param names (-want +got):\n%s", diff)
			}

			// The page's response example.
			resp := topapi.Response{Body: g.Response, RequestID: "req-golden"}
			status, info := c.Interpret(resp)
			if status != g.Status {
				t.Errorf("status = %q, want %q", status, g.Status)
			}
			if diff := cmp.Diff(g.Error, info); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}

			// The outcome keeps the response object intact, ids included.
			o := Outcome{
				EventID: p.EventID, Channel: c.ID, Method: c.Method, IdempotencyKey: p.IdempotencyKey,
				Status: status, Attempts: 1, Response: resp.Body, Error: info, RequestID: resp.RequestID,
				Source:     Source{Topic: c.Topic, Partition: 3, Offset: 42},
				ReceivedAt: time.Date(2026, 11, 21, 2, 0, 0, 0, time.UTC), CompletedAt: time.Date(2026, 11, 21, 2, 0, 1, 0, time.UTC),
			}
			b, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				Response json.RawMessage `json:"response"`
			}
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(decodeJSON(t, g.Response), decodeJSON(t, back.Response)); diff != "" {
				t.Errorf("outcome response (-want +got):\n%s", diff)
			}
		})
	}
}

// Regression: trade_no 10309483976732423 is above 2^53; decoding it into a
// float64 anywhere would turn it into 10309483976732424.
func TestOutcomeKeepsLargeIDs(t *testing.T) {
	body := json.RawMessage(`{"trade_no": 10309483976732423, "total_amount": 10000, "actual_pay_fee": 9000}`)
	c := channel(t, "omni-saas")
	status, info := c.Interpret(topapi.Response{Body: body})
	if status != StatusSucceeded || info != nil {
		t.Fatalf("Interpret = %q, %+v", status, info)
	}
	b, err := json.Marshal(Outcome{Status: status, Response: body})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `"response":{"trade_no":10309483976732423,"total_amount":10000,"actual_pay_fee":9000}`; !strings.Contains(got, want) {
		t.Errorf("outcome = %s, want it to contain %s", got, want)
	}
}

func TestSeedEvents(t *testing.T) {
	events := SeedEvents()
	if diff := cmp.Diff(ChannelIDs(), sortedKeys(events)); diff != "" {
		t.Fatalf("SeedEvents ids (-want +got):\n%s", diff)
	}
	r := registry(t)
	for id, value := range events {
		c, _ := r.ByID(id)
		env, err := DecodeEnvelope(value, 0)
		if err != nil {
			t.Errorf("%s: DecodeEnvelope: %v", id, err)
			continue
		}
		if _, err := c.Prepare(env); err != nil {
			t.Errorf("%s: Prepare: %v", id, err)
		}
	}
	events["omni-saas"][0] = 'x'
	if SeedEvents()["omni-saas"][0] != '{' {
		t.Error("SeedEvents returned shared memory")
	}
}
