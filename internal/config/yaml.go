package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decodeYAML merges one YAML document into cfg. A null value keeps the default; a mapping under
// channels changes only the fields it names.
func decodeYAML(data []byte, cfg *Config) error {
	// The document is decoded as a node tree and walked against Config (decodeNode) rather than with
	// Decoder.KnownFields: the walk names the full key path and line of an unknown or mistyped key, and
	// merges channels field by field where yaml.v3 would replace a map entry with its zero value.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: all defaults
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return decodeNode("", doc.Content[0], reflect.ValueOf(cfg).Elem())
}

var (
	yamlErrLine  = regexp.MustCompile(`line [0-9]+`)
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
)

// decodeNode decodes n into v, which is addressable. path is the dotted key path for errors.
func decodeNode(path string, n *yaml.Node, v reflect.Value) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	at := func(format string, args ...any) error {
		return fmt.Errorf("%s (line %d): %s", path, n.Line, fmt.Sprintf(format, args...))
	}
	switch {
	case v.Type() == durationType:
		if n.Kind != yaml.ScalarNode {
			return at("must be a duration such as \"250ms\" or \"30s\"")
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			return at("invalid duration %q (use Go syntax such as \"250ms\" or \"30s\")", n.Value)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return at("must be a mapping")
		}
		seen := make(map[string]bool)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := joinPath(path, k.Value)
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("%s (line %d): keys must be plain strings", path, k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("%s (line %d): duplicate key", key, k.Line)
			}
			seen[k.Value] = true
			idx, ok := fieldByKey(v.Type(), k.Value)
			if !ok {
				return fmt.Errorf("%s (line %d): unknown key", key, k.Line)
			}
			if err := decodeNode(key, val, v.Field(idx)); err != nil {
				return err
			}
		}
	case v.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return at("must be a mapping")
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := make(map[string]bool)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := joinPath(path, k.Value)
			if k.Kind != yaml.ScalarNode || k.Value == "" {
				return fmt.Errorf("%s (line %d): keys must be non-empty strings", path, k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("%s (line %d): duplicate key", key, k.Line)
			}
			seen[k.Value] = true
			mk := reflect.ValueOf(k.Value)
			elem := reflect.New(v.Type().Elem()).Elem()
			if old := v.MapIndex(mk); old.IsValid() {
				elem.Set(old)
			}
			if err := decodeNode(key, val, elem); err != nil {
				return err
			}
			v.SetMapIndex(mk, elem)
		}
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		if n.Kind != yaml.SequenceNode {
			return at("must be a list of strings")
		}
		out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		for i, item := range n.Content {
			if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
				return fmt.Errorf("%s[%d] (line %d): must be a string", path, i, item.Line)
			}
			out = reflect.Append(out, reflect.ValueOf(item.Value).Convert(v.Type().Elem()))
		}
		if out.Len() == 0 {
			out = reflect.Zero(v.Type())
		}
		v.Set(out)
	case v.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			return at("must be a string")
		}
		v.SetString(n.Value)
	case v.Kind() == reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			return at("must be true or false")
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			return at("must be an integer")
		}
		v.SetInt(i)
	case v.Kind() == reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			return at("must be a number")
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("%s: unsupported configuration type %s", path, v.Type()) // a bug in Config
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldByKey returns the index of the field of struct type t whose yaml tag is key.
func fieldByKey(t reflect.Type, key string) (int, bool) {
	for i := range t.NumField() {
		if tagName(t.Field(i)) == key {
			return i, true
		}
	}
	return 0, false
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}
