package dispatch

import (
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
