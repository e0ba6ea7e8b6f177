package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/telemetry"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

func TestObservabilityRedaction(t *testing.T) {
	e := newE2E(t, 1)
	if err := e.sim.SetFaults(topsim.Faults{ErrorRate: 0.2, ISPRate: 0.3}); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(t)
	// Upstream systems choose event ids and keys, and some use the buyer's phone: here a buyer
	// phone in a payload, a phone in an event id, idempotency key and message key, a channel
	// that sends a session key, and an invalid event that goes to the DLQ with the phone in it.
	tmall := g.valid("tmall-aliauto", "red1") // buyer_info.user_phone 13912340000 in the seed
	if !bytes.Contains(tmall.value, []byte(buyerPhone)) {
		t.Fatalf("tmall-aliauto seed lost its buyer phone %s", buyerPhone)
	}
	diantao := g.valid("diantao-tripartite", buyerPhone)
	diantao.value = bytes.Replace(diantao.value, []byte(`"15249762486"`), []byte(`"`+buyerPhone+`"`), 1)
	omni := g.valid("omni-saas", "red3")
	bad := g.malformed("tmall-aliauto", "red4")
	bad.key = buyerPhone
	events := []testEvent{tmall, diantao, omni, bad}
	if !strings.Contains(diantao.key, buyerPhone) {
		t.Fatalf("diantao key %q does not contain the phone", diantao.key)
	}

	col := newSpanCollector()
	cfg := e.config("obs-redact")
	cfg.Worker.ClientTelemetry = true // every span there is
	cfg.Log.Outcomes = "all"          // a record per outcome
	cfg.Log.Level = "debug"
	w := e.startWorkerWith(cfg, &telemetry.Options{SpanExporter: col, Getenv: noOTelEnv})
	for _, ev := range events {
		publishWithHeaders(e, ev, kafka.Header{Key: "traceparent", Value: []byte(upstreamParent)})
	}
	got := e.outcomes(events, 60*time.Second)
	e.checkDelivery(events, got, false)
	results := readRecords(e, "orders.results", len(events))
	dlq := readRecords(e, "orders.dlq", 1)
	_, metricsText := scrapeMetrics(t, w.addr)
	stopObserved(t, w)

	logs := w.logs.String()
	spanText := dumpSpans(col.GetSpans())
	captured := map[string]string{
		"logs":     logs,
		"spans":    spanText,
		"outcomes": dumpMessages(results),
		"dlq":      dumpMessages(dlq),
		"metrics":  metricsText,
	}
	for what, text := range captured {
		for _, secret := range []string{e2eSecret, e2eSession} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain the secret %q", what, secret)
			}
		}
	}
	for _, what := range []string{"logs", "spans", "metrics"} {
		if i := strings.Index(captured[what], buyerPhone); i >= 0 {
			text := captured[what]
			t.Errorf("%s contain the raw phone %s: …%s…", what, buyerPhone, text[max(i-200, 0):min(i+100, len(text))])
		}
	}
	// The phone is there, masked, where the key is recorded.
	for _, what := range []string{"logs", "spans"} {
		if !strings.Contains(captured[what], maskedBuyerPhone) {
			t.Errorf("%s do not contain the masked phone %s", what, maskedBuyerPhone)
		}
	}
	checkEventLogsTraced(t, logs)
}
