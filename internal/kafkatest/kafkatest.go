// Package kafkatest runs an in-process Kafka-protocol broker (kfake) on a loopback TCP port for
// tests, and offers small helpers to produce and read records with the real kafka-go client.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a running kfake cluster of one broker.
type Broker struct {
	c *kfake.Cluster
}

// Start runs a broker with the given topics, each with the given number of partitions, on a free
// loopback port. It is closed when the test ends.
func Start(t testing.TB, partitions int32, topics ...string) *Broker {
	t.Helper()
	b, err := New(partitions, topics...)
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
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// Tests use short sessions so rebalances after a stopped member take seconds, not minutes.
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, fmt.Sprintf("127.0.0.1:%d", port))
		}),
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, err
	}
	return &Broker{c: c}, nil
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return b.c.ListenAddrs()[0] }

// Cluster exposes the kfake cluster for fault injection.
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close stops the broker.
func (b *Broker) Close() { b.c.Close() }

// Produce writes msgs synchronously with acks from all replicas, keeping each message's
// topic and partitioning by key (murmur2, as the Java client does).
func (b *Broker) Produce(ctx context.Context, msgs ...kafka.Message) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(b.Addr()),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		BatchSize:    1000,
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
	conn, err := kafka.DialContext(ctx, "tcp", b.Addr())
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
		pc, err := kafka.DialLeader(ctx, "tcp", b.Addr(), topic, p.ID)
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
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second}
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
