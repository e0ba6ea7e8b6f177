package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load builds the configuration: Default, then the YAML file at path (skipped when path is
// ""), then the ORDERSYNC_* variables in environ (os.Environ() format), then top.app_secret_file.
// Unknown keys and variables are errors that name them; errors never contain a secret. Load does
// not call Validate.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := decodeYAML(data, &cfg); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return Config{}, err
	}
	if cfg.Top.AppSecretFile != "" {
		if cfg.Top.AppSecret != "" {
			return Config{}, errors.New("top.app_secret_file: set together with top.app_secret; use one")
		}
		b, err := os.ReadFile(cfg.Top.AppSecretFile)
		if err != nil {
			return Config{}, fmt.Errorf("top.app_secret_file: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return Config{}, fmt.Errorf("top.app_secret_file: %s is empty", cfg.Top.AppSecretFile)
		}
		cfg.Top.AppSecret = Secret(s)
	}
	return cfg, nil
}

// String renders the configuration as YAML with every Secret shown as "[REDACTED]". The output loads
// with Load.
func (c Config) String() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("config: %v", err)
	}
	return string(b)
}

// ChannelTopics returns channel id → topic for the enabled channels (the argument of
// dispatch.NewRegistry).
func (c Config) ChannelTopics() map[string]string {
	topics := make(map[string]string)
	for id, ch := range c.Channels {
		if ch.Enabled {
			topics[id] = ch.Topic
		}
	}
	return topics
}
