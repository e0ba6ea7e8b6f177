package topapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testKey    = "12345678"
	testSecret = "client-test-secret-0123456789"
)

// gateway starts a real HTTP server answering with h.
func gateway(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newTestClient(t testing.TB, gw string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{Gateway: gw, AppKey: testKey, AppSecret: testSecret, MaxBanWait: time.Minute}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// answer writes body as JSON with status.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func errBody(code int, subCode, subMsg string) string {
	return fmt.Sprintf(`{"error_response":{"code":%d,"msg":"some message","sub_code":%q,"sub_msg":%q,"request_id":"rid-1"}}`,
		code, subCode, subMsg)
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *Error", err, err)
	}
	return e
}

const testMethod = "alibaba.omni.saas.order.create"

// A gateway URL that redirects (http:// to https://, a moved host) is not followed: the request
// is a POST with a signed body, and the operator should configure the final URL. The error says
// where it points, without the query.
func TestRedirectNamesTarget(t *testing.T) {
	var calls atomic.Int32
	srv := gateway(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Redirect(w, r, "https://gw.example.com/router/rest?token=abc", http.StatusMovedPermanently)
	})
	c := newTestClient(t, srv.URL, nil)
	_, err := c.Call(context.Background(), Request{Method: testMethod})
	e := asError(t, err)
	if !e.Credentials() || e.MayHaveExecuted() || !strings.Contains(e.Error(), "redirects to https://gw.example.com/router/rest;") ||
		strings.Contains(e.Error(), "token") {
		t.Errorf("error %q (credentials %v); want a configuration error naming the target without its query", e, e.Credentials())
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d requests, want 1: the redirect is not followed", n)
	}
}

