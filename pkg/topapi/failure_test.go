package topapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Whether a failed call may have been executed decides whether a channel without platform
// idempotency (alibaba.trade.order.create) may retry it.
func TestMayHaveExecutedAfterTransportFailures(t *testing.T) {
	refused := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens: connection refused
		return "http://" + addr + "/router/rest"
	}
	resetAfterRead := func(t *testing.T) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // the request arrived whole
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/router/rest"
	}
	slow := func(t *testing.T) string {
		done := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-done:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(func() { close(done); srv.Close() })
		return srv.URL + "/router/rest"
	}
	tests := []struct {
		name    string
		gateway func(t *testing.T) string
		want    bool
	}{
		{name: "connection refused: never sent", gateway: refused, want: false},
		{name: "connection dropped after the request was read", gateway: resetAfterRead, want: true},
		{name: "no answer within the timeout", gateway: slow, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.gateway(t), func(c *Config) { c.Timeout = 300 * time.Millisecond })
			_, err := c.Call(context.Background(), Request{Method: testMethod, Params: map[string]string{"request_no": "R1"}})
			e := asError(t, err)
			if got := e.MayHaveExecuted(); got != tt.want {
				t.Errorf("MayHaveExecuted() = %v, want %v (error %v)", got, tt.want, e)
			}
			if !e.Retryable() || e.Credentials() {
				t.Errorf("retryable %v, credentials %v; want a retryable transport error", e.Retryable(), e.Credentials())
			}
		})
	}
}

func TestSetAppSecretRotatesEveryGatewayClient(t *testing.T) {
	const newSecret = "rotated-secret-5e7a91"
	var got atomic.Value
	srv := gateway(t, func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		p := map[string]string{}
		for k := range r.Form {
			p[k] = r.Form.Get(k)
		}
		want, _ := Sign(p, newSecret, p["sign_method"])
		if p["sign"] == want {
			got.Store("new")
		} else {
			got.Store("old")
		}
		answer(200, `{"alibaba_omni_saas_order_create_response":{"trade_no":1}}`)(w, r)
	})
	c := newTestClient(t, srv.URL, nil)
	other, err := c.WithGateway(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Call(context.Background(), Request{Method: testMethod}); err != nil {
		t.Fatal(err)
	}
	if got.Load() != "old" {
		t.Fatalf("signed with %v before the rotation, want the old secret", got.Load())
	}
	if err := c.SetAppSecret(newSecret); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Call(context.Background(), Request{Method: testMethod}); err != nil {
		t.Fatal(err)
	}
	if got.Load() != "new" {
		t.Errorf("a client made with WithGateway signed with the %v secret after SetAppSecret, want the new one", got.Load())
	}
	if err := c.SetAppSecret(""); err == nil {
		t.Error("SetAppSecret(\"\"): nil error, want one")
	}
	// A secret the gateway echoes is scrubbed with the current secret.
	echo := gateway(t, answer(200, errBody(25, "", "bad signature for "+newSecret)))
	c2 := newTestClient(t, echo.URL, nil)
	if err := c2.SetAppSecret(newSecret); err != nil {
		t.Fatal(err)
	}
	_, err = c2.Call(context.Background(), Request{Method: testMethod})
	if e := asError(t, err); e.SubMsg != "bad signature for [redacted]" || !e.Credentials() {
		t.Errorf("sub_msg %q, credentials %v; want the rotated secret scrubbed and a credentials error", e.SubMsg, e.Credentials())
	}
}

// A per-API limit (accesscontrol.limited-by-api-access-count) bans one method; other methods of
// the app key go on.
func TestPerAPIBanStopsOnlyItsMethod(t *testing.T) {
	var calls atomic.Int32
	srv := gateway(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = r.ParseForm()
		if r.Form.Get("method") == testMethod {
			answer(200, errBody(7, "accesscontrol.limited-by-api-access-count", "This ban will last for 600 more seconds"))(w, r)
			return
		}
		answer(200, `{"other_method_response":{"ok":true}}`)(w, r)
	})
	c := newTestClient(t, srv.URL, nil)
	_, err := c.Call(context.Background(), Request{Method: testMethod})
	e := asError(t, err)
	if !errors.Is(err, ErrLongBan) || e.BanScope() != BanAPI || e.MayHaveExecuted() {
		t.Fatalf("first call: %v (scope %s), want a long per-API ban that was not executed", e, e.BanScope())
	}
	if _, err := c.Call(context.Background(), Request{Method: "other.method"}); err != nil {
		t.Errorf("another method during a per-API ban: %v, want it called", err)
	}
	_, err = c.Call(context.Background(), Request{Method: testMethod})
	if !errors.Is(err, ErrLongBan) {
		t.Errorf("the banned method again: %v, want ErrLongBan without a call", err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("gateway saw %d calls, want 2", n)
	}
}

// MaxBanWait 0 waits out no ban at all: every ban is returned at once as ErrLongBan.
func TestZeroMaxBanWaitWaitsForNothing(t *testing.T) {
	srv := gateway(t, answer(200, errBody(7, "accesscontrol.limited-by-app-access-count", "This ban will last for 1 more seconds")))
	c := newTestClient(t, srv.URL, func(c *Config) { c.MaxBanWait = 0 })
	_, err := c.Call(context.Background(), Request{Method: testMethod})
	if !errors.Is(err, ErrLongBan) {
		t.Fatalf("got %v, want ErrLongBan for a 1s ban with MaxBanWait 0", err)
	}
	start := time.Now()
	_, err = c.Call(context.Background(), Request{Method: testMethod})
	if !errors.Is(err, ErrLongBan) || time.Since(start) > 500*time.Millisecond {
		t.Errorf("second call: %v after %s, want ErrLongBan at once", err, time.Since(start))
	}
}
