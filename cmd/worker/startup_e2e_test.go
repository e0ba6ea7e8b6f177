package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/internal/kafkatest"
	"github.com/ordersync/ordersync/internal/testcert"
	"github.com/ordersync/ordersync/pkg/dispatch"
)

// serveRefused runs the worker in process with cfg and returns its logs and the error it stopped
// with; it fails the test if the worker is still running after 30 seconds.
func (e *e2e) serveRefused(cfg config.Config) (logs string, err error) {
	e.t.Helper()
	sessions, err := config.LoadSessions(cfg.Top.SessionsFile)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, sessions, out, &hooks{}) }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		e.t.Fatalf("worker still starting after 30s; want it to stop, saying why:\n%s", tail(out.String(), 20))
		return "", nil
	}
}

// TestStartUpRefusals starts the worker against a cluster that cannot work and checks it stops
// at once, naming the key or topic and the fix, before it takes a single event. (Wrong passwords:
// TestE2ESecuredWrongPassword; Redis: TestRedisPreflight*; configuration values: TestLoadConfig.)
func TestStartUpRefusals(t *testing.T) {
	const user, pass = "worker", "worker-password"
	allow := func(rt kmsg.ACLResourceType, name string) kfake.ACL {
		return kfake.ACL{Resource: rt, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAll, Allow: true}
	}
	tests := []struct {
		name string
		opts func(t *testing.T) []kafkatest.Option
		// setup changes the world or the configuration before start.
		setup func(t *testing.T, e *e2e, cfg *config.Config)
		want  string
	}{
		{
			name:  "dead-letter topic missing",
			setup: func(_ *testing.T, _ *e2e, cfg *config.Config) { cfg.Kafka.DLQTopic = "orders.dlq.v2" },
			want:  `kafka.dlq_topic: topic "orders.dlq.v2" does not exist: create it`,
		},
		{
			name: "channel topic missing",
			setup: func(_ *testing.T, _ *e2e, cfg *config.Config) {
				ch := cfg.Channels["omni-saas"]
				ch.Topic = "orders.omni.v2"
				cfg.Channels["omni-saas"] = ch
			},
			want: `channels.omni-saas.topic: topic "orders.omni.v2" does not exist`,
		},
		{
			name: "dead-letter topic takes smaller records",
			setup: func(t *testing.T, e *e2e, _ *config.Config) {
				client := &kafka.Client{Addr: kafka.TCP(e.broker.Addr()), Transport: e.broker.Transport(), Timeout: 10 * time.Second}
				res, err := client.IncrementalAlterConfigs(context.Background(), &kafka.IncrementalAlterConfigsRequest{
					Resources: []kafka.IncrementalAlterConfigsRequestResource{{
						ResourceType: kafka.ResourceTypeTopic, ResourceName: "orders.dlq",
						Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "max.message.bytes", Value: "500000", ConfigOperation: kafka.ConfigOperationSet}},
					}},
				})
				if err == nil && len(res.Resources) > 0 {
					err = res.Resources[0].Error
				}
				if err != nil {
					t.Fatal(err)
				}
			},
			want: "kafka.max_record_bytes: 1048576 is more than orders.dlq takes (max.message.bytes 500000): lower it, or raise the topic's max.message.bytes",
		},
		{
			name: "results topic not authorized",
			opts: func(*testing.T) []kafkatest.Option {
				acls := []kfake.ACL{allow(kmsg.ACLResourceTypeTopic, "orders.dlq"), allow(kmsg.ACLResourceTypeGroup, "*")}
				reg, err := dispatch.NewRegistry(nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, topic := range reg.Topics() {
					acls = append(acls, allow(kmsg.ACLResourceTypeTopic, topic))
				}
				return []kafkatest.Option{kafkatest.WithSASL("SCRAM-SHA-512", "admin", "admin-password"),
					kafkatest.WithUser("SCRAM-SHA-512", user, pass, acls...)}
			},
			setup: func(_ *testing.T, _ *e2e, cfg *config.Config) {
				cfg.Kafka.SASL = config.KafkaSASL{Mechanism: "scram-sha-512", Username: user, Password: config.Secret(pass)}
			},
			want: `kafka.results_topic: not authorized for topic "orders.results": grant the worker's user DESCRIBE and WRITE on it`,
		},
		{
			name: "broker certificate not trusted",
			opts: func(t *testing.T) []kafkatest.Option {
				certs, err := testcert.New(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				return []kafkatest.Option{kafkatest.WithTLS(certs.ServerConfig(false), certs.ClientConfig(false))}
			},
			setup: func(t *testing.T, _ *e2e, cfg *config.Config) {
				other, err := testcert.New(t.TempDir()) // another CA
				if err != nil {
					t.Fatal(err)
				}
				cfg.Kafka.TLS = config.KafkaTLS{Enabled: true, CAFile: other.CAFile}
			},
			want: "kafka.tls: the brokers' certificate is not trusted (kafka.tls.ca_file)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []kafkatest.Option
			if tt.opts != nil {
				opts = tt.opts(t)
			}
			e := newE2E(t, 1, opts...)
			cfg := e.config("e2e-refusal")
			tt.setup(t, e, &cfg)
			start := time.Now()
			logs, err := e.serveRefused(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("worker stopped with %v; want an error containing %q\n%s", err, tt.want, tail(logs, 20))
			}
			t.Logf("refused in %s: %v", time.Since(start).Round(time.Millisecond), err)
			if n := e.sim.Stats().Total; n != 0 {
				t.Errorf("the gateway got %d calls; want none before the checks pass", n)
			}
		})
	}
}
