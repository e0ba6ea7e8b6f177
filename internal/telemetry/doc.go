// Package telemetry is ordersync's observability plumbing: OpenTelemetry SDK
// setup from the standard OTEL_* environment, a Prometheus /metrics handler
// fed by the OTel metrics API, a log/slog handler that adds trace_id/span_id
// and masks phone numbers, and instrumentation helpers for go-redis, outbound
// HTTP and kafka-go headers. It holds no business logic: spans and metrics
// of the pipeline are created by their owners through the OTel API, using the
// providers returned here.
//
// # Tracing
//
// [Setup] builds the tracer provider:
//
//   - OTEL_SDK_DISABLED=true: a no-op provider (no trace ids are created;
//     incoming trace context is still propagated). Metrics stay on.
//   - an exporter is configured (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT
//     or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set): the exporter from
//     go.opentelemetry.io/contrib/exporters/autoexport (OTLP over
//     http/protobuf by default, gRPC with OTEL_EXPORTER_OTLP_PROTOCOL=grpc;
//     "console"; "none") behind a batch span processor (OTEL_BSP_* honoured).
//   - otherwise: an SDK provider without any processor, so spans still get
//     trace and span ids (for outcomes and logs) and propagate the sampled
//     flag, but nothing is queued or exported.
//
// The sampler comes from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (read
// by the SDK; default parentbased_always_on). The resource has service.name
// "ordersync" (OTEL_SERVICE_NAME overrides), service.version, host.name,
// k8s.pod.name from POD_NAME or K8S_POD_NAME, the telemetry.sdk.* attributes
// and OTEL_RESOURCE_ATTRIBUTES (which wins over all but OTEL_SERVICE_NAME).
// The propagator comes from OTEL_PROPAGATORS (default tracecontext,baggage).
//
// # Metrics and their Prometheus names
//
// The meter provider has one reader, the OTel Prometheus exporter, registered
// on a private registry together with the Go runtime and process collectors;
// [Telemetry.MetricsHandler] serves it. OTel names are translated with
// otlptranslator's UnderscoreEscapingWithSuffixes strategy:
//
//   - dots and other invalid characters become '_': messaging.process.duration
//     → messaging_process_duration_…;
//   - the unit becomes a suffix: "s" → _seconds, "ms" → _milliseconds,
//     "By" → _bytes, "1" → _ratio (gauges only); annotations in braces such
//     as "{message}" add nothing;
//   - monotonic counters get _total (after the unit: ordersync.top.retries
//     with unit "{retry}" → ordersync_top_retries_total);
//   - histograms expose _bucket/_sum/_count;
//   - non-monotonic sums (UpDownCounter) and gauges are Prometheus gauges
//     without suffix: ordersync.events.in_flight → ordersync_events_in_flight;
//   - attribute keys get the same escaping (messaging.destination.name →
//     messaging_destination_name); every series also carries the labels
//     otel_scope_name (the meter name), otel_scope_version and
//     otel_scope_schema_url (empty when unset), and the resource is exported
//     once as target_info{service_name=…,service_version=…,host_name=…};
//   - an instrument without a description gets an empty HELP line.
//
// Histograms whose name ends in ".duration" and whose unit is "s" use the
// bucket boundaries of [DurationBuckets] (the messaging semantic conventions'
// recommendation) through a View; a View wins over
// metric.WithExplicitBucketBoundaries, so those instruments need no
// boundaries of their own. Other histograms keep the SDK defaults unless
// they pass boundaries.
//
// # Secrets and personal data
//
// [HTTPTransport] removes the query string (and userinfo and fragment) from
// the url.full span attribute, [InstrumentRedis] never records commands or
// their arguments, and the log handler from [NewHandler] masks phone numbers
// with [MaskPhone]. Every span passes through [MaskPhone] on its way to the
// exporter: its name, status description and the string attributes of the
// span, its events and its links, whichever instrumentation made it (an
// upstream system may put a buyer's phone in a message key, an event id or
// an idempotency key, and error texts may quote a field). This happens in
// the batch processor's goroutine, not on the event's path, and spans with
// nothing to mask are exported as they are. Nothing here logs.
package telemetry
