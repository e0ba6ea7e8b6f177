package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
)

// runReplay is `worker replay`: it re-publishes the dead letters currently in the DLQ topic to
// their source topics (header ordersync-source-topic), with their original key, value and
// headers, minus the ordersync-* headers the DLQ added. Replaying is safe to repeat: an event that
// completed in the meantime comes back as a duplicate outcome, never a second order.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); ORDERSYNC_* variables override it")
	dryRun := fs.Bool("dry-run", false, "print what would be replayed, publish nothing")
	channel := fs.String("channel", "", "only dead letters from this channel's topic")
	eventID := fs.String("event-id", "", "only the dead letter of this event_id")
	contains := fs.String("error-contains", "", "only dead letters whose ordersync-error contains this text")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := loadValidConfig(*path, environ, false)
	if err != nil {
		return err
	}
	sourceTopic := ""
	if *channel != "" {
		ch, ok := cfg.Channels[*channel]
		if !ok {
			return fmt.Errorf("--channel: unknown channel %q (known: %s)", *channel, strings.Join(dispatch.ChannelIDs(), ", "))
		}
		sourceTopic = ch.Topic
	}
	dialer, transport, err := kafkaClients(cfg.Kafka)
	if err != nil {
		return err
	}

	letters, err := readTopic(ctx, dialer, cfg.Kafka.Brokers, cfg.Kafka.DLQTopic)
	if err != nil {
		return fmt.Errorf("read %s: %w", cfg.Kafka.DLQTopic, err)
	}
	var out []kafka.Message
	for _, m := range letters {
		src := consumer.Header(m, consumer.HeaderSourceTopic)
		switch {
		case src == "":
			fmt.Fprintf(stderr, "skip %s/%d@%d: no %s header\n", m.Topic, m.Partition, m.Offset, consumer.HeaderSourceTopic)
			continue
		case sourceTopic != "" && src != sourceTopic:
			continue
		case *contains != "" && !strings.Contains(consumer.Header(m, consumer.HeaderError), *contains):
			continue
		case *eventID != "" && eventIDOf(m.Value) != *eventID:
			continue
		}
		r := kafka.Message{Topic: src, Key: m.Key, Value: m.Value}
		for _, h := range m.Headers {
			if !strings.HasPrefix(h.Key, "ordersync-") {
				r.Headers = append(r.Headers, h)
			}
		}
		out = append(out, r)
		verb := "replay"
		if *dryRun {
			verb = "would replay"
		}
		fmt.Fprintf(stdout, "%s %s/%d@%d → %s key=%q event_id=%q error=%q\n", verb, m.Topic, m.Partition, m.Offset, src,
			m.Key, eventIDOf(m.Value), consumer.Header(m, consumer.HeaderError))
	}
	if *dryRun || len(out) == 0 {
		fmt.Fprintf(stdout, "%d of %d dead letter(s) selected; nothing published\n", len(out), len(letters))
		return nil
	}
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Kafka.Brokers...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, Transport: transport}
	defer w.Close()
	if err := w.WriteMessages(ctx, out...); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	fmt.Fprintf(stdout, "replayed %d of %d dead letter(s)\n", len(out), len(letters))
	return nil
}

// readTopic reads every record of every partition of topic, up to the end offsets at the start.
func readTopic(ctx context.Context, dialer *kafka.Dialer, brokers []string, topic string) ([]kafka.Message, error) {
	var conn *kafka.Conn
	var err error
	for _, b := range brokers {
		if conn, err = dialer.DialContext(ctx, "tcp", b); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, err
	}
	var all []kafka.Message
	for _, p := range parts {
		pc, err := dialer.DialLeader(ctx, "tcp", brokers[0], topic, p.ID)
		if err != nil {
			return nil, err
		}
		first, last, err := pc.ReadOffsets()
		pc.Close()
		if err != nil {
			return nil, err
		}
		if last <= first {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p.ID, Dialer: dialer, MaxWait: 200 * time.Millisecond})
		if err := r.SetOffset(first); err != nil {
			r.Close()
			return nil, err
		}
		for {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			m, err := r.ReadMessage(rctx)
			cancel()
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("partition %d: %w", p.ID, err)
			}
			all = append(all, m)
			if m.Offset+1 >= last {
				break
			}
		}
		r.Close()
	}
	return all, nil
}

func eventIDOf(value []byte) string {
	var v struct {
		EventID string `json:"event_id"`
	}
	_ = json.Unmarshal(value, &v)
	return v.EventID
}
