package consumer

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ordersync/ordersync/internal/telemetry"
)

// instruments are the consumer's metrics. Labels are low-cardinality: topic, partition, group.
type instruments struct {
	group          attribute.KeyValue
	consumed       metric.Int64Counter
	sent           metric.Int64Counter
	inFlight       metric.Int64UpDownCounter
	processRetries metric.Int64Counter
	publishRetries metric.Int64Counter
	processTime    metric.Float64Histogram
	sets           *telemetry.AttrSets[setKey]
}

// durationBuckets are the messaging semantic conventions' recommended boundaries, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

func newInstruments(m metric.Meter, c *Consumer) (*instruments, error) {
	in := &instruments{group: attribute.String("messaging.consumer.group.name", c.cfg.GroupID)}
	in.sets = telemetry.NewAttrSets(func(k setKey) []attribute.KeyValue {
		kvs := []attribute.KeyValue{attribute.String("messaging.system", "kafka"), in.group, attribute.String("messaging.destination.name", k.topic)}
		if k.process {
			kvs = append(kvs, attribute.String("messaging.operation.name", "process"))
		}
		if k.errType != "" {
			kvs = append(kvs, attribute.String("error.type", k.errType))
		}
		return kvs
	})
	var err error
	if in.consumed, err = m.Int64Counter("messaging.client.consumed.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages fetched from the channel topics.")); err != nil {
		return nil, err
	}
	if in.sent, err = m.Int64Counter("messaging.client.sent.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Outcome and dead-letter records acknowledged by the brokers.")); err != nil {
		return nil, err
	}
	if in.inFlight, err = m.Int64UpDownCounter("ordersync.consumer.in_flight", metric.WithUnit("{message}"),
		metric.WithDescription("Fetched messages not yet finished, each holding an in-flight slot (at most worker.max_in_flight), parked ones included.")); err != nil {
		return nil, err
	}
	if in.processRetries, err = m.Int64Counter("ordersync.consumer.process.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Messages retried because a dependency was unavailable.")); err != nil {
		return nil, err
	}
	if in.publishRetries, err = m.Int64Counter("ordersync.consumer.publish.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Failed writes of outcome or dead-letter records, retried.")); err != nil {
		return nil, err
	}
	if in.processTime, err = m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from fetch to finish of one message, including publishing its outcome."),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, err
	}
	lag, err := m.Int64ObservableGauge("ordersync.consumer.lag", metric.WithUnit("{message}"),
		metric.WithDescription("Messages in the partition not yet fetched: the high watermark as the broker reports it (fetch responses, and an offsets request every few seconds) minus the next fetch offset."))
	if err != nil {
		return nil, err
	}
	commitLag, err := m.Int64ObservableGauge("ordersync.consumer.commit_lag", metric.WithUnit("{message}"),
		metric.WithDescription("Messages in the partition past the committed offset (high watermark minus committed offset)."))
	if err != nil {
		return nil, err
	}
	paused, err := m.Int64ObservableGauge("ordersync.intake.paused", metric.WithUnit("{pause}"), // not "1": that adds _ratio
		metric.WithDescription("1 while intake is paused for the reason (ban, circuit_open, credentials, unwritable), 0 otherwise."))
	if err != nil {
		return nil, err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for reason, on := range c.gates.pausedReasons() {
			v := int64(0)
			if on {
				v = 1
			}
			o.ObserveInt64(paused, v, metric.WithAttributes(attribute.String("ordersync.pause.reason", reason)))
		}
		return nil
	}, paused)
	if err != nil {
		return nil, err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for id, p := range c.parts {
			hwm := p.hwm.Load()
			if hwm < 0 {
				continue
			}
			attrs := metric.WithAttributes(in.group, attribute.String("messaging.destination.name", id.topic),
				attribute.String("messaging.destination.partition.id", strconv.Itoa(id.id)))
			committed := p.committed.Load()
			next := p.fetchNext.Load()
			if next < 0 {
				next = committed // nothing fetched yet in this generation
			}
			if next >= 0 {
				o.ObserveInt64(lag, max(hwm-next, 0), attrs)
			}
			if committed >= 0 {
				o.ObserveInt64(commitLag, max(hwm-committed, 0), attrs)
			} else {
				o.ObserveInt64(commitLag, hwm, attrs)
			}
		}
		return nil
	}, lag, commitLag)
	if err != nil {
		return nil, err
	}
	return in, nil
}

func (in *instruments) topicAttrs(topic string) metric.MeasurementOption {
	return in.sets.Get(setKey{topic: topic})
}

func (in *instruments) recordProcess(topic string, d time.Duration, errType string) {
	in.processTime.Record(context.Background(), d.Seconds(), in.sets.Get(setKey{topic: topic, errType: errType, process: true}))
}

// setKey names one of the few attribute sets the per-message measurements use: a topic's, or a
// process duration's (with its error type).
type setKey struct {
	topic, errType string
	process        bool
}
