package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// LoadSessions reads a sessions file: a YAML mapping of seller → session key. Errors name the file,
// the line and the seller, never a session key.
func LoadSessions(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("sessions %s: no sessions", path)
		}
		// Only the line: the parser's own words are not repeated, in case they ever quote the file.
		if line := yamlErrLine.FindString(err.Error()); line != "" {
			return nil, fmt.Errorf("sessions %s (%s): invalid YAML", path, line)
		}
		return nil, fmt.Errorf("sessions %s: invalid YAML", path)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("sessions %s: more than one YAML document", path)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("sessions %s (line %d): must be a mapping of seller to session key", path, root.Line)
	}
	sessions := make(map[string]string, len(root.Content)/2)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value == "" || k.ShortTag() == "!!null" {
			return nil, fmt.Errorf("sessions %s (line %d): sellers must be non-empty strings", path, k.Line)
		}
		if _, dup := sessions[k.Value]; dup {
			return nil, fmt.Errorf("sessions %s (line %d): seller %q listed twice", path, k.Line, k.Value)
		}
		if v.Kind != yaml.ScalarNode || v.Value == "" || v.ShortTag() == "!!null" {
			return nil, fmt.Errorf("sessions %s (line %d): seller %q: session key must be a non-empty string", path, v.Line, k.Value)
		}
		sessions[k.Value] = v.Value
	}
	if len(sessions) == 0 {
		return nil, fmt.Errorf("sessions %s: no sessions", path)
	}
	return sessions, nil
}

// CheckDefaultSeller refuses sessions that lack top.default_seller: every event without a seller
// would be rejected.
func (t Top) CheckDefaultSeller(sessions map[string]string) error {
	if t.DefaultSeller == "" {
		return nil
	}
	if _, ok := sessions[t.DefaultSeller]; !ok {
		return fmt.Errorf("top.default_seller: seller %q has no session in %s", t.DefaultSeller, t.SessionsFile)
	}
	return nil
}
