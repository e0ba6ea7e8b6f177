// Package kafkatest runs an in-process Kafka-protocol broker (kfake) on a loopback TCP port for
// tests, and offers small helpers to produce and read records with the real kafka-go client.
//
// A broker may be secured with TLS ([WithTLS]) and SASL ([WithSASL]); its helpers, [Broker.Dialer]
// and [Broker.Transport] then connect with the client settings it was started with.
package kafkatest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a running kfake cluster of one broker.
type Broker struct {
	c         *kfake.Cluster
	tls       *tls.Config    // client side; nil without TLS
	sasl      sasl.Mechanism // nil without SASL
	transport *kafka.Transport
}

// Option configures a broker started with [StartWith] or [NewWith] (TLS, SASL, broker configs).
type Option func(*options) error

type options struct {
	kfake []kfake.Opt
	tls   *tls.Config
	sasl  sasl.Mechanism
}

// WithTLS makes the broker accept TLS connections only, with server as its configuration (a
// certificate, and ClientAuth for mutual TLS). The broker's helpers connect with client, which must
// trust the server's certificate (and present one when server requires it).
func WithTLS(server, client *tls.Config) Option {
	return func(o *options) error {
		if server == nil || client == nil {
			return errors.New("kafkatest: WithTLS needs a server and a client configuration")
		}
		o.kfake = append(o.kfake, kfake.TLS(server))
		o.tls = client
		return nil
	}
}

// WithSASL makes the broker require SASL authentication with one superuser, user with password,
// and the given mechanism: "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512". No other user exists (not
// even kfake's default admin). The broker's helpers authenticate as this user.
func WithSASL(mechanism, user, password string) Option {
	return func(o *options) error {
		var err error
		switch mechanism {
		case "PLAIN":
			o.sasl = plain.Mechanism{Username: user, Password: password}
		case "SCRAM-SHA-256":
			o.sasl, err = scram.Mechanism(scram.SHA256, user, password)
		case "SCRAM-SHA-512":
			o.sasl, err = scram.Mechanism(scram.SHA512, user, password)
		default:
			return fmt.Errorf("kafkatest: unknown SASL mechanism %q", mechanism)
		}
		if err != nil {
			return fmt.Errorf("kafkatest: %w", err)
		}
		o.kfake = append(o.kfake, kfake.EnableSASL(), kfake.Superuser(mechanism, user, password))
		return nil
	}
}

// WithUser adds a SASL user subject to ACLs, allowed only what acls grant, and turns ACL checks
// on (use with WithSASL, whose superuser the helpers keep using).
func WithUser(mechanism, user, password string, acls ...kfake.ACL) Option {
	return func(o *options) error {
		o.kfake = append(o.kfake, kfake.EnableACLs(), kfake.User(mechanism, user, password, acls...))
		return nil
	}
}

// WithBrokerConfigs sets broker configuration, e.g. {"message.max.bytes": "16777216"} for a
// cluster that accepts large records.
func WithBrokerConfigs(configs map[string]string) Option {
	return func(o *options) error {
		o.kfake = append(o.kfake, kfake.BrokerConfigs(configs))
		return nil
	}
}

// Start runs a broker with the given topics, each with the given number of partitions, on a free
// loopback port. It is closed when the test ends.
func Start(t testing.TB, partitions int32, topics ...string) *Broker {
	t.Helper()
	return StartWith(t, partitions, topics)
}

