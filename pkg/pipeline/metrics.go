package pipeline

import (
	"context"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ordersync/ordersync/internal/telemetry"
)

// pipelineMetrics are the pipeline's instruments; labels are low-cardinality only (channel,
// status, method, result).
type pipelineMetrics struct {
	outcomes metric.Int64Counter
	gwTime   metric.Float64Histogram
	retries  metric.Int64Counter
	bans     metric.Int64Counter
	dedupes  metric.Int64Counter
	sets     *telemetry.AttrSets[setKey]
}

func (pm *pipelineMetrics) init(m metric.Meter, breakers []*breaker) error {
	pm.sets = telemetry.NewAttrSets(func(k setKey) []attribute.KeyValue {
		kvs := []attribute.KeyValue{attribute.String(k.k1, k.v1)}
		if k.k2 != "" {
			kvs = append(kvs, attribute.String(k.k2, k.v2))
		}
		return kvs
	})
	var err error
	if pm.outcomes, err = m.Int64Counter("ordersync.outcomes", metric.WithUnit("{outcome}"),
		metric.WithDescription("Outcomes by channel and status (succeeded, failed, rejected, duplicate).")); err != nil {
		return err
	}
	if pm.gwTime, err = m.Float64Histogram("ordersync.gateway.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of one TOP gateway call attempt, by method and result."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)); err != nil {
		return err
	}
	if pm.retries, err = m.Int64Counter("ordersync.gateway.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Gateway calls retried after a transient error, by method.")); err != nil {
		return err
	}
	if pm.bans, err = m.Int64Counter("ordersync.gateway.bans", metric.WithUnit("{ban}"),
		metric.WithDescription("Flow-control bans met (code 7, 'ban will last N seconds'), by method.")); err != nil {
		return err
	}
	if pm.dedupes, err = m.Int64Counter("ordersync.dedupe.results", metric.WithUnit("{claim}"),
		metric.WithDescription("Dedupe claim results: claimed, duplicate, in_progress, conflict.")); err != nil {
		return err
	}
	circuit, err := m.Int64ObservableGauge("ordersync.gateway.circuit_state", metric.WithUnit("{state}"), // not "1": that adds _ratio
		metric.WithDescription("State of each gateway's circuit breaker: 0 closed, 1 half-open, 2 open."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, b := range breakers {
			o.ObserveInt64(circuit, int64(b.state.Load()), metric.WithAttributes(attribute.String("ordersync.gateway", b.name)))
		}
		return nil
	}, circuit)
	return err
}

func (pm *pipelineMetrics) outcome(ctx context.Context, channel, status string) {
	pm.outcomes.Add(ctx, 1, pm.sets.Get(setKey{"ordersync.channel", channel, "ordersync.status", status}))
}

func (pm *pipelineMetrics) gateway(ctx context.Context, method, result string, d time.Duration) {
	pm.gwTime.Record(ctx, d.Seconds(), pm.sets.Get(setKey{"ordersync.top.method", method, "ordersync.result", result}))
}

func (pm *pipelineMetrics) retry(ctx context.Context, method string) {
	pm.retries.Add(ctx, 1, pm.sets.Get(setKey{k1: "ordersync.top.method", v1: method}))
}

func (pm *pipelineMetrics) ban(ctx context.Context, method string) {
	pm.bans.Add(ctx, 1, pm.sets.Get(setKey{k1: "ordersync.top.method", v1: method}))
}

func (pm *pipelineMetrics) dedupe(ctx context.Context, result string) {
	pm.dedupes.Add(ctx, 1, pm.sets.Get(setKey{k1: "ordersync.dedupe.result", v1: result}))
}

// setKey is an attribute set of one or two string attributes.
type setKey struct{ k1, v1, k2, v2 string }

func pid() int { return os.Getpid() }
