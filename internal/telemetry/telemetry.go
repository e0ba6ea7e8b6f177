package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Options configures [Setup]. The zero value is ready to use.
type Options struct {
	// ServiceVersion is recorded as the service.version resource attribute;
	// empty leaves it out.
	ServiceVersion string

	// Getenv looks up the variables Setup interprets itself:
	// OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT,
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_TRACES_SAMPLER(_ARG) (validated
	// only), OTEL_PROPAGATORS, POD_NAME and K8S_POD_NAME. nil means os.Getenv.
	// The SDK components read the process environment themselves whatever
	// Getenv says: the exporter (OTEL_EXPORTER_OTLP_*), the sampler, the batch
	// processor (OTEL_BSP_*) and the resource (OTEL_SERVICE_NAME,
	// OTEL_RESOURCE_ATTRIBUTES). A Getenv that returns "" for everything gives
	// a hermetic setup with no exporter.
	Getenv func(string) string

	// SpanExporter, when non-nil, replaces the exporter chosen from the
	// environment (tests). It is used behind a batch span processor, receives
	// spans with phone numbers masked like every exporter, and is shut down
	// by Shutdown. It is ignored when OTEL_SDK_DISABLED=true.
	SpanExporter sdktrace.SpanExporter

	// Logger, when non-nil, receives the errors OpenTelemetry reports
	// asynchronously (failed exports, dropped spans) at warn level, by
	// replacing the global otel error handler. nil keeps the default handler
	// (the standard library logger).
	Logger *slog.Logger
}

// Telemetry owns the tracer and meter providers built by [Setup]. Its
// methods are safe for concurrent use. Create it only with Setup.
type Telemetry struct {
	tp        trace.TracerProvider
	sdkTP     *sdktrace.TracerProvider // nil when the SDK is disabled or there is no exporter
	exporter  sdktrace.SpanExporter    // unused exporter to shut down (SDK disabled)
	mp        *sdkmetric.MeterProvider
	prop      propagation.TextMapPropagator
	metrics   http.Handler
	shutdown  sync.Once
	shutdownE error
}

// Setup configures OpenTelemetry from the environment (see the package
// documentation) and installs the tracer provider, meter provider and
// propagator as the otel globals, so instrumentation that defaults to the
// globals (otelhttp, redisotel) uses them. Invalid settings (an unknown
// sampler, propagator, exporter or OTLP protocol, malformed
// OTEL_RESOURCE_ATTRIBUTES) are an error naming the variable. ctx bounds
// exporter construction only. Call Shutdown before exiting to flush.
func Setup(ctx context.Context, opts Options) (*Telemetry, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	prop, err := newPropagator(getenv)
	if err != nil {
		return nil, err
	}
	if err := validateSampler(getenv); err != nil {
		return nil, err
	}
	res, err := newResource(ctx, opts.ServiceVersion, getenv)
	if err != nil {
		return nil, err
	}

	t := &Telemetry{prop: prop}
	if isTrue(getenv("OTEL_SDK_DISABLED")) {
		t.tp = disabledTracerProvider()
		t.exporter = opts.SpanExporter
	} else {
		sdkTP, err := newTracerProvider(ctx, res, opts.SpanExporter, getenv)
		if err != nil {
			return nil, err
		}
		t.tp, t.sdkTP = idTracerProvider{}, sdkTP
		if sdkTP != nil {
			t.tp = sdkTP
		}
	}

	mp, handler, err := newMeterProvider(res, opts.Logger)
	if err != nil {
		return nil, errors.Join(err, t.shutdownTraces(ctx))
	}
	t.mp, t.metrics = mp, handler

	if opts.Logger != nil {
		l := opts.Logger
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			l.Warn("opentelemetry", slog.String("error", err.Error()))
		}))
	}
	otel.SetTracerProvider(t.tp)
	otel.SetMeterProvider(t.mp)
	otel.SetTextMapPropagator(t.prop)
	return t, nil
}

// TracerProvider returns the tracer provider: an *sdktrace.TracerProvider when
// a span exporter is configured; without one, a provider whose spans record
// nothing but carry trace and span ids (outcomes and logs keep their trace_id);
// a no-op provider when OTEL_SDK_DISABLED=true.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// MeterProvider returns the meter provider feeding [Telemetry.MetricsHandler].
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.mp }

// Tracer returns a tracer named name (by convention the instrumenting
// package's import path) from [Telemetry.TracerProvider].
func (t *Telemetry) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return t.tp.Tracer(name, opts...)
}

// Meter returns a meter named name from [Telemetry.MeterProvider].
func (t *Telemetry) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return t.mp.Meter(name, opts...)
}

// Propagator returns the text-map propagator built from OTEL_PROPAGATORS
// (default W3C trace context and baggage); Setup also installs it globally.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.prop }

// MetricsHandler serves the metrics in the Prometheus text format (OpenMetrics
// when the scraper asks for it, which adds exemplars with trace ids).
func (t *Telemetry) MetricsHandler() http.Handler { return t.metrics }

// ForceFlush exports the spans ended so far, waiting at most until ctx is
// done. It is a no-op when no exporter is configured or the SDK is disabled.
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	if t.sdkTP == nil {
		return nil
	}
	if err := t.sdkTP.ForceFlush(ctx); err != nil {
		return fmt.Errorf("flush spans: %w", err)
	}
	return nil
}

// Shutdown flushes and stops the span exporter and the meter provider,
// waiting at most until ctx is done; spans and measurements recorded later
// are dropped. It is idempotent: later calls return the first result. The
// globals installed by Setup are left in place.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdown.Do(func() {
		err := t.shutdownTraces(ctx)
		if e := t.mp.Shutdown(ctx); e != nil {
			err = errors.Join(err, fmt.Errorf("shut down meter provider: %w", e))
		}
		t.shutdownE = err
	})
	return t.shutdownE
}

func (t *Telemetry) shutdownTraces(ctx context.Context) error {
	if t.sdkTP != nil {
		if err := t.sdkTP.Shutdown(ctx); err != nil {
			return fmt.Errorf("shut down tracer provider: %w", err)
		}
	}
	if t.exporter != nil {
		if err := t.exporter.Shutdown(ctx); err != nil {
			return fmt.Errorf("shut down span exporter: %w", err)
		}
	}
	return nil
}
