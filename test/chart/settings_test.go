package chart

// settings: the worker's configuration as plain YAML values, merged the way the worker merges its
// defaults, its file and its ORDERSYNC_* environment. The tests read facts from it (the brokers, the
// enabled channels' topics, http.addr...) to compare with the manifests; whether a configuration is
// valid is left to the worker binary itself (checkRunnableConfig).

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// defaultsFile lists every key of the worker's configuration at its default: the main module's
// TestExampleConfig holds it equal to the worker's defaultConfig() and to its full key set.
const defaultsFile = repoRoot + "/configs/ordersync.yaml"

// envPrefix starts every variable that sets a configuration key.
const envPrefix = "ORDERSYNC_"

// settings is a configuration decoded by sigs.k8s.io/yaml: nested map[string]any, []any, string,
// float64 and bool.
type settings map[string]any

// defaultSettings returns a fresh copy of the defaults.
func defaultSettings(t *testing.T) settings {
	t.Helper()
	data, err := os.ReadFile(defaultsFile)
	if err != nil {
		t.Fatal(err)
	}
	var s settings
	if err := yaml.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v", defaultsFile, err)
	}
	return s
}

// parseSettings returns the defaults with the configuration file text merged over them.
func parseSettings(t *testing.T, text string) (settings, error) {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, err
	}
	s := defaultSettings(t)
	return s, mergeFile(s, doc, "")
}

// mergeFile merges a configuration file into dst as the worker's loader does: a mapping changes only
// the keys it names, null keeps the current value, anything else replaces it. A key the defaults do not
// have is an error.
func mergeFile(dst, src map[string]any, prefix string) error {
	for k, v := range src {
		key := prefix + k
		cur, ok := dst[k]
		if !ok {
			return fmt.Errorf("%s: not a configuration key", key)
		}
		if v == nil {
			continue
		}
		if sub, ok := v.(map[string]any); ok {
			curMap, ok := cur.(map[string]any)
			if !ok {
				return fmt.Errorf("%s: a mapping where the configuration has a value", key)
			}
			if err := mergeFile(curMap, sub, key+"."); err != nil {
				return err
			}
			continue
		}
		dst[k] = v
	}
	return nil
}

// envName is the variable for a key path: ORDERSYNC_ and the path in upper snake case
// (channels.omni-saas.topic → ORDERSYNC_CHANNELS_OMNI_SAAS_TOPIC).
func envName(path []string) string {
	return envPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(strings.Join(path, "_")))
}

// applyEnv applies the ORDERSYNC_* variables of environ (NAME=value) as the worker does: each names
// one key; lists are comma-separated. A variable that names no key is an error.
func (s settings) applyEnv(environ []string) error {
	keys := map[string][]string{} // variable → key path
	var walk func(m map[string]any, path []string)
	walk = func(m map[string]any, path []string) {
		for k, v := range m {
			p := append(slices.Clone(path), k)
			if sub, ok := v.(map[string]any); ok {
				walk(sub, p)
				continue
			}
			keys[envName(p)] = p
		}
	}
	walk(s, nil)
	for _, kv := range environ {
		name, raw, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) {
			continue
		}
		path, ok := keys[name]
		if !ok {
			return fmt.Errorf("%s names no configuration key", name)
		}
		parent := map[string]any(s)
		for _, k := range path[:len(path)-1] {
			parent = parent[k].(map[string]any)
		}
		leaf := path[len(path)-1]
		switch parent[leaf].(type) {
		case []any:
			var list []any
			for item := range strings.SplitSeq(raw, ",") {
				if item = strings.TrimSpace(item); item != "" {
					list = append(list, item)
				}
			}
			parent[leaf] = list
		case bool:
			b, err := strconv.ParseBool(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			parent[leaf] = b
		case float64:
			f, err := strconv.ParseFloat(raw, 64)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			parent[leaf] = f
		default:
			parent[leaf] = raw
		}
	}
	return nil
}

// get returns the value at a dotted key path (channel ids contain no dot).
func (s settings) get(t *testing.T, key string) any {
	t.Helper()
	var v any = map[string]any(s)
	for k := range strings.SplitSeq(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("configuration key %s: %s is not a mapping", key, k)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("configuration key %s does not exist", key)
		}
	}
	return v
}

func (s settings) str(t *testing.T, key string) string {
	t.Helper()
	v, ok := s.get(t, key).(string)
	if !ok {
		t.Fatalf("configuration key %s = %#v, want a string", key, s.get(t, key))
	}
	return v
}

func (s settings) flag(t *testing.T, key string) bool {
	t.Helper()
	v, ok := s.get(t, key).(bool)
	if !ok {
		t.Fatalf("configuration key %s = %#v, want a bool", key, s.get(t, key))
	}
	return v
}

func (s settings) list(t *testing.T, key string) []string {
	t.Helper()
	items, ok := s.get(t, key).([]any)
	if !ok {
		t.Fatalf("configuration key %s = %#v, want a list", key, s.get(t, key))
	}
	out := make([]string, len(items))
	for i, it := range items {
		if out[i], ok = it.(string); !ok {
			t.Fatalf("configuration key %s[%d] = %#v, want a string", key, i, it)
		}
	}
	return out
}

func (s settings) duration(t *testing.T, key string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s.str(t, key))
	if err != nil {
		t.Fatalf("configuration key %s: %v", key, err)
	}
	return d
}

// channelTopics returns channel id → topic for the enabled channels.
func (s settings) channelTopics(t *testing.T) map[string]string {
	t.Helper()
	channels, ok := s.get(t, "channels").(map[string]any)
	if !ok {
		t.Fatal("configuration key channels is not a mapping")
	}
	topics := map[string]string{}
	for id := range channels {
		if s.flag(t, "channels."+id+".enabled") {
			topics[id] = s.str(t, "channels."+id+".topic")
		}
	}
	return topics
}

// normalised returns v with every duration string in its canonical form ("1m30s" and "90s" are the same
// setting to the worker).
func normalised(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalised(x)
		}
		return out
	case settings:
		return normalised(map[string]any(v))
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalised(x)
		}
		return out
	case string:
		if d, err := time.ParseDuration(v); err == nil {
			return d.String()
		}
	}
	return v
}
