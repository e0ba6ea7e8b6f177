package kafkatest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestGroupRoundTrip(t *testing.T) {
	b := Start(t, 3, "in")
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

	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{ID: "g", Brokers: []string{b.Addr()}, Topics: []string{"in"}})
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
