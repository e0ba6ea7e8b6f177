package topsim

import (
	"cmp"
	"slices"
)

// CallStats counts the calls the simulator saw for one (method, idempotency
// key). Key is empty for calls whose parameters did not yield a key.
type CallStats struct {
	Method    string `json:"method"`
	Key       string `json:"key"`
	Calls     int    `json:"calls"`     // every request, whatever its answer
	Succeeded int    `json:"succeeded"` // requests answered with success
}

// Stats is a snapshot of the simulator's counters (GET /stats).
type Stats struct {
	// Calls per (method, key), sorted by method then key.
	Calls []CallStats `json:"calls"`
	// Total counts every gateway request; Succeeded the successful ones.
	Total     int `json:"total"`
	Succeeded int `json:"succeeded"`
	// Faults counts injected faults by kind: "http_503", "isp", "ban"
	// (every code-7 answer), "hang".
	Faults map[string]int `json:"faults"`
	// Errors counts error_response answers by platform code.
	Errors map[int]int `json:"errors"`
}

// For returns the counters of (method, key), zero if it was never called.
func (s Stats) For(method, key string) CallStats {
	i, ok := slices.BinarySearchFunc(s.Calls, CallStats{Method: method, Key: key}, compareCalls)
	if !ok {
		return CallStats{Method: method, Key: key}
	}
	return s.Calls[i]
}

func compareCalls(a, b CallStats) int {
	return cmp.Or(cmp.Compare(a.Method, b.Method), cmp.Compare(a.Key, b.Key))
}

type callKey struct{ method, key string }

// counters is the simulator's mutable tally; guarded by Sim.mu.
type counters struct {
	calls     map[callKey]*CallStats
	total     int
	succeeded int
	faults    map[string]int
	errors    map[int]int
}

func newCounters() counters {
	return counters{calls: make(map[callKey]*CallStats), faults: make(map[string]int), errors: make(map[int]int)}
}

func (c *counters) call(method, key string) {
	c.total++
	k := callKey{method, key}
	cs := c.calls[k]
	if cs == nil {
		cs = &CallStats{Method: method, Key: key}
		c.calls[k] = cs
	}
	cs.Calls++
}

func (c *counters) success(method, key string) {
	c.succeeded++
	if cs := c.calls[callKey{method, key}]; cs != nil {
		cs.Succeeded++
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Calls:     make([]CallStats, 0, len(c.calls)),
		Total:     c.total,
		Succeeded: c.succeeded,
		Faults:    make(map[string]int, len(c.faults)),
		Errors:    make(map[int]int, len(c.errors)),
	}
	for _, cs := range c.calls {
		s.Calls = append(s.Calls, *cs)
	}
	slices.SortFunc(s.Calls, compareCalls)
	for k, v := range c.faults {
		s.Faults[k] = v
	}
	for k, v := range c.errors {
		s.Errors[k] = v
	}
	return s
}