func TestClassification(t *testing.T) {
	type want struct {
		code       int
		retryable  bool
		kind       string
		retryAfter time.Duration
		status     int
		cred       bool // Credentials()
		exec       bool // MayHaveExecuted()
	}
	transient := func(code int) want { return want{code: code, retryable: true, kind: KindPlatform, status: 200} }
	executed := func(code int) want {
		return want{code: code, retryable: true, kind: KindPlatform, status: 200, exec: true}
	}
	permanent := func(code int) want { return want{code: code, kind: KindPlatform, status: 200} }
	credentials := func(code int) want { return want{code: code, kind: KindPlatform, status: 200, cred: true} }
	auth := func(code int) want { return want{code: code, kind: KindAuth, status: 200} }
	tests := []struct {
		name   string
		status int
		body   string
		allow  []string // RetryableSubCodes
		want   want
	}{
		{name: "code 4 user call limited", body: errBody(4, "", ""), want: transient(4)},
		{name: "code 5 session call limited", body: errBody(5, "", ""), want: transient(5)},
		{name: "code 6 partner call limited", body: errBody(6, "", ""), want: transient(6)},
		{name: "code 7 without ban length", body: errBody(7, "accesscontrol.limited-by-api-access-count", ""), want: transient(7)},
		{name: "code 7 with ban length", body: errBody(7, "accesscontrol.limited-by-app-access-count", "This ban will last for 2 more seconds"),
			want: want{code: 7, retryable: true, kind: KindPlatform, retryAfter: 2 * time.Second, status: 200}},
		{name: "code 8 exceeds frequency", body: errBody(8, "", ""), want: transient(8)},
		{name: "code 10 service unavailable", body: errBody(10, "", ""), want: executed(10)},
		{name: "code 15 isp", body: errBody(15, "isp.top-remote-connection-timeout", ""), want: executed(15)},
		{name: "code 50 isp", body: errBody(50, "isp.remote-service-timeout", ""), want: executed(50)},
		{name: "code 520 isp", body: errBody(520, "isp.remote-connection-error", ""), want: executed(520)},
		{name: "code 670 isp", body: errBody(670, "isp.unknown-error", ""), want: executed(670)},
		{name: "code 15 isv", body: errBody(15, "isv.invalid-parameter", ""), want: permanent(15)},
		{name: "code 50 isv", body: errBody(50, "isv.invalid-parameter", "非法参数"), want: permanent(50)},
		{name: "code 520 isv", body: errBody(520, "isv.trade-service-rejection", ""), want: permanent(520)},
		{name: "code 670 isv", body: errBody(670, "isv.invalid-parameter:request_no", ""), want: permanent(670)},
		{name: "isv allow-list", body: errBody(520, "isv.trade-service-rejection", "3分钟后再查询"),
			allow: []string{"isv.trade-service-rejection"}, want: transient(520)},
		{name: "isv not on the allow-list", body: errBody(15, "isv.invalid-parameter", ""),
			allow: []string{"isv.trade-service-rejection"}, want: permanent(15)},
		{name: "code 26 missing session", body: errBody(26, "", ""), want: auth(26)},
		{name: "code 27 invalid session", body: errBody(27, "", ""), want: auth(27)},
		{name: "code 42 forbidden", body: errBody(42, "", ""), want: auth(42)},
		{name: "code 44 invalid access token", body: errBody(44, "", ""), want: auth(44)},
		{name: "code 9", body: errBody(9, "", ""), want: permanent(9)},
		{name: "code 11", body: errBody(11, "isv.permission-api-package-limit", ""), want: credentials(11)},
		{name: "code 12 insufficient user permissions", body: errBody(12, "", ""), want: auth(12)},
		{name: "code 13", body: errBody(13, "", ""), want: credentials(13)},
		{name: "code 21", body: errBody(21, "", ""), want: permanent(21)},
		{name: "code 22", body: errBody(22, "", ""), want: permanent(22)},
		{name: "code 23", body: errBody(23, "", ""), want: permanent(23)},
		{name: "code 24", body: errBody(24, "", ""), want: credentials(24)},
		{name: "code 25", body: errBody(25, "", ""), want: credentials(25)},
		{name: "code 28", body: errBody(28, "", ""), want: credentials(28)},
		{name: "code 29", body: errBody(29, "", ""), want: credentials(29)},
		{name: "code 30", body: errBody(30, "", ""), want: credentials(30)},
		{name: "code 31", body: errBody(31, "", ""), want: credentials(31)},
		{name: "code 32", body: errBody(32, "", ""), want: permanent(32)},
		{name: "code 33", body: errBody(33, "", ""), want: permanent(33)},
		{name: "code 34", body: errBody(34, "", ""), want: permanent(34)},
		{name: "code 40", body: errBody(40, "", ""), want: permanent(40)},
		{name: "code 41", body: errBody(41, "isv.missing-parameter:request_no", ""), want: permanent(41)},
		{name: "code 43", body: errBody(43, "", ""), want: permanent(43)},
		{name: "code 47", body: errBody(47, "", ""), want: permanent(47)},
		{name: "code as a string", body: `{"error_response":{"code":"15","sub_code":"isp.unknown-error"}}`, want: executed(15)},
		{name: "HTTP 500", status: 500, body: "oops", want: want{retryable: true, kind: KindPlatform, status: 500, exec: true}},
		{name: "HTTP 502", status: 502, body: "<html>bad gateway</html>", want: want{retryable: true, kind: KindPlatform, status: 502, exec: true}},
		{name: "HTTP 503", status: 503, want: want{retryable: true, kind: KindPlatform, status: 503, exec: true}},
		{name: "HTTP 504", status: 504, want: want{retryable: true, kind: KindPlatform, status: 504, exec: true}},
		{name: "HTTP 5xx with a permanent error_response", status: 500, body: errBody(25, "", ""),
			want: want{code: 25, retryable: true, kind: KindPlatform, status: 500, cred: true}},
		{name: "HTTP 400", status: 400, body: "bad request", want: want{kind: KindPlatform, status: 400}},
		{name: "HTTP 401", status: 401, want: want{kind: KindPlatform, status: 401, cred: true}},
		{name: "HTTP 403", status: 403, want: want{kind: KindPlatform, status: 403, cred: true}},
		{name: "HTTP 404", status: 404, want: want{kind: KindPlatform, status: 404, cred: true}},
		{name: "HTTP 301", status: 301, want: want{kind: KindPlatform, status: 301, cred: true}},
		{name: "HTTP 307", status: 307, want: want{kind: KindPlatform, status: 307, cred: true}},
		{name: "HTTP 400 with a transient error_response", status: 400, body: errBody(15, "isp.top-remote-connection-timeout", ""),
			want: want{code: 15, retryable: true, kind: KindPlatform, status: 400, exec: true}},
		{name: "HTTP 400 with a permanent error_response", status: 400, body: errBody(27, "", ""),
			want: want{code: 27, kind: KindAuth, status: 400}},
		{name: "HTTP 429", status: 429, want: want{retryable: true, kind: KindPlatform, status: 429}},
		{name: "HTTP 200 not JSON", status: 200, body: "<xml/>", want: want{kind: KindPlatform, status: 200, cred: true}},
		{name: "HTTP 200 without the envelope", status: 200, body: `{"a_response":{},"b_response":{}}`,
			want: want{kind: KindPlatform, status: 200, cred: true}},
		{name: "HTTP 200 envelope not an object", status: 200, body: `{"alibaba_omni_saas_order_create_response":[1]}`,
			want: want{kind: KindPlatform, status: 200, exec: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status := tt.status
			if status == 0 {
				status = 200
			}
			srv := gateway(t, answer(status, tt.body))
			// A client per case: a recorded ban must not leak into the next case.
			c := newTestClient(t, srv.URL, func(c *Config) { c.RetryableSubCodes = tt.allow })
			_, err := c.Call(context.Background(), Request{Method: testMethod})
			e := asError(t, err)
			got := want{code: e.Code, retryable: e.Retryable(), kind: e.Kind(), retryAfter: e.RetryAfter(), status: e.HTTPStatus,
				cred: e.Credentials(), exec: e.MayHaveExecuted()}
			if got != tt.want {
				t.Errorf("got %+v, want %+v (error %v)", got, tt.want, e)
			}
		})
	}
}

