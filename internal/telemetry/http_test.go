package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Secrets a TOP request may carry in its query string.
const (
	appSecretSign = "4A7E2B9C0D1F3E5A6B8C9D0E1F2A3B4C"
	sessionKey    = "6100e23657fb0b2d0c78ab12"
	appKey        = "27384951"
)

// gateway records what it received.
type gateway struct {
	mu    sync.Mutex
	query url.Values
	tp    string
	user  string
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.query = r.URL.Query()
	g.tp = r.Header.Get("traceparent")
	g.user, _, _ = r.BasicAuth()
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"result":{"success":true}}`)
}

func TestHTTPTransport(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{}) // HTTPTransport injects with the global propagator
	defer otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())

	g := &gateway{}
	srv := httptest.NewServer(g)
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()

	client := &http.Client{Transport: HTTPTransport(nil, tp, mp)}
	defer client.CloseIdleConnections()

	tests := []struct {
		name     string
		rawURL   string
		body     string
		wantName string
		wantURL  string
	}{
		{
			name:     "query with secrets",
			rawURL:   srv.URL + "/router/rest?method=alibaba.omni.saas.order.create&app_key=" + appKey + "&session=" + sessionKey + "&sign=" + appSecretSign + "&mobile=13912345678",
			body:     "",
			wantName: "POST /router/rest",
			wantURL:  srv.URL + "/router/rest",
		},
		{
			name:     "userinfo and fragment",
			rawURL:   strings.Replace(srv.URL, "http://", "http://ordersync:pw@", 1) + "/router/rest?sign=" + appSecretSign + "#frag",
			wantName: "POST /router/rest",
			wantURL:  srv.URL + "/router/rest",
		},
		{
			name:     "no query",
			rawURL:   srv.URL + "/router/rest",
			body:     "method=x&sign=" + appSecretSign,
			wantName: "POST /router/rest",
			wantURL:  srv.URL + "/router/rest",
		},
		{
			name:     "no path",
			rawURL:   srv.URL + "?sign=" + appSecretSign,
			wantName: "POST",
			wantURL:  srv.URL,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.Reset()
			ctx, parent := tp.Tracer("test").Start(context.Background(), "attempt")
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, tt.rawURL, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			orig := req.URL.String()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			parent.End()

			if got := req.URL.String(); got != orig {
				t.Errorf("caller's request URL changed to %q, want %q", got, orig)
			}
			sent, _ := url.Parse(tt.rawURL)
			g.mu.Lock()
			gotQuery, gotTP, gotUser := g.query, g.tp, g.user
			g.mu.Unlock()
			if diff := cmp.Diff(sent.Query(), gotQuery); diff != "" {
				t.Errorf("query on the wire (-want +got):\n%s", diff)
			}
			if sent.User != nil && gotUser != sent.User.Username() {
				t.Errorf("basic auth user on the wire = %q, want %q", gotUser, sent.User.Username())
			}

			var client sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.SpanKind().String() == "client" {
					client = s
				}
			}
			if client == nil {
				t.Fatalf("no client span among %d spans", len(rec.Ended()))
			}
			if client.Name() != tt.wantName {
				t.Errorf("span name = %q, want %q", client.Name(), tt.wantName)
			}
			if client.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Error("client span is not a child of the caller's span")
			}
			if want := "00-" + client.SpanContext().TraceID().String() + "-" + client.SpanContext().SpanID().String() + "-01"; gotTP != want {
				t.Errorf("traceparent on the wire = %q, want %q", gotTP, want)
			}
			attrs := map[string]string{}
			for _, a := range client.Attributes() {
				attrs[string(a.Key)] = a.Value.String()
			}
			if attrs["url.full"] != tt.wantURL {
				t.Errorf("url.full = %q, want %q", attrs["url.full"], tt.wantURL)
			}
			if attrs["http.response.status_code"] != "200" || attrs["http.request.method"] != "POST" {
				t.Errorf("attributes %v lack method POST and status 200", attrs)
			}
			text := spanText(client)
			for _, secret := range []string{appSecretSign, sessionKey, appKey, "13912345678", "pw@", "frag"} {
				if strings.Contains(text, secret) {
					t.Errorf("span holds %q: %s", secret, text)
				}
			}
		})
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names = append(names, m.Name)
		}
	}
	if !contains(names, "http.client.request.duration") {
		t.Errorf("metrics %q lack http.client.request.duration", names)
	}
}

// A failed request still ends its span with an error status that holds no
// query.
func TestHTTPTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // connection refused from now on

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	client := &http.Client{Transport: HTTPTransport(&http.Transport{}, tp, nil)}
	defer client.CloseIdleConnections()

	_, err := client.Post(addr+"/router/rest?session="+sessionKey, "application/x-www-form-urlencoded", nil)
	if err == nil {
		t.Fatal("POST to a closed server succeeded")
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want 1", len(spans))
	}
	if got := spans[0].Status().Code.String(); got != "Error" {
		t.Errorf("status = %s, want Error", got)
	}
	if text := spanText(spans[0]); strings.Contains(text, sessionKey) {
		t.Errorf("span holds the session key: %s", text)
	}
	t.Logf("span: %s", spanText(spans[0]))
}
