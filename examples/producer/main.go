// Command producer publishes one example event per channel (examples/events/<channel>.json) to
// its channel's topic with the Go client github.com/segmentio/kafka-go, the way a POS or ERP
// integration would: keyed by the event's idempotency key (murmur2 partitioning, as Java
// producers do, so every client puts one order's events on one partition) and with a W3C
// traceparent header that the worker's trace continues.
//
//	go run ./examples/producer -brokers localhost:9092
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// channels lists each channel's default topic and how its default idempotency key is derived
// from an event (README, "Channels"). An event's envelope idempotency_key overrides it.
var channels = []struct {
	id  string
	key func(e event) string
}{
	{"tmall-aliauto", func(e event) string { return e.str("sync_single_order_req", "idempotent_id") }},
	{"omni-saas", func(e event) string { return e.str("request_no") }},
	{"icbu-trade", func(e event) string { return e.EventID }},
	{"mos-haiding", func(e event) string {
		if refund := e.obj("order_sync_request", "refund_order"); len(refund) > 0 {
			return "refund:" + e.str("order_sync_request", "refund_order", "out_refund_no")
		}
		return "order:" + e.str("order_sync_request", "order", "out_trade_no")
	}},
	{"diantao-tripartite", func(e event) string {
		finished, _ := e.at("tripartite_order_info_dto", "trade_finished").(bool)
		return e.str("tripartite_order_info_dto", "out_order_id") + ":" + strconv.FormatBool(finished)
	}},
}

// event is the part of an input event the producer reads.
type event struct {
	EventID        string         `json:"event_id"`
	IdempotencyKey string         `json:"idempotency_key"`
	Request        map[string]any `json:"request"`
}

func (e event) at(path ...string) any {
	var v any = e.Request
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func (e event) str(path ...string) string { s, _ := e.at(path...).(string); return s }

func (e event) obj(path ...string) map[string]any { m, _ := e.at(path...).(map[string]any); return m }

// key is the record key: the envelope's idempotency_key, else the channel's default key.
func key(channel string, e event) string {
	if e.IdempotencyKey != "" {
		return e.IdempotencyKey
	}
	for _, c := range channels {
		if c.id == channel {
			return c.key(e)
		}
	}
	return e.EventID
}

// traceparent is a new W3C trace context: version 00, random trace and span ids, sampled. With
// OpenTelemetry, inject the current span's context instead (propagation.TraceContext{}).
func traceparent() string {
	var id [24]byte
	_, _ = rand.Read(id[:])
	return "00-" + hex.EncodeToString(id[:16]) + "-" + hex.EncodeToString(id[16:]) + "-01"
}

// publish sends one message per channel, read from dir/<channel>.json, and reports each.
func publish(ctx context.Context, brokers []string, dir string, out io.Writer) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
	}
	defer w.Close()
	for _, c := range channels {
		value, err := os.ReadFile(filepath.Join(dir, c.id+".json"))
		if err != nil {
			return err
		}
		var e event
		if err := json.Unmarshal(value, &e); err != nil {
			return fmt.Errorf("%s: %w", c.id, err)
		}
		k, tp := key(c.id, e), traceparent()
		msg := kafka.Message{
			Topic:   "orders." + c.id, // the channel's default topic
			Key:     []byte(k),
			Value:   value,
			Headers: []kafka.Header{{Key: "traceparent", Value: []byte(tp)}},
		}
		if err := w.WriteMessages(ctx, msg); err != nil {
			return fmt.Errorf("publish %s: %w", c.id, err)
		}
		fmt.Fprintf(out, "published %s to %s key=%s traceparent=%s\n", e.EventID, msg.Topic, k, tp)
	}
	return nil
}

func main() {
	brokers := flag.String("brokers", "localhost:9092", "Kafka bootstrap brokers, comma-separated")
	dir := flag.String("events", "examples/events", "directory of <channel>.json events")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := publish(ctx, strings.Split(*brokers, ","), *dir, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}
