package config

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
)

// redacted is what a non-empty Secret prints as.
const redacted = "[REDACTED]"

// Secret is a string that never prints: fmt (every verb), slog, encoding/json and YAML all show
// "[REDACTED]" for a non-empty value and "" for an empty one. Use string(s) where the value is needed.
type Secret string

// Format implements fmt.Formatter for every verb, so %v, %s, %q, %#v and %x never reveal the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	io.WriteString(f, s.String())
}

// String returns "[REDACTED]" for a non-empty Secret and "" for an empty one.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }
