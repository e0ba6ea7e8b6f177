package dispatch

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// propertyNames collects the names under every "properties" of a schema tree.
func propertyNames(v any, into map[string]bool) {
	switch t := v.(type) {
	case obj:
		for _, m := range t {
			if p, ok := m.value.(obj); ok && m.key == "properties" {
				for _, f := range p {
					into[f.key] = true
				}
			}
			propertyNames(m.value, into)
		}
	case []any:
		for _, e := range t {
			propertyNames(e, into)
		}
	}
}

func TestOutcomeSchemaDocsNameFields(t *testing.T) {
	s, err := outcomeSchema()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	propertyNames(s, names)
	for name := range outcomeFieldDocs() {
		if !names[name] {
			t.Errorf("outcomeFieldDocs annotates %q, which the outcome does not have", name)
		}
	}
}

// When the Outcome type gains a pending field, the schema takes it from the type, once, in the
// same place.
func TestPendingOutcomeFieldFromType(t *testing.T) {
	type later struct {
		Response          json.RawMessage `json:"response,omitempty"`
		ResponseTruncated bool            `json:"response_truncated,omitempty"`
		Status            string          `json:"status"`
	}
	type now struct {
		Response json.RawMessage `json:"response,omitempty"`
		Status   string          `json:"status"`
	}
	order := func(typ reflect.Type) []string {
		defs := obj{}
		s, err := structSchema(typ, outcomeFieldDocs(), &defs, pendingOutcomeFields)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := s.get("properties")
		var names []string
		for _, m := range p.(obj) {
			names = append(names, m.key)
		}
		return names
	}
	want := []string{"response", "response_truncated", "status"}
	for _, typ := range []reflect.Type{reflect.TypeFor[now](), reflect.TypeFor[later]()} {
		if got := order(typ); !slices.Equal(got, want) {
			t.Errorf("%s: properties %v, want %v", typ, got, want)
		}
	}
}

func TestKeyDocsEveryChannel(t *testing.T) {
	for _, id := range ChannelIDs() {
		if keyDocs[id] == "" {
			t.Errorf("keyDocs has no entry for channel %s", id)
		}
	}
}

func TestContractDeterministic(t *testing.T) {
	a, err := ContractFiles()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ContractFiles()
	if err != nil {
		t.Fatal(err)
	}
	for name := range a {
		if string(a[name]) != string(b[name]) {
			t.Errorf("%s differs between two generations", name)
		}
	}
	for _, limit := range SchemaLimits() {
		if !strings.Contains(string(a["README.md"]), limit.Where) {
			t.Errorf("api/README.md does not list the limit %s", limit.ID)
		}
	}
}