func TestClassificationTransport(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c := newTestClient(t, "http://"+addr+"/router/rest", nil)
		_, err = c.Call(context.Background(), Request{Method: testMethod})
		e := asError(t, err)
		if !e.Retryable() || e.Err == nil || e.Code != 0 || e.Kind() != KindPlatform {
			t.Errorf("got %v (retryable %v, cause %v), want a retryable transport error", e, e.Retryable(), e.Err)
		}
	})
	t.Run("connection closed mid-answer", func(t *testing.T) {
		srv := gateway(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, `{"alibaba_omni`)
			if hj, ok := w.(http.Hijacker); ok {
				conn, _, _ := hj.Hijack()
				conn.Close()
			}
		})
		c := newTestClient(t, srv.URL, nil)
		_, err := c.Call(context.Background(), Request{Method: testMethod})
		if e := asError(t, err); !e.Retryable() || e.Err == nil {
			t.Errorf("got %v (retryable %v), want a retryable transport error", e, e.Retryable())
		}
	})
}

// hang answers nothing until the client gives up (or 10s pass). It reads
// the request first: only then does the server notice the client leaving.
func hang(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

func TestTimeout(t *testing.T) {
	srv := gateway(t, hang)
	c := newTestClient(t, srv.URL, func(c *Config) { c.Timeout = 50 * time.Millisecond })
	_, err := c.Call(context.Background(), Request{Method: testMethod})
	e := asError(t, err)
	if !e.Retryable() || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v (retryable %v), want a retryable deadline error", e, e.Retryable())
	}
	if !strings.Contains(e.Error(), "no answer within 50ms") {
		t.Errorf("error %q does not name the timeout", e)
	}
}

