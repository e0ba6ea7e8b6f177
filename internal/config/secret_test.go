package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestRedaction(t *testing.T) {
	cfg := Default()
	cfg.Top.AppKey = "12345678"
	cfg.Top.AppSecret = testAppSecret
	cfg.Kafka.SASL = KafkaSASL{Mechanism: "plain", Username: "u", Password: testSASLPass}
	cfg.Redis.Password = testRedisPass

	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("config", "config", cfg, "secret", cfg.Top.AppSecret, "kafka", cfg.Kafka)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("config", "config", cfg, "secret", cfg.Top.AppSecret, "kafka", cfg.Kafka)
	jsonBytes, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	yamlBytes, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	renderings := map[string]string{
		"String":          cfg.String(),
		"%v":              fmt.Sprintf("%v", cfg),
		"%+v":             fmt.Sprintf("%+v", cfg),
		"%#v":             fmt.Sprintf("%#v", cfg),
		"%+v of Top":      fmt.Sprintf("%+v", cfg.Top),
		"%#v of Kafka":    fmt.Sprintf("%#v", cfg.Kafka),
		"%v of Redis":     fmt.Sprint(cfg.Redis),
		"%s of secret":    fmt.Sprintf("%s", cfg.Top.AppSecret),
		"%q of secret":    fmt.Sprintf("%q", cfg.Top.AppSecret),
		"%x of secret":    fmt.Sprintf("%x", cfg.Top.AppSecret),
		"%d of secret":    fmt.Sprintf("%d", cfg.Top.AppSecret),
		"%10.3s":          fmt.Sprintf("%10.3s", cfg.Top.AppSecret),
		"error wrapping":  fmt.Errorf("top %v: %w", cfg.Top, os.ErrInvalid).Error(),
		"slog JSON":       jsonLog.String(),
		"slog text":       textLog.String(),
		"encoding/json":   string(jsonBytes),
		"yaml.Marshal":    string(yamlBytes),
		"channels %v map": fmt.Sprint(map[string]Config{"a": cfg}),
	}
	for name, s := range renderings {
		assertNoSecret(t, name, s)
		if !strings.Contains(s, redacted) {
			t.Errorf("%s does not show %s:\n%s", name, redacted, s)
		}
	}
	if got := fmt.Sprint(Secret("")); got != "" {
		t.Errorf("an empty secret prints %q, want \"\"", got)
	}

	// String() is valid configuration: it loads back to the same values, secrets aside.
	path := writeFile(t, "dump.yaml", cfg.String())
	got, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load(String()) = %v", err)
	}
	want := cfg
	want.Top.AppSecret, want.Kafka.SASL.Password, want.Redis.Password = redacted, redacted, redacted
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load(String()) mismatch (-want +got):\n%s", diff)
	}
}
