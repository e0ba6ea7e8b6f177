package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ordersync/ordersync/internal/telemetry"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// metricsUsedByChart is the list of metric names the chart's dashboard and PrometheusRule use,
// kept exact by tools/promql's TestChartPromQL (which parses every expression).
const metricsUsedByChart = "../../tools/promql/metrics.txt"

// TestOperatorMetricsExported runs the worker end to end — transient gateway errors and
// flow-control bans that pause intake included, so that every counter and gauge has a series — and
// checks that every metric name the chart's dashboard and alerts use is in /metrics. It is also the
// regression test of the two gauges' names: with unit "1" the exporter called them
// ordersync_intake_paused_ratio and ordersync_gateway_circuit_state_ratio.
func TestOperatorMetricsExported(t *testing.T) {
	b, err := os.ReadFile(metricsUsedByChart)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			names = append(names, line)
		}
	}
	if len(names) < 8 {
		t.Fatalf("%s lists %d names", metricsUsedByChart, len(names))
	}

	e := newE2E(t, 2)
	if err := e.sim.SetFaults(topsim.Faults{ISPRate: 0.2, BanRate: 0.05, BanSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	events := mix(newEventGen(t), 60, 10, 10)
	e.publish(events)
	cfg := e.config("operator-metrics")
	cfg.Top.MaxBanWait = 0 // every ban pauses intake: ordersync_intake_paused gets its series
	w := e.startWorkerWith(cfg, &telemetry.Options{SpanExporter: newSpanCollector(), Getenv: noOTelEnv})
	e.outcomes(events, 120*time.Second)

	missing := func(text string) []string {
		var out []string
		for _, n := range names {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(n) + `[{ ]`).MatchString(text) {
				out = append(out, n)
			}
		}
		return out
	}
	var miss []string
	var text string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, text = scrapeMetrics(t, w.addr)
		if miss = missing(text); len(miss) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(miss) > 0 {
		t.Errorf("the chart's dashboard or alerts use metrics /metrics does not have: %v", miss)
		if testing.Verbose() {
			t.Logf("/metrics:\n%s", text)
		}
	}
}
