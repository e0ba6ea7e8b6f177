package kafkatest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/ordersync/ordersync/internal/testcert"
)

func TestGroupRoundTrip(t *testing.T) {
	certs, err := testcert.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []Option
	}{
		{"plaintext", nil},
		{"tls", []Option{WithTLS(certs.ServerConfig(false), certs.ClientConfig(false))}},
		{"scram-sha-512", []Option{WithSASL("SCRAM-SHA-512", "svc", "pw-512")}},
		{"mutual tls and scram-sha-512", []Option{
			WithTLS(certs.ServerConfig(true), certs.ClientConfig(true)),
			WithSASL("SCRAM-SHA-512", "svc", "pw-512"),
		}},
		{"tls and plain", []Option{
			WithTLS(certs.ServerConfig(false), certs.ClientConfig(false)),
			WithSASL("PLAIN", "svc", "pw-plain"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roundTrip(t, StartWith(t, 3, []string{"in"}, tt.opts...))
		})
	}
}

// roundTrip produces, reads, joins a group and commits through b's helpers and dialer.
func roundTrip(t *testing.T, b *Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for i := 0; i < 30; i++ {
		msgs = append(msgs, kafka.Message{Topic: "in", Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprint(i))})
	}
	if err := b.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	got, err := b.ReadAll(ctx, "in", 30, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 {
		t.Fatalf("read %d records, want 30", len(got))
	}

	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{ID: "g", Brokers: []string{b.Addr()}, Topics: []string{"in"}, Dialer: b.Dialer()})
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	gen, err := cg.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(gen.Assignments["in"]); n != 3 {
		t.Fatalf("assigned %d partitions, want 3", n)
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{"in": {0: 1}}); err != nil {
		t.Fatal(err)
	}
	offs, err := b.CommittedOffsets(ctx, "g", "in", 3)
	if err != nil {
		t.Fatal(err)
	}
	if offs[0] != 1 {
		t.Fatalf("committed offset %d, want 1", offs[0])
	}
}

// TestSecuredRefuses checks that a secured broker really is: a client without the right TLS or
// SASL settings cannot read its metadata.
func TestSecuredRefuses(t *testing.T) {
	certs, err := testcert.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := StartWith(t, 1, []string{"in"},
		WithTLS(certs.ServerConfig(true), certs.ClientConfig(true)),
		WithSASL("SCRAM-SHA-512", "svc", "right"))
	wrong, err := scram.Mechanism(scram.SHA512, "svc", "wrong")
	if err != nil {
		t.Fatal(err)
	}
	sha256, err := scram.Mechanism(scram.SHA256, "svc", "right")
	if err != nil {
		t.Fatal(err)
	}
	good := b.Dialer()
	tests := []struct {
		name   string
		dialer *kafka.Dialer
	}{
		{"plaintext", &kafka.Dialer{Timeout: 5 * time.Second}},
		{"tls without client certificate", &kafka.Dialer{Timeout: 5 * time.Second, TLS: certs.ClientConfig(false), SASLMechanism: good.SASLMechanism}},
		{"no sasl", &kafka.Dialer{Timeout: 5 * time.Second, TLS: good.TLS}},
		{"wrong password", &kafka.Dialer{Timeout: 5 * time.Second, TLS: good.TLS, SASLMechanism: wrong}},
		{"wrong mechanism", &kafka.Dialer{Timeout: 5 * time.Second, TLS: good.TLS, SASLMechanism: sha256}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := tt.dialer.DialContext(ctx, "tcp", b.Addr())
			if err == nil {
				_, err = conn.ReadPartitions("in")
				conn.Close()
			}
			if err == nil {
				t.Fatal("read metadata from the secured broker, want an error")
			}
			t.Logf("refused: %v", err)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := good.DialContext(ctx, "tcp", b.Addr())
	if err != nil {
		t.Fatalf("the broker's own dialer: %v", err)
	}
	defer conn.Close()
	if _, err := conn.ReadPartitions("in"); err != nil {
		t.Fatalf("the broker's own dialer: %v", err)
	}
}
