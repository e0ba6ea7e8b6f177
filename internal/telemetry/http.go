package telemetry

import (
	"context"
	"net/http"
	"net/url"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// HTTPTransport wraps base (nil means http.DefaultTransport) with otelhttp:
// every request gets a CLIENT span named "<METHOD> <path>" (for the TOP
// gateway "POST /router/rest"; just "<METHOD>" when the path is empty) with
// the HTTP semantic-convention attributes, the http.client.request.duration
// (seconds) and body-size metrics, and the context injected into its headers
// by the global propagator (installed by Setup).
//
// The url.full attribute never carries the query string, fragment or
// userinfo: otelhttp v0.72 records the query verbatim and has no option to
// redact it, so the returned RoundTripper hands otelhttp a copy of the request
// without them and restores the real URL just before base sends it. The
// request on the wire is unchanged, and so is the caller's *http.Request.
// Errors from base are recorded as the span status as they are; net/http's
// transport errors do not contain the URL (http.Client wraps them in a
// *url.Error with the full URL only above the transport).
//
// tp and mp nil mean the otel globals. The RoundTripper is safe for
// concurrent use if base is.
func HTTPTransport(base http.RoundTripper, tp trace.TracerProvider, mp metric.MeterProvider) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	opts := []otelhttp.Option{otelhttp.WithSpanNameFormatter(httpSpanName)}
	if tp != nil {
		opts = append(opts, otelhttp.WithTracerProvider(tp))
	}
	if mp != nil {
		opts = append(opts, otelhttp.WithMeterProvider(mp))
	}
	return &redactURL{next: otelhttp.NewTransport(&restoreURL{next: base}, opts...)}
}

func httpSpanName(_ string, r *http.Request) string {
	if r.URL == nil || r.URL.Path == "" {
		return r.Method
	}
	return r.Method + " " + r.URL.Path
}

// realURLKey is the context key under which redactURL passes the request's
// real URL to restoreURL.
type realURLKey struct{}

// redactURL sits in front of otelhttp and gives it a request whose URL has no
// query, fragment or userinfo; the real URL travels in the context.
type redactURL struct{ next http.RoundTripper }

func (rt *redactURL) RoundTrip(r *http.Request) (*http.Response, error) {
	u := r.URL
	if u == nil || (u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && u.User == nil) {
		return rt.next.RoundTrip(r)
	}
	clean := *u
	clean.RawQuery, clean.ForceQuery = "", false
	clean.Fragment, clean.RawFragment = "", ""
	clean.User = nil
	r2 := r.WithContext(context.WithValue(r.Context(), realURLKey{}, u))
	r2.URL = &clean
	return rt.next.RoundTrip(r2)
}

// restoreURL sits between otelhttp and the base transport and puts the real
// URL back.
type restoreURL struct{ next http.RoundTripper }

func (rt *restoreURL) RoundTrip(r *http.Request) (*http.Response, error) {
	u, ok := r.Context().Value(realURLKey{}).(*url.URL)
	if !ok {
		return rt.next.RoundTrip(r)
	}
	r2 := r.WithContext(r.Context()) // shallow copy: a RoundTripper must not modify its request
	r2.URL = u
	return rt.next.RoundTrip(r2)
}