// A call the gateway is answering is not thrown away when the caller gives up: the platform may
// have executed it. Waiting for flow control, in contrast, ends with the caller.
func TestCallerCancelsOnlyWaiting(t *testing.T) {
	srv := gateway(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		answer(200, `{"alibaba_omni_saas_order_create_response":{"trade_no":7}}`)(w, r)
	})
	c := newTestClient(t, srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	resp, err := c.Call(ctx, Request{Method: testMethod})
	if err != nil || string(resp.Body) != `{"trade_no":7}` {
		t.Errorf("a sent call whose caller cancelled: %s, %v; want the answer", resp.Body, err)
	}

	banned := gateway(t, answer(200, banBody(30)))
	b := newTestClient(t, banned.URL, nil)
	_, _ = b.Call(context.Background(), Request{Method: testMethod}) // records a 30s ban
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = b.Call(ctx, Request{Method: testMethod})
	if e := asError(t, err); !errors.Is(err, context.Canceled) || !e.Retryable() || e.MayHaveExecuted() {
		t.Errorf("waiting for a ban, cancelled: %v, want a retryable, unsent error wrapping context.Canceled", err)
	}
}

func TestSuccessParsing(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		body     string
		wantBody string
		wantID   string
	}{
		{
			name:     "envelope",
			method:   testMethod,
			body:     `{"alibaba_omni_saas_order_create_response":{"trade_no":10309483976732423,"total_amount":10000,"actual_pay_fee":9000,"request_id":"rid-9"}}`,
			wantBody: `{"trade_no":10309483976732423,"total_amount":10000,"actual_pay_fee":9000,"request_id":"rid-9"}`,
			wantID:   "rid-9",
		},
		{
			name:     "business failure handed over intact",
			method:   "alibaba.diantao.tripartite.order.info",
			body:     `{"alibaba_diantao_tripartite_order_info_response":{"is_success":false,"error_info":"1001","error_message":"xxx"}}`,
			wantBody: `{"is_success":false,"error_info":"1001","error_message":"xxx"}`,
		},
		{
			name:     "taobao prefix dropped",
			method:   "taobao.trade.fullinfo.get",
			body:     `{"trade_fullinfo_get_response":{"trade":{"tid":1}}}`,
			wantBody: `{"trade":{"tid":1}}`,
		},
		{
			name:     "the only _response key",
			method:   "tmall.aliauto.trade.external.order.sycn",
			body:     `{"tmall_aliauto_trade_external_order_sync_response":{"result":{"success":true}}}`,
			wantBody: `{"result":{"success":true}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := gateway(t, answer(200, tt.body))
			c := newTestClient(t, srv.URL, nil)
			resp, err := c.Call(context.Background(), Request{Method: tt.method})
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if got := string(resp.Body); got != tt.wantBody {
				t.Errorf("body %s, want %s", got, tt.wantBody)
			}
			if resp.RequestID != tt.wantID {
				t.Errorf("request id %q, want %q", resp.RequestID, tt.wantID)
			}
		})
	}
}

// The form the client posts: everything in the body, signed, blank values
// dropped, the timestamp in GMT+8 whatever the clock's zone.
func TestRequestForm(t *testing.T) {
	var got url.Values
	var contentType, rawQuery string
	srv := gateway(t, func(w http.ResponseWriter, r *http.Request) {
		contentType, rawQuery = r.Header.Get("Content-Type"), r.URL.RawQuery
		if err := r.ParseForm(); err != nil {
			t.Errorf("ParseForm: %v", err)
		}
		got = r.PostForm
		answer(200, `{"alibaba_omni_saas_order_create_response":{}}`)(w, r)
	})
	// 19:04:05 UTC is 03:04:05 the next day in GMT+8; the clock's own zone
	// (UTC, as in a container, or New York) must not matter.
	instant := time.Date(2026, 1, 2, 19, 4, 5, 0, time.UTC)
	for _, zone := range []*time.Location{time.UTC, time.FixedZone("EST", -5*3600)} {
		c := newTestClient(t, srv.URL, func(c *Config) {
			c.Now = func() time.Time { return instant.In(zone) }
			c.PartnerID = "ordersync-test"
		})
		req := Request{
			Method:  testMethod,
			Session: "session-abc",
			Params:  map[string]string{"request_no": "REQ 1&a=b+c/中文", "device": "", "operator_id": "  "},
		}
		if _, err := c.Call(context.Background(), req); err != nil {
			t.Fatalf("Call: %v", err)
		}
		if want := "application/x-www-form-urlencoded;charset=UTF-8"; contentType != want {
			t.Errorf("Content-Type %q, want %q", contentType, want)
		}
		if rawQuery != "" {
			t.Errorf("query %q, want everything in the body", rawQuery)
		}
		flat := map[string]string{}
		for k := range got {
			flat[k] = got.Get(k)
		}
		sign := flat["sign"]
		delete(flat, "sign")
		want := map[string]string{
			"method": testMethod, "app_key": testKey, "timestamp": "2026-01-03 03:04:05", "v": "2.0",
			"format": "json", "sign_method": "hmac-sha256", "session": "session-abc", "partner_id": "ordersync-test",
			"request_no": "REQ 1&a=b+c/中文",
		}
		if diff := cmp.Diff(want, flat); diff != "" {
			t.Errorf("zone %s: form (-want +got):\n%s", zone, diff)
		}
		if wantSign, _ := Sign(want, testSecret, SignHMACSHA256); sign != wantSign {
			t.Errorf("sign %s, want %s", sign, wantSign)
		}
	}
}

func TestReservedParameter(t *testing.T) {
	var calls atomic.Int32
	srv := gateway(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	c := newTestClient(t, srv.URL, nil)
	for _, name := range []string{"sign", "method", "session", "timestamp"} {
		_, err := c.Call(context.Background(), Request{Method: testMethod, Params: map[string]string{name: "x"}})
		if e := asError(t, err); e.Retryable() || !strings.Contains(e.Error(), "reserved") {
			t.Errorf("param %s: got %v, want a permanent reserved-name error", name, e)
		}
	}
	if _, err := c.Call(context.Background(), Request{}); err == nil {
		t.Error("Call without method succeeded")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("gateway saw %d calls, want 0", n)
	}
}

func TestBodyLimit(t *testing.T) {
	big := `{"alibaba_omni_saas_order_create_response":{"pad":"` + strings.Repeat("x", 2000) + `"}}`
	tests := []struct {
		name string
		h    http.HandlerFunc
	}{
		{name: "content length", h: answer(200, big)},
		{name: "chunked", h: func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < len(big); i += 100 {
				_, _ = io.WriteString(w, big[i:min(i+100, len(big))])
				w.(http.Flusher).Flush()
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := gateway(t, tt.h)
			c := newTestClient(t, srv.URL, func(c *Config) { c.MaxBodyBytes = 1024 })
			_, err := c.Call(context.Background(), Request{Method: testMethod})
			if e := asError(t, err); e.Retryable() || !strings.Contains(e.Error(), "longer than 1024 bytes") {
				t.Errorf("got %v (retryable %v), want a permanent too-long error", e, e.Retryable())
			}
		})
	}
	t.Run("at the limit", func(t *testing.T) {
		srv := gateway(t, answer(200, big))
		c := newTestClient(t, srv.URL, func(c *Config) { c.MaxBodyBytes = int64(len(big)) })
		if _, err := c.Call(context.Background(), Request{Method: testMethod}); err != nil {
			t.Errorf("Call: %v", err)
		}
	})
}

func banBody(seconds int) string {
	return errBody(7, "accesscontrol.limited-by-app-access-count", fmt.Sprintf("This ban will last for %d more seconds", seconds))
}

// Concurrent callers honour one ban: once the gateway says the app key is
// banned for 1s, 50 goroutines wait it out and the gateway sees none of
// their calls before it ends.
func TestBanSharedByConcurrentCallers(t *testing.T) {
	var (
		mu         sync.Mutex
		banEnd     time.Time
		calls      int
		violations int
	)
	srv := gateway(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		calls++
		first := calls == 1
		if first {
			banEnd = now.Add(time.Second)
		} else if now.Before(banEnd) {
			violations++
		}
		mu.Unlock()
		if first {
			answer(200, banBody(1))(w, r)
			return
		}
		answer(200, `{"alibaba_omni_saas_order_create_response":{"trade_no":1}}`)(w, r)
	})
	c := newTestClient(t, srv.URL, nil)
	_, err := c.Call(context.Background(), Request{Method: testMethod})
	e := asError(t, err)
	if e.Code != 7 || e.RetryAfter() != time.Second || errors.Is(err, ErrLongBan) || !e.Retryable() {
		t.Fatalf("first call: %v (retry after %s), want a retryable 1s ban", e, e.RetryAfter())
	}
	const callers = 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Call(context.Background(), Request{Method: testMethod})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("call after the ban: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if violations != 0 {
		t.Errorf("gateway saw %d calls during the ban, want 0", violations)
	}
	if calls != callers+1 {
		t.Errorf("gateway saw %d calls, want %d", calls, callers+1)
	}
}

// A ban longer than MaxBanWait is returned at once, as ErrLongBan, without
// calling the gateway; clients made with WithGateway share it.
func TestLongBan(t *testing.T) {
	var calls atomic.Int32
	srv := gateway(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		answer(200, banBody(3600))(w, r)
	})
	c := newTestClient(t, srv.URL, nil)
	_, err := c.Call(context.Background(), Request{Method: testMethod})
	if e := asError(t, err); !errors.Is(err, ErrLongBan) || e.RetryAfter() != time.Hour || !e.Retryable() || e.RequestID != "rid-1" {
		t.Fatalf("first call: %v (retry after %s), want the gateway's 1h ban as ErrLongBan", e, e.RetryAfter())
	}
	other, err := c.WithGateway(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*Client{c, other} {
		_, err = cl.Call(context.Background(), Request{Method: "another.method"})
		e := asError(t, err)
		if !errors.Is(err, ErrLongBan) || e.Code != 7 || !e.Retryable() {
			t.Errorf("later call: %v, want code 7 matching ErrLongBan", e)
		}
		if ra := e.RetryAfter(); ra <= time.Hour-time.Minute || ra > time.Hour {
			t.Errorf("later call: retry after %s, want the ban's remaining ~1h", ra)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("gateway saw %d calls, want 1", n)
	}
}

// A caller whose deadline ends before a short ban does is told so at once.
func TestBanOutlastsDeadline(t *testing.T) {
	var calls atomic.Int32
	srv := gateway(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		answer(200, banBody(30))(w, r)
	})
	c := newTestClient(t, srv.URL, nil)
	_, _ = c.Call(context.Background(), Request{Method: testMethod})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.Call(ctx, Request{Method: testMethod})
	if e := asError(t, err); e.Code != 7 || errors.Is(err, ErrLongBan) || e.RetryAfter() <= 29*time.Second {
		t.Errorf("got %v (retry after %s), want a code-7 error with the remaining ban", e, e.RetryAfter())
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("gateway saw %d calls, want 1", n)
	}
}

func TestRateLimiter(t *testing.T) {
	var calls atomic.Int32
	ok := `{"alibaba_omni_saas_order_create_response":{}}`
	srv := gateway(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		answer(200, ok)(w, r)
	})
	t.Run("spaces calls", func(t *testing.T) {
		c := newTestClient(t, srv.URL, func(c *Config) { c.QPS = 20 })
		start := time.Now()
		for range 5 {
			if _, err := c.Call(context.Background(), Request{Method: testMethod}); err != nil {
				t.Fatal(err)
			}
		}
		// Burst 1 at 20/s: the 4 calls after the first wait 50ms each.
		if got := time.Since(start); got < 190*time.Millisecond {
			t.Errorf("5 calls at 20 QPS took %s, want at least 200ms", got)
		}
	})
	t.Run("one limiter per method", func(t *testing.T) {
		c := newTestClient(t, srv.URL, func(c *Config) { c.QPS = 1 })
		a, b := c.flow.limiter(testKey, "a"), c.flow.limiter(testKey, "b")
		if a == nil || a == b || a != c.flow.limiter(testKey, "a") {
			t.Errorf("limiters a=%p b=%p: want one per method, reused", a, b)
		}
		if got := a.Burst(); got != 1 {
			t.Errorf("default burst %d, want 1", got)
		}
		if unlimited := newTestClient(t, srv.URL, nil); unlimited.flow.limiter(testKey, "a") != nil {
			t.Error("QPS 0 has a limiter, want none")
		}
	})
	t.Run("slot after the deadline", func(t *testing.T) {
		c := newTestClient(t, srv.URL, func(c *Config) { c.QPS = 0.5 })
		before := calls.Load()
		if _, err := c.Call(context.Background(), Request{Method: testMethod}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.Call(ctx, Request{Method: testMethod})
		if e := asError(t, err); !errors.Is(err, context.DeadlineExceeded) || !e.Retryable() {
			t.Errorf("got %v, want a retryable deadline error", err)
		}
		if n := calls.Load() - before; n != 1 {
			t.Errorf("gateway saw %d calls, want 1", n)
		}
	})
}

const (
	redactSecret  = "redaction-secret-7f3a9c"
	redactSession = "6100redaction-session-2b8e"
)

func TestRedaction(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		answer(200, errBody(27, "isv.session-"+r.PostForm.Get("session"),
			"Invalid session "+r.PostForm.Get("session")+" for secret "+redactSecret))(w, r)
	}
	echo4xx := func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.WriteHeader(400)
		_, _ = io.WriteString(w, "bad session="+r.PostForm.Get("session"))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://user:" + redactSecret + "@" + ln.Addr().String() + "/router/rest?k=" + redactSession
	ln.Close()
	tests := []struct {
		name    string
		gateway string
		timeout time.Duration
	}{
		{name: "echoed in error_response", gateway: gateway(t, echo).URL},
		{name: "echoed in a 4xx body", gateway: gateway(t, echo4xx).URL},
		{name: "transport error to a URL holding them", gateway: closed},
		{name: "timeout", gateway: gateway(t, hang).URL + "?s=" + redactSecret, timeout: 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.gateway, func(c *Config) { c.AppSecret = redactSecret; c.Timeout = tt.timeout })
			_, err := c.Call(context.Background(), Request{Method: testMethod, Session: redactSession})
			if err == nil {
				t.Fatal("Call succeeded, want an error")
			}
			e := asError(t, err)
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), e.Msg, e.SubMsg, e.SubCode} {
				if strings.Contains(s, redactSecret) || strings.Contains(s, redactSession) {
					t.Errorf("error text %q holds a secret", s)
				}
			}
		})
	}

	cfg := Config{Gateway: closed, AppKey: testKey, AppSecret: redactSecret}
	c := newTestClient(t, closed, func(c *Config) { c.AppSecret = redactSecret })
	wrapped := struct {
		Top    Config
		TopPtr *Config
		C      *Client
	}{cfg, &cfg, c}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
		for _, v := range []any{cfg, &cfg, c, wrapped} {
			s := fmt.Sprintf(verb, v)
			if strings.Contains(s, redactSecret) || strings.Contains(s, redactSession) {
				t.Errorf("Sprintf(%s, %T) = %s holds a secret", verb, v, s)
			}
		}
	}
	if s := cfg.String(); !strings.Contains(s, `AppSecret:"[redacted]"`) || !strings.Contains(s, testKey) {
		t.Errorf("Config.String() = %s, want the app key and a redacted secret", s)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := Config{AppKey: "k", AppSecret: "s"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // "" = valid
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "all set", edit: func(c *Config) {
			c.Gateway, c.SignMethod, c.Timeout, c.QPS, c.Burst = "https://api.taobao.com/router/rest", "md5", time.Second, 10, 5
		}},
		{name: "no app key", edit: func(c *Config) { c.AppKey = "" }, wantErr: "app key"},
		{name: "no secret", edit: func(c *Config) { c.AppSecret = "" }, wantErr: "app secret"},
		{name: "bad sign method", edit: func(c *Config) { c.SignMethod = "sha1" }, wantErr: "sign method"},
		{name: "relative gateway", edit: func(c *Config) { c.Gateway = "/router/rest" }, wantErr: "gateway"},
		{name: "ftp gateway", edit: func(c *Config) { c.Gateway = "ftp://x/router/rest" }, wantErr: "gateway"},
		{name: "negative timeout", edit: func(c *Config) { c.Timeout = -1 }, wantErr: "timeout"},
		{name: "negative qps", edit: func(c *Config) { c.QPS = -1 }, wantErr: "qps"},
		{name: "negative burst", edit: func(c *Config) { c.Burst = -1 }, wantErr: "burst"},
		{name: "negative body bound", edit: func(c *Config) { c.MaxBodyBytes = -1 }, wantErr: "max body bytes"},
		{name: "negative ban wait", edit: func(c *Config) { c.MaxBanWait = -1 }, wantErr: "max ban wait"},
		{name: "empty sub code", edit: func(c *Config) { c.RetryableSubCodes = []string{" "} }, wantErr: "retryable sub codes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("Validate: %v, want an error about %s", err, tt.wantErr)
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New(Config{}) succeeded, want an error")
	}
	if _, err := (&Client{}).WithGateway("not a url"); err == nil {
		t.Error("WithGateway(not a url) succeeded, want an error")
	}
}

// benchRequest is the omni-saas example of the API page.
var benchRequest = Request{
	Method:  testMethod,
	Session: "6100e23657fb0b2d0c78568e55a3031134be9a3a5d4b3a365753805",
	Params: map[string]string{
		"goods_details": `[{"goods_id":"GD00001","price":"100","quantity":"10.0","id_type":"ITEM_SKU"}]`,
		"buyer_id":      "79284721321", "buyer_id_type": "TAOBAO", "store_id": "1047384",
		"device": "POS", "device_no": "POS001", "operator_id": "5436457654", "pay_channel": "ALIPAY",
		"coupon_infos":  `[{"name":"满100减10元","discount":100,"option_id":"YH9527"}]`,
		"store_id_type": "PLACE", "request_no": "REQ-3436967",
	},
}

// BenchmarkSignEncode builds the whole signed form body of a call (system
// parameters, sort, signature, URL encoding), as Call does before posting.
func BenchmarkSignEncode(b *testing.B) {
	for _, m := range []string{SignMD5, SignHMAC, SignHMACSHA256} {
		b.Run(m, func(b *testing.B) {
			c := newTestClient(b, "http://127.0.0.1:1/router/rest", func(c *Config) { c.SignMethod = m })
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.encode(c.keys.signer.Load(), benchRequest, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSign is the exported one-shot Sign (a fresh HMAC per call).
func BenchmarkSign(b *testing.B) {
	params := vectorParams(SignHMACSHA256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(params, "helloworld", SignHMACSHA256); err != nil {
			b.Fatal(err)
		}
	}
}
