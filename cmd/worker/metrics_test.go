package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ordersync/ordersync/internal/telemetry"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// scrapeMetrics reads the worker's /metrics over HTTP.
func scrapeMetrics(t *testing.T, addr string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %v", resp.Status, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams, string(body)
}

// metricSeries sums the samples of family name (counter value, gauge value or histogram count)
// by the values of the given labels, joined with "/".
func metricSeries(fams map[string]*dto.MetricFamily, name string, by ...string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		parts := make([]string, len(by))
		for i, b := range by {
			parts[i] = labels[b]
		}
		k := strings.Join(parts, "/")
		switch {
		case m.GetCounter() != nil:
			out[k] += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			out[k] += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			out[k] += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return out
}

func TestObservabilityMetrics(t *testing.T) {
	const partitions = 2
	e := newE2E(t, partitions)
	if err := e.sim.SetFaults(topsim.Faults{ErrorRate: 0.1, ISPRate: 0.2}); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(t)
	events := mix(g, 100, 10, 10)
	e.publish(events)
	cfg := e.config("obs-metrics")
	cfg.Worker.ClientTelemetry = true // db_client_* and http_client_* too
	w := e.startWorkerWith(cfg, &telemetry.Options{SpanExporter: newSpanCollector(), Getenv: noOTelEnv})
	e.outcomes(events, 120*time.Second)

	// What the metrics must say, from the outcomes, the DLQ and the simulator.
	results := readRecords(e, "orders.results", len(events))
	wantOutcomes := map[string]float64{}
	wantRetries := map[string]float64{}
	wantLag := map[string]float64{}
	wantDedupe := map[string]float64{}
	for _, m := range results {
		var o dispatch.Outcome
		if err := json.Unmarshal(m.Value, &o); err != nil {
			t.Fatal(err)
		}
		wantOutcomes[o.Channel+"/"+o.Status]++
		if o.Status == dispatch.StatusSucceeded || o.Status == dispatch.StatusFailed {
			wantDedupe["claimed"]++
			if o.Attempts > 1 {
				wantRetries[o.Method] += float64(o.Attempts - 1)
			}
		}
		if o.Status == dispatch.StatusDuplicate {
			wantDedupe["duplicate"]++
		}
		wantLag[fmt.Sprintf("%s/%d", o.Source.Topic, o.Source.Partition)] = 0
	}
	dlq := readRecords(e, "orders.dlq", countStatus(events)[dispatch.StatusRejected])
	stats := e.sim.Stats()
	wantGateway := map[string]float64{}
	for _, c := range stats.Calls {
		wantGateway[c.Method] += float64(c.Calls)
	}

	var fams map[string]*dto.MetricFamily
	var text string
	checks := func() []string {
		fams, text = scrapeMetrics(t, w.addr)
		var diffs []string
		check := func(what string, want, got map[string]float64) {
			if d := cmp.Diff(want, got); d != "" {
				diffs = append(diffs, fmt.Sprintf("%s (-want +got):\n%s", what, d))
			}
		}
		check("ordersync_outcomes_total by channel/status", wantOutcomes,
			metricSeries(fams, "ordersync_outcomes_total", "ordersync_channel", "ordersync_status"))
		check("messaging_client_consumed_messages_total", map[string]float64{"": float64(len(events))},
			metricSeries(fams, "messaging_client_consumed_messages_total"))
		check("messaging_process_duration_seconds count", map[string]float64{"process/": float64(len(events))},
			metricSeries(fams, "messaging_process_duration_seconds", "messaging_operation_name", "error_type"))
		check("messaging_client_sent_messages_total by topic",
			map[string]float64{"orders.results": float64(len(results)), "orders.dlq": float64(len(dlq))},
			metricSeries(fams, "messaging_client_sent_messages_total", "messaging_destination_name"))
		check("ordersync_gateway_duration_seconds count by method", wantGateway,
			metricSeries(fams, "ordersync_gateway_duration_seconds", "ordersync_top_method"))
		check("ordersync_gateway_retries_total by method", wantRetries,
			metricSeries(fams, "ordersync_gateway_retries_total", "ordersync_top_method"))
		check("ordersync_dedupe_results_total", wantDedupe,
			metricSeries(fams, "ordersync_dedupe_results_total", "ordersync_dedupe_result"))
		check("ordersync_consumer_lag by topic/partition", wantLag,
			metricSeries(fams, "ordersync_consumer_lag", "messaging_destination_name", "messaging_destination_partition_id"))
		return diffs
	}
	var diffs []string
	deadline := time.Now().Add(10 * time.Second)
	for diffs = checks(); len(diffs) > 0 && time.Now().Before(deadline); diffs = checks() {
		time.Sleep(100 * time.Millisecond) // the last measurements land just after the outcomes
	}
	for _, d := range diffs {
		t.Error(d)
	}

	// Gateway results: every simulator success is an "ok" call.
	okCalls := 0.0
	for k, v := range metricSeries(fams, "ordersync_gateway_duration_seconds", "ordersync_result") {
		if k == "ok" {
			okCalls = v
		}
	}
	if okCalls != float64(stats.Succeeded) {
		t.Errorf("ordersync_gateway_duration_seconds{ordersync_result=\"ok\"} count %v, want the simulator's %d successes", okCalls, stats.Succeeded)
	}
	if sumValues(wantRetries) == 0 {
		t.Errorf("no retries under injected faults; the retry counter went untested")
	}
	// Commit lag per partition is exported once the group has committed.
	if got := metricSeries(fams, "ordersync_consumer_commit_lag", "messaging_destination_name", "messaging_destination_partition_id"); len(got) != len(wantLag) {
		t.Errorf("ordersync_consumer_commit_lag series %v, want one per partition in %v", got, wantLag)
	}
	// Low cardinality: no label carries an event id, key or offset.
	for _, ev := range events {
		if strings.Contains(text, ev.eventID) || strings.Contains(text, ev.key) {
			t.Fatalf("/metrics mentions event %s or key %s: labels must be low-cardinality", ev.eventID, ev.key)
		}
	}
	if testing.Verbose() {
		logFamilies(t, fams)
	}
}

func sumValues(m map[string]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

// logFamilies lists the ordersync and messaging metric families with their labels (the
// README's metric table comes from this).
func logFamilies(t *testing.T, fams map[string]*dto.MetricFamily) {
	var names []string
	for n := range fams {
		if strings.HasPrefix(n, "ordersync_") || strings.HasPrefix(n, "messaging_") ||
			strings.HasPrefix(n, "http_client_") || strings.HasPrefix(n, "db_client_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		f := fams[n]
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !strings.HasPrefix(l.GetName(), "otel_scope_") {
					labels[l.GetName()] = true
				}
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		t.Logf("%s %s {%s} %s", n, f.GetType(), strings.Join(ls, ","), f.GetHelp())
	}
}
