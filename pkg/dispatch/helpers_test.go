package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// registry returns a registry of every channel on its default topic.
func registry(t testing.TB) *Registry {
	t.Helper()
	r, err := NewRegistry(nil)
	if err != nil {
		t.Fatalf("NewRegistry(nil): %v", err)
	}
	return r
}

func channel(t testing.TB, id string) *Channel {
	t.Helper()
	c, ok := registry(t).ByID(id)
	if !ok {
		t.Fatalf("no channel %q", id)
	}
	return c
}

// seed returns the checked-in seed event of a channel.
func seed(t testing.TB, id string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "seed", id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeJSON decodes b keeping numbers as json.Number.
func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// edit applies changes to the seed event of channel id and returns the new
// message value. Changes are pairs of a path like
// "request.goods_details[0].price" and the JSON text to put there
// (deleteValue removes the member or element).
func edit(t testing.TB, id string, changes ...string) []byte {
	t.Helper()
	return editJSON(t, seed(t, id), changes...)
}

func editJSON(t testing.TB, value []byte, changes ...string) []byte {
	t.Helper()
	doc := decodeJSON(t, value)
	for i := 0; i+1 < len(changes); i += 2 {
		path, val := changes[i], changes[i+1]
		if val != deleteValue && !json.Valid([]byte(val)) {
			t.Fatalf("edit %s: %q is not JSON", path, val)
		}
		var err error
		if doc, err = setAt(doc, splitPath(path), val); err != nil {
			t.Fatalf("edit %s: %v", path, err)
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const deleteValue = "<delete>"

func splitPath(p string) []string {
	return strings.Split(strings.ReplaceAll(p, "[", ".["), ".")
}

func setAt(v any, path []string, val string) (any, error) {
	if len(path) == 0 {
		return rawValue(val), nil
	}
	p := path[0]
	if strings.HasPrefix(p, "[") {
		n, err := strconv.Atoi(strings.Trim(p, "[]"))
		list, ok := v.([]any)
		if err != nil || !ok || n >= len(list) {
			return nil, errors.New("bad index " + p)
		}
		if len(path) == 1 && val == deleteValue {
			return append(list[:n:n], list[n+1:]...), nil
		}
		list[n], err = setAt(list[n], path[1:], val)
		return list, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not an object at " + p)
	}
	if len(path) == 1 && val == deleteValue {
		delete(obj, p)
		return obj, nil
	}
	child, ok := obj[p]
	if !ok && len(path) > 1 {
		return nil, errors.New("no field " + p)
	}
	var err error
	obj[p], err = setAt(child, path[1:], val)
	return obj, err
}

// rawValue keeps JSON text (numbers beyond float64, odd spellings) intact
// through json.Marshal.
func rawValue(s string) json.RawMessage { return json.RawMessage(s) }

// mustDecode decodes an event value or fails the test.
func mustDecode(t testing.TB, value []byte) *Envelope {
	t.Helper()
	env, err := DecodeEnvelope(value, 0)
	if err != nil {
		t.Fatalf("DecodeEnvelope: %v", err)
	}
	return env
}

// fieldErr returns err's *FieldError or fails.
func fieldErr(t testing.TB, err error) *FieldError {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FieldError", err, err)
	}
	return fe
}
