package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadSessions(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		path := writeFile(t, "sessions.yaml", "# seller: session key\nshop-a: "+testSessionKey+"\n\"12345\": '"+testSessionKey2+"'\n")
		got, err := LoadSessions(path)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"shop-a": testSessionKey, "12345": testSessionKey2}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("LoadSessions() mismatch (-want +got):\n%s", diff)
		}
	})
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{name: "empty", content: "", want: "no sessions"},
		{name: "empty mapping", content: "{}\n", want: "no sessions"},
		{name: "a list", content: "- " + testSessionKey + "\n", want: "(line 1): must be a mapping of seller to session key"},
		{name: "nested value", content: "shop-a:\n  key: " + testSessionKey + "\n", want: `(line 2): seller "shop-a": session key must be a non-empty string`},
		{name: "null value", content: "shop-a: " + testSessionKey + "\nshop-b:\n", want: `(line 2): seller "shop-b": session key must be a non-empty string`},
		{name: "duplicate seller", content: "shop-a: " + testSessionKey + "\nshop-a: " + testSessionKey2 + "\n", want: `(line 2): seller "shop-a" listed twice`},
		{name: "invalid YAML", content: "shop-a: ok\nshop-b: \"" + testSessionKey + "\n", want: "(line 2): invalid YAML"},
		{name: "invalid YAML mid-value", content: "shop-a: " + testSessionKey + ": " + testSessionKey2 + "\n", want: "invalid YAML"},
		{name: "two documents", content: "shop-a: " + testSessionKey + "\n---\nshop-b: " + testSessionKey2 + "\n", want: "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "sessions.yaml", tt.content)
			_, err := LoadSessions(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadSessions() = %v, want an error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("LoadSessions() = %v, want the file name in it", err)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
	if _, err := LoadSessions(filepath.Join(t.TempDir(), "nope.yaml")); err == nil {
		t.Error("LoadSessions(missing file) = nil error")
	}
}
