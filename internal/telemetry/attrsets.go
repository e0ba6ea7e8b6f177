package telemetry

import (
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// AttrSets builds each metric attribute set once, by key: a set built per measurement (sorted,
// de-duplicated, hashed) costs more than the measurement itself. For the few label combinations
// of a hot path (channel × status, topic, method × result). Safe for concurrent use.
type AttrSets[K comparable] struct {
	build func(K) []attribute.KeyValue
	mu    sync.RWMutex
	m     map[K]metric.MeasurementOption
}

// NewAttrSets returns sets whose attributes for a key are build(key).
func NewAttrSets[K comparable](build func(K) []attribute.KeyValue) *AttrSets[K] {
	return &AttrSets[K]{build: build, m: make(map[K]metric.MeasurementOption)}
}

// Get returns the measurement option carrying k's attribute set.
func (a *AttrSets[K]) Get(k K) metric.MeasurementOption {
	a.mu.RLock()
	opt, ok := a.m[k]
	a.mu.RUnlock()
	if ok {
		return opt
	}
	opt = metric.WithAttributeSet(attribute.NewSet(a.build(k)...))
	a.mu.Lock()
	a.m[k] = opt
	a.mu.Unlock()
	return opt
}
