package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Distinctive secret values: no error, log line or rendering may ever contain them.
const (
	testAppSecret   = "app-secret-Zq81xWv"
	testSASLPass    = "sasl-pass-Kp27yRt"
	testRedisPass   = "redis-pass-Mh63uLs"
	testSessionKey  = "session-key-Jd94nQe"
	testSessionKey2 = "session-key-Bv50cXo"
)

var secretValues = []string{testAppSecret, testSASLPass, testRedisPass, testSessionKey, testSessionKey2}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range secretValues {
		if strings.Contains(s, v) {
			t.Errorf("%s contains the secret %q:\n%s", what, v, s)
		}
	}
}

// with returns defaultConfig changed by f.
func with(f func(c *Config)) Config {
	c := Default()
	f(&c)
	return c
}

func (c *Config) setTopic(id, topic string) {
	ch := c.Channels[id]
	ch.Topic = topic
	c.Channels[id] = ch
}

func (c *Config) enable(id string, on bool) {
	ch := c.Channels[id]
	ch.Enabled = on
	c.Channels[id] = ch
}