// StartWith is Start with options (TLS, SASL).
func StartWith(t testing.TB, partitions int32, topics []string, opts ...Option) *Broker {
	t.Helper()
	b, err := NewWith(0, partitions, topics, opts...)
	if err != nil {
		t.Fatalf("start kfake broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// New runs a broker like Start, for callers without a testing.TB (the dev command).
func New(partitions int32, topics ...string) (*Broker, error) {
	return NewOn(0, partitions, topics...)
}

// NewOn runs a broker on the given loopback port (0 picks a free one).
func NewOn(port int, partitions int32, topics ...string) (*Broker, error) {
	return NewWith(port, partitions, topics)
}

// NewWith is NewOn with options (TLS, SASL).
func NewWith(port int, partitions int32, topics []string, opts ...Option) (*Broker, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		// Tests use short sessions so rebalances after a stopped member take seconds, not minutes.
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, fmt.Sprintf("127.0.0.1:%d", port))
		}),
	}
	if len(topics) > 0 {
		kopts = append(kopts, kfake.SeedTopics(partitions, topics...))
	}
	c, err := kfake.NewCluster(append(kopts, o.kfake...)...)
	if err != nil {
		return nil, err
	}
	b := &Broker{c: c, tls: o.tls, sasl: o.sasl}
	b.transport = &kafka.Transport{DialTimeout: 10 * time.Second, TLS: b.tls, SASL: b.sasl}
	return b, nil
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return b.c.ListenAddrs()[0] }

// Cluster exposes the kfake cluster for fault injection.
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close closes the helpers' idle connections and stops the broker.
func (b *Broker) Close() {
	b.transport.CloseIdleConnections()
	b.c.Close()
}

// Dialer returns a new dialer with the broker's client TLS and SASL settings.
func (b *Broker) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: b.tls, SASLMechanism: b.sasl}
}

// Transport returns the transport (for kafka.Writer and kafka.Client) the broker's helpers share,
// with its client TLS and SASL settings. Close closes its idle connections.
func (b *Broker) Transport() *kafka.Transport { return b.transport }

// Produce writes msgs synchronously with acks from all replicas, keeping each message's
// topic and partitioning by key (murmur2, as the Java client does).
func (b *Broker) Produce(ctx context.Context, msgs ...kafka.Message) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(b.Addr()),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		BatchSize:    1000,
		// Tests write records as large as the broker takes; the broker enforces its own limit.
		BatchBytes: 64 << 20,
		Transport:  b.Transport(),
	}
	defer w.Close()
	return w.WriteMessages(ctx, msgs...)
}

// ReadAll returns every record currently in topic (all partitions) in partition, offset order,
// waiting up to wait for the count to reach at least want (0 = just what is there).
func (b *Broker) ReadAll(ctx context.Context, topic string, want int, wait time.Duration) ([]kafka.Message, error) {
	deadline := time.Now().Add(wait)
	for {
		msgs, err := b.readOnce(ctx, topic)
		if err != nil {
			return nil, err
		}
		if len(msgs) >= want || time.Now().After(deadline) {
			return msgs, nil
		}
		select {
		case <-ctx.Done():
			return msgs, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *Broker) readOnce(ctx context.Context, topic string) ([]kafka.Message, error) {
	dialer := b.Dialer()
	conn, err := dialer.DialContext(ctx, "tcp", b.Addr())
	if err != nil {
		return nil, err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, err
	}
	var out []kafka.Message
	for _, p := range parts {
		pc, err := dialer.DialLeader(ctx, "tcp", b.Addr(), topic, p.ID)
		if err != nil {
			return nil, err
		}
		first, last, err := pc.ReadOffsets()
		if err != nil {
			pc.Close()
			return nil, err
		}
		if last > first {
			if _, err := pc.Seek(first, kafka.SeekAbsolute); err != nil {
				pc.Close()
				return nil, err
			}
			for off := first; off < last; {
				_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
				batch := pc.ReadBatch(1, 10<<20)
				for {
					m, err := batch.ReadMessage()
					if err != nil {
						break
					}
					out = append(out, m)
					off = m.Offset + 1
				}
				if err := batch.Close(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
					pc.Close()
					return nil, fmt.Errorf("read %s/%d: %w", topic, p.ID, err)
				}
			}
		}
		pc.Close()
	}
	return out, nil
}

// CommittedOffsets returns the group's committed offset per partition of topic (-1 when none).
func (b *Broker) CommittedOffsets(ctx context.Context, group, topic string, partitions int) (map[int]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second, Transport: b.Transport()}
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64)
	if errors.Is(resp.Error, kafka.GroupIdNotFound) {
		return out, nil // never committed
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, p.Error
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}
