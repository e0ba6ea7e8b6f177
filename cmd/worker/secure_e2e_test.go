package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/internal/testcert"
	"github.com/ordersync/ordersync/pkg/dispatch"
)

// The secured end-to-end tests run the worker as a child process against a broker that takes only
// mutual TLS with SASL SCRAM-SHA-512 and a redis-server that takes only TLS with a password, the
// worker configured for them through its ORDERSYNC_* variables alone.

// secureE2E is an e2e world whose broker and Redis are secured.
type secureE2E struct {
	*e2e
	certs     *testcert.Set
	kafkaUser string
	kafkaPass string
	redisUser string // "" = Redis' default user (requirepass)
	redisPass string
}

// newSecureE2E builds the world of newE2E — simulator, sessions file, registry — with a secured broker
// and Redis in place of the plain ones (which stay unused).
func newSecureE2E(t *testing.T, redisUser string) *secureE2E {
	t.Helper()
	s := &secureE2E{e2e: newE2E(t, 1), kafkaUser: "ordersync", kafkaPass: randomSecret(t, "kafka"),
		redisUser: redisUser, redisPass: randomSecret(t, "redis")}
	var err error
	if s.certs, err = testcert.New(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	topics := append(s.registry.Topics(), "orders.results", "orders.dlq")
	s.broker = kafkatest.StartWith(t, 1, topics,
		kafkatest.WithTLS(s.certs.ServerConfig(true), s.certs.ClientConfig(true)),
		kafkatest.WithSASL("SCRAM-SHA-512", s.kafkaUser, s.kafkaPass))
	s.redis = redistest.Start(t, redistest.WithTLS(s.certs), redistest.WithAuth(s.redisUser, s.redisPass))
	return s
}

// randomSecret returns a password no log line can contain by chance.
func randomSecret(t *testing.T, what string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return what + "-pw-" + hex.EncodeToString(b)
}

// config is e2e.config with every security key set for this world, logging at debug level so the
// secret check below covers the most verbose output.
func (s *secureE2E) config(group string) config.Config {
	cfg := s.e2e.config(group)
	cfg.Kafka.TLS = config.KafkaTLS{Enabled: true, CAFile: s.certs.CAFile, CertFile: s.certs.ClientCertFile, KeyFile: s.certs.ClientKeyFile}
	cfg.Kafka.SASL = config.KafkaSASL{Mechanism: "scram-sha-512", Username: s.kafkaUser, Password: config.Secret(s.kafkaPass)}
	cfg.Redis.Username = s.redisUser
	cfg.Redis.Password = config.Secret(s.redisPass)
	cfg.Redis.TLS = config.RedisTLS{Enabled: true, CAFile: s.certs.CAFile}
	cfg.Log.Level = "debug"
	return cfg
}

// seedEvents returns one fresh valid event per channel, made from its seed example.
func seedEvents(t *testing.T) []testEvent {
	g := newEventGen(t)
	var events []testEvent
	for _, ch := range dispatch.ChannelIDs() {
		events = append(events, g.valid(ch, "secure-"+ch))
	}
	return events
}

func TestE2ESecuredSeedEvents(t *testing.T) {
	tests := []struct {
		name      string
		redisUser string
	}{
		{"redis acl user", "ordersync"},
		{"redis default user", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSecureE2E(t, tt.redisUser)
			events := seedEvents(t)
			s.publish(events)
			cfg := s.config("e2e-secure")
			c := s.startChild(cfg)
			addr := httpAddr(t, c)

			got := s.outcomes(events, 60*time.Second)
			s.checkDelivery(events, got, false)
			if n := s.sim.Stats().Succeeded; n != len(events) {
				t.Errorf("simulator saw %d successful calls, want %d", n, len(events))
			}
			if code, body := waitReadyz(t, addr, func(code int, _ string) bool { return code == http.StatusOK }); code != http.StatusOK {
				t.Errorf("/readyz answered %d %q, want 200", code, body)
			}
			waitCommitted(t, s.e2e, "e2e-secure", 1, len(events))

			if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-c.done:
				if c.err != nil {
					t.Errorf("worker exited with %v after SIGTERM", c.err)
				}
			case <-time.After(cfg.Worker.ShutdownTimeout + 10*time.Second):
				t.Fatal("worker still running after SIGTERM")
			}
			s.checkCommittedHaveOutcomes("e2e-secure", 1)
			checkNoSecrets(t, c.logs.String(), map[string]string{"the Kafka password": s.kafkaPass, "the Redis password": s.redisPass})
		})
	}
}

// A wrong Kafka or Redis password stops start-up with a message naming the key to fix — before
// anything is consumed, stored or called — and never prints a password.
func TestE2ESecuredWrongPassword(t *testing.T) {
	tests := []struct {
		name         string
		misconfigure func(c *config.Config, wrong string) // sets the wrong password
		want         string                               // what the start-up error names
	}{
		{name: "kafka sasl", misconfigure: func(c *config.Config, wrong string) { c.Kafka.SASL.Password = config.Secret(wrong) }, want: "kafka.sasl: the brokers refuse the credentials"},
		{name: "redis", misconfigure: func(c *config.Config, wrong string) { c.Redis.Password = config.Secret(wrong) }, want: "authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSecureE2E(t, "ordersync")
			s.publish(seedEvents(t))
			cfg := s.config("e2e-secure-wrong")
			wrong := randomSecret(t, "wrong")
			tt.misconfigure(&cfg, wrong)
			c := s.startChild(cfg)
			select {
			case <-c.done:
			case <-time.After(60 * time.Second):
				t.Fatal("worker still running a minute after start with a wrong password; want it to stop, saying why")
			}
			if c.err == nil || !strings.Contains(c.logs.String(), tt.want) {
				t.Fatalf("worker exited with %v; want a failure naming %q in its output", c.err, tt.want)
			}
			for _, topic := range []string{"orders.results", "orders.dlq"} {
				msgs, err := s.broker.ReadAll(context.Background(), topic, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(msgs) != 0 {
					t.Errorf("%s holds %d records, want none", topic, len(msgs))
				}
			}
			if n := s.sim.Stats().Total; n != 0 {
				t.Errorf("simulator saw %d calls, want none", n)
			}
			checkNoSecrets(t, c.logs.String(), map[string]string{
				"the Kafka password": s.kafkaPass, "the Redis password": s.redisPass, "the wrong password": wrong})
		})
	}
}

// httpAddr waits for c's start-up log line and returns the address its HTTP server listens on.
func httpAddr(t *testing.T, c *child) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(c.logs.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "ordersync starting" && line.HTTP != "" {
				return line.HTTP
			}
		}
		select {
		case <-c.done:
			t.Fatalf("worker exited at start: %v", c.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("worker logged no start-up line within 30s")
	return ""
}

// readyz asks addr's /readyz once.
func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	return resp.StatusCode, string(body)
}

// waitReadyz polls /readyz until done accepts an answer or 30 seconds pass, and returns the last answer.
func waitReadyz(t *testing.T, addr string, done func(code int, body string) bool) (int, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := readyz(t, addr)
		if done(code, body) || time.Now().After(deadline) {
			return code, body
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkNoSecrets fails if logs contain any of secrets (by what they are).
func checkNoSecrets(t *testing.T, logs string, secrets map[string]string) {
	t.Helper()
	if logs == "" {
		t.Fatal("the worker logged nothing; want its logs to check for secrets")
	}
	for what, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("%s appears in the worker's logs", what)
		}
	}
}
