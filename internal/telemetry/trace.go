package telemetry

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultServiceName is the service.name used when OTEL_SERVICE_NAME is unset.
const DefaultServiceName = "ordersync"

func isTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

// exporterConfigured reports whether the environment asks for a span
// exporter. Without one, Setup builds a provider with no span processor
// rather than letting autoexport default to OTLP on localhost.
func exporterConfigured(getenv func(string) string) bool {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if strings.TrimSpace(getenv(k)) != "" {
			return true
		}
	}
	return false
}

// newTracerProvider returns the SDK's tracer provider exporting to exp or to the exporter the
// environment configures, or, with neither, an idTracerProvider (nil *sdktrace.TracerProvider).
func newTracerProvider(ctx context.Context, res *resource.Resource, exp sdktrace.SpanExporter, getenv func(string) string) (*sdktrace.TracerProvider, error) {
	if exp == nil && exporterConfigured(getenv) {
		var err error
		exp, err = autoexport.NewSpanExporter(ctx)
		if err != nil {
			proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
			if proto == "" {
				proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
			}
			return nil, fmt.Errorf("span exporter (OTEL_TRACES_EXPORTER=%q, OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL=%q): %w",
				getenv("OTEL_TRACES_EXPORTER"), proto, err)
		}
		if autoexport.IsNoneSpanExporter(exp) {
			exp = nil
		}
	}
	if exp == nil {
		return nil, nil
	}
	return sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(maskingExporter{next: exp})), nil
}

func disabledTracerProvider() trace.TracerProvider { return noop.NewTracerProvider() }

// newResource describes this process. Later sources win: the defaults, then
// host and SDK attributes, then OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
func newResource(ctx context.Context, version string, getenv func(string) string) (*resource.Resource, error) {
	base := []attribute.KeyValue{semconv.ServiceName(DefaultServiceName)}
	if version != "" {
		base = append(base, semconv.ServiceVersion(version))
	}
	for _, k := range []string{"POD_NAME", "K8S_POD_NAME"} {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			base = append(base, semconv.K8SPodName(v))
			break
		}
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(base...),
		resource.WithHost(),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME): %w", err)
	}
	return res, nil
}

// newPropagator returns the propagators named in OTEL_PROPAGATORS (comma
// separated: tracecontext, baggage, b3, b3multi, jaeger, xray, ottrace, none),
// or W3C trace context plus baggage when it is unset. Unlike
// autoprop.NewTextMapPropagator, an unknown name is an error.
func newPropagator(getenv func(string) string) (propagation.TextMapPropagator, error) {
	v := strings.TrimSpace(getenv("OTEL_PROPAGATORS"))
	if v == "" {
		// Not autoprop.NewTextMapPropagator: it reads the process environment
		// itself, bypassing getenv.
		return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}), nil
	}
	names := strings.Split(v, ",")
	for i := range names {
		names[i] = strings.TrimSpace(names[i])
	}
	p, err := autoprop.TextMapPropagator(names...)
	if err != nil {
		return nil, fmt.Errorf("OTEL_PROPAGATORS=%q: %w", v, err)
	}
	return p, nil
}

// validateSampler checks OTEL_TRACES_SAMPLER(_ARG) so that a typo stops
// start-up; the SDK itself only reports it to the otel error handler and
// falls back to parentbased_always_on. The SDK builds the sampler.
func validateSampler(getenv func(string) string) error {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	switch name {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
		return nil
	case "traceidratio", "parentbased_traceidratio":
		arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
		if arg == "" {
			return nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio in [0, 1]", arg)
		}
		return nil
	default:
		return fmt.Errorf("OTEL_TRACES_SAMPLER=%q: unsupported sampler", name)
	}
}
