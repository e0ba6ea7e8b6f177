package topsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ordersync/ordersync/pkg/topapi"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

func asTopError(t *testing.T, err error) *topapi.Error {
	t.Helper()
	var e *topapi.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *topapi.Error", err, err)
	}
	return e
}

func omniCall(key string) topapi.Request {
	p := map[string]string{}
	for k, v := range omniParams {
		p[k] = v
	}
	p["request_no"] = key
	return topapi.Request{Method: "alibaba.omni.saas.order.create", Params: p, Session: session}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults topsim.Faults
		client func(*topapi.Config)
		check  func(t *testing.T, e *topapi.Error)
		fault  string
	}{
		{
			name:   "http 503",
			faults: topsim.Faults{ErrorRate: 1},
			check: func(t *testing.T, e *topapi.Error) {
				if e.HTTPStatus != 503 || !e.Retryable() {
					t.Errorf("got %v (status %d, retryable %v), want a retryable HTTP 503", e, e.HTTPStatus, e.Retryable())
				}
			},
			fault: "http_503",
		},
		{
			name:   "isp error",
			faults: topsim.Faults{ISPRate: 1},
			check: func(t *testing.T, e *topapi.Error) {
				if e.Code != 15 || e.SubCode != "isp.top-remote-connection-timeout" || !e.Retryable() {
					t.Errorf("got %v (retryable %v), want a retryable code 15 isp.top-remote-connection-timeout", e, e.Retryable())
				}
			},
			fault: "isp",
		},
		{
			name:   "ban",
			faults: topsim.Faults{BanRate: 1, BanSeconds: 90},
			check: func(t *testing.T, e *topapi.Error) {
				if e.Code != 7 || e.RetryAfter() != 90*time.Second || !e.Retryable() || !errors.Is(e, topapi.ErrLongBan) {
					t.Errorf("got %v (retry after %s, retryable %v), want a retryable long code-7 ban of 90s", e, e.RetryAfter(), e.Retryable())
				}
			},
			fault: "ban",
		},
		{
			name:   "hang",
			faults: topsim.Faults{HangRate: 1, Hang: time.Minute},
			client: func(c *topapi.Config) { c.Timeout = 100 * time.Millisecond },
			check: func(t *testing.T, e *topapi.Error) {
				if !errors.Is(e, context.DeadlineExceeded) || !e.Retryable() {
					t.Errorf("got %v (retryable %v), want a retryable timeout", e, e.Retryable())
				}
			},
			fault: "hang",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, srv := newSim(t, func(c *topsim.Config) { c.Faults = tt.faults })
			c := newClient(t, srv, tt.client)
			_, err := c.Call(context.Background(), omniCall("REQ-fault"))
			tt.check(t, asTopError(t, err))
			st := sim.Stats()
			if got := st.Faults[tt.fault]; got != 1 {
				t.Errorf("faults[%s] = %d, want 1 (stats %+v)", tt.fault, got, st)
			}
			if got, want := st.For("alibaba.omni.saas.order.create", "REQ-fault"), (topsim.CallStats{
				Method: "alibaba.omni.saas.order.create", Key: "REQ-fault", Calls: 1}); got != want {
				t.Errorf("stats = %+v, want %+v", got, want)
			}
		})
	}
}

// A ban the simulator starts holds for every call of the app key until it
// ends, and the client waits it out.
func TestBanHoldsThenLifts(t *testing.T) {
	sim, srv := newSim(t, func(c *topsim.Config) { c.Faults = topsim.Faults{BanRate: 1, BanSeconds: 1} })
	c := newClient(t, srv, nil)
	_, err := c.Call(context.Background(), omniCall("REQ-ban-1"))
	if e := asTopError(t, err); e.Code != 7 || e.RetryAfter() != time.Second || errors.Is(e, topapi.ErrLongBan) {
		t.Fatalf("first call: %v, want a short code-7 ban of 1s", e)
	}
	if err := sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	// Another client of the same app key knows nothing of the ban: the
	// simulator still answers code 7.
	other := newClient(t, srv, nil)
	_, err = other.Call(context.Background(), omniCall("REQ-ban-2"))
	if e := asTopError(t, err); e.Code != 7 {
		t.Fatalf("call during the ban: %v, want code 7", e)
	}
	// The first client waits the ban out, then succeeds.
	if _, err := c.Call(context.Background(), omniCall("REQ-ban-3")); err != nil {
		t.Fatalf("call after the ban: %v", err)
	}
	if got := sim.Stats().Faults["ban"]; got != 2 {
		t.Errorf("ban answers %d, want 2", got)
	}
}

func TestLatency(t *testing.T) {
	_, srv := newSim(t, func(c *topsim.Config) {
		c.Faults = topsim.Faults{Latency: 30 * time.Millisecond, Jitter: 10 * time.Millisecond}
	})
	c := newClient(t, srv, nil)
	start := time.Now()
	if _, err := c.Call(context.Background(), omniCall("REQ-latency")); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got < 30*time.Millisecond {
		t.Errorf("call took %s, want at least the 30ms latency", got)
	}
}

func TestControlEndpoints(t *testing.T) {
	sim, srv := newSim(t, nil)
	c := newClient(t, srv, nil)
	if _, err := c.Call(context.Background(), omniCall("REQ-ctl")); err != nil {
		t.Fatal(err)
	}

	// PUT /faults replaces the faults.
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/faults",
		strings.NewReader(`{"latency":"1ms","error_rate":1,"ban_seconds":5,"ban_sub_code":"accesscontrol.limited-by-api-access-count","hang":"2s","drop_rate":0.5}`))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /faults: HTTP %d", resp.StatusCode)
	}
	if got, want := sim.Faults(), (topsim.Faults{Latency: time.Millisecond, ErrorRate: 1, BanSeconds: 5,
		BanSubCode: topsim.SubCodeAPILimit, Hang: 2 * time.Second, DropRate: 0.5}); got != want {
		t.Errorf("faults after PUT = %+v, want %+v", got, want)
	}
	for _, bad := range []string{`{"error_rate":2}`, `{"latency":"soon"}`, `{"typo_rate":0.5}`, `not json`,
		`{"drop_rate":-0.1}`, `{"ban_sub_code":"isv.busy"}`, `{"ban_sub_code":"accesscontrol."}`} {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/faults", strings.NewReader(bad))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT /faults %s: HTTP %d, want 400", bad, resp.StatusCode)
		}
	}
	if _, err := c.Call(context.Background(), omniCall("REQ-ctl")); asTopError(t, err).HTTPStatus != 503 {
		t.Errorf("call with error_rate 1: %v, want HTTP 503", err)
	}

	// GET /stats.
	resp, err = srv.Client().Get(srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st topsim.Stats
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := topsim.Stats{
		Calls:     []topsim.CallStats{{Method: "alibaba.omni.saas.order.create", Key: "REQ-ctl", Calls: 2, Succeeded: 1}},
		Total:     2,
		Succeeded: 1,
		Faults:    map[string]int{"http_503": 1},
		Errors:    map[int]int{},
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("GET /stats (-want +got):\n%s", diff)
	}

	// POST /reset.
	resp, err = srv.Client().Post(srv.URL+"/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := sim.Stats(); got.Total != 0 || len(got.Calls) != 0 {
		t.Errorf("stats after reset = %+v, want none", got)
	}
}

func icbuCall(t *testing.T) (topapi.Request, string) {
	p := map[string]string{"param_order_create": icbuReq}
	return topapi.Request{Method: "alibaba.trade.order.create", Params: p, Session: session},
		fakeKey(t, "alibaba.trade.order.create", p)
}

// The drop fault is the ambiguous failure of issue 11: the platform executes
// the call (alibaba.trade.order.create, which it does not deduplicate) and the
// connection breaks before the answer, so the client sees a transport error
// for a call that succeeded.
func TestDropAfterProcessing(t *testing.T) {
	sim, srv := newSim(t, func(c *topsim.Config) { c.Faults = topsim.Faults{DropRate: 1} })
	c := newClient(t, srv, nil)
	req, key := icbuCall(t)
	_, err := c.Call(context.Background(), req)
	e := asTopError(t, err)
	if e.Code != 0 || e.HTTPStatus != 0 || e.Err == nil || errors.Is(e, context.DeadlineExceeded) || !e.Retryable() {
		t.Fatalf("dropped call: %v (code %d, status %d, cause %v), want a transport error with no answer", e, e.Code, e.HTTPStatus, e.Err)
	}
	if !errors.Is(e, syscall.ECONNRESET) && !errors.Is(e, io.EOF) && !errors.Is(e, io.ErrUnexpectedEOF) {
		t.Errorf("dropped call: cause %v, want a connection reset or EOF", e.Err)
	}
	st := sim.Stats()
	want := topsim.CallStats{Method: req.Method, Key: key, Calls: 1, Succeeded: 1}
	if got := st.For(req.Method, key); got != want {
		t.Errorf("stats of the dropped call %+v, want %+v: the platform executed it", got, want)
	}
	if st.Total != 1 || st.Succeeded != 1 || st.Faults["drop"] != 1 {
		t.Errorf("stats %+v, want 1 call, 1 success, 1 drop", st)
	}

	// The call was executed: a second one (which is what a blind retry does)
	// is a second success the platform counts.
	if err := sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(context.Background(), req); err != nil {
		t.Fatalf("call after the drop: %v", err)
	}
	if got := sim.Stats().For(req.Method, key).Succeeded; got != 2 {
		t.Errorf("successes after a retry = %d, want 2", got)
	}
}

func TestDropOfAnError(t *testing.T) {
	sim, srv := newSim(t, func(c *topsim.Config) { c.Faults = topsim.Faults{DropRate: 1} })
	c := newClient(t, srv, nil)
	req, _ := icbuCall(t)
	req.Params = map[string]string{} // the platform refuses it (code 41), and the answer is lost
	_, err := c.Call(context.Background(), req)
	if e := asTopError(t, err); e.Code != 0 || e.Err == nil {
		t.Fatalf("dropped refusal: %v, want a transport error", e)
	}
	st := sim.Stats()
	if st.Errors[41] != 1 || st.Faults["drop"] != 1 || st.Succeeded != 0 {
		t.Errorf("stats %+v, want one code-41 error, dropped, no success", st)
	}
}

func postJSON(t *testing.T, srv *httptest.Server, path, body string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// callBanned makes one call with a fresh client (a client that saw a ban
// waits it out itself) and returns the code-7 error, or nil if the call passed.
func callBanned(t *testing.T, srv *httptest.Server, req topapi.Request) *topapi.Error {
	t.Helper()
	_, err := newClient(t, srv, nil).Call(context.Background(), req)
	if err == nil {
		return nil
	}
	e := asTopError(t, err)
	if e.Code != 7 {
		t.Fatalf("%s: %v, want code 7 or success", req.Method, e)
	}
	return e
}

func TestBanRoute(t *testing.T) {
	omni := omniCall("REQ-ban-route")
	diantao := topapi.Request{Method: "alibaba.diantao.tripartite.order.info", Params: map[string]string{"tripartite_order_info_dto": diantaoReq}}
	tests := []struct {
		name        string
		body        string
		wantSubCode string
		omniBanned  bool
		otherBanned bool
	}{
		{"app-wide", `{"seconds":30}`, topsim.SubCodeAppLimit, true, true},
		{"app-wide with a sub_code", `{"seconds":30,"sub_code":"accesscontrol.limited-by-app-access-count"}`, topsim.SubCodeAppLimit, true, true},
		{"one method", `{"seconds":30,"method":"alibaba.omni.saas.order.create"}`, topsim.SubCodeAppAPILimit, true, false},
		{"one method, all apps' limit", `{"seconds":30,"method":"alibaba.omni.saas.order.create","sub_code":"accesscontrol.limited-by-api-access-count"}`,
			topsim.SubCodeAPILimit, true, false},
		{"another method", `{"seconds":30,"method":"alibaba.trade.order.create"}`, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, srv := newSim(t, nil)
			status, body := postJSON(t, srv, "/ban", tt.body)
			if status != http.StatusOK || !strings.Contains(body, `"until"`) {
				t.Fatalf("POST /ban %s: HTTP %d %s", tt.body, status, body)
			}
			e := callBanned(t, srv, omni)
			if got := e != nil; got != tt.omniBanned {
				t.Fatalf("omni-saas call banned = %v (%v), want %v", got, e, tt.omniBanned)
			}
			if e != nil {
				if e.SubCode != tt.wantSubCode || e.RetryAfter() < 29*time.Second || e.RetryAfter() > 30*time.Second {
					t.Errorf("ban answer %v (retry after %s), want sub_code %s and about 30s", e, e.RetryAfter(), tt.wantSubCode)
				}
			}
			if got := callBanned(t, srv, diantao) != nil; got != tt.otherBanned {
				t.Errorf("diantao call banned = %v, want %v", got, tt.otherBanned)
			}
			// POST /reset ends it.
			sim.Reset()
			if e := callBanned(t, srv, omni); e != nil {
				t.Errorf("call after reset: %v, want success", e)
			}
		})
	}

	_, srv := newSim(t, nil)
	for _, bad := range []string{`{}`, `{"seconds":0}`, `{"seconds":-1}`, `{"seconds":86401}`, `{"seconds":5,"sub_code":"isv.busy"}`,
		`{"seconds":5,"typo":1}`, `not json`} {
		if status, body := postJSON(t, srv, "/ban", bad); status != http.StatusBadRequest {
			t.Errorf("POST /ban %s: HTTP %d %s, want 400", bad, status, body)
		}
	}
}

// Random bans take their scope from Faults.BanSubCode: a per-API sub_code
// bans the drawing call's method only.
func TestRandomPerAPIBan(t *testing.T) {
	sim, srv := newSim(t, func(c *topsim.Config) {
		c.Faults = topsim.Faults{BanRate: 1, BanSeconds: 60, BanSubCode: topsim.SubCodeAPILimit}
	})
	omni := omniCall("REQ-api-ban")
	if e := callBanned(t, srv, omni); e == nil || e.SubCode != topsim.SubCodeAPILimit {
		t.Fatalf("call drawing a per-API ban: %v, want code 7 %s", e, topsim.SubCodeAPILimit)
	}
	if err := sim.SetFaults(topsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	diantao := topapi.Request{Method: "alibaba.diantao.tripartite.order.info", Params: map[string]string{"tripartite_order_info_dto": diantaoReq}}
	if e := callBanned(t, srv, diantao); e != nil {
		t.Errorf("another method during a per-API ban: %v, want success", e)
	}
	if e := callBanned(t, srv, omni); e == nil {
		t.Error("the banned method after the draw: success, want code 7 until the ban ends")
	}
}

func TestBan(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	sim, _ := newSim(t, func(c *topsim.Config) { c.Now = func() time.Time { return now } })
	for _, tt := range []struct {
		d    time.Duration
		want time.Duration
	}{{time.Second, time.Second}, {1500 * time.Millisecond, 2 * time.Second}, {time.Millisecond, time.Second}, {24 * time.Hour, 24 * time.Hour}} {
		until, err := sim.Ban(tt.d, "", "")
		if err != nil || !until.Equal(now.Add(tt.want)) {
			t.Errorf("Ban(%s) = %v, %v; want %v", tt.d, until, err, now.Add(tt.want))
		}
	}
	for _, d := range []time.Duration{0, -time.Second, 24*time.Hour + time.Second} {
		if _, err := sim.Ban(d, "", ""); err == nil {
			t.Errorf("Ban(%s) succeeded, want an error", d)
		}
	}
}

// Many callers with every fault on at once: the counters add up (run with
// -race).
func TestConcurrentCallers(t *testing.T) {
	sim, srv := newSim(t, func(c *topsim.Config) {
		c.Faults = topsim.Faults{Jitter: time.Millisecond, ErrorRate: 0.1, ISPRate: 0.1}
	})
	c := newClient(t, srv, nil)
	const callers, calls = 50, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				_, err := c.Call(context.Background(), omniCall("REQ-"+strconv.Itoa(g)+"-"+strconv.Itoa(i%3)))
				if err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	st := sim.Stats()
	if st.Total != callers*calls {
		t.Errorf("total %d, want %d", st.Total, callers*calls)
	}
	if st.Succeeded != ok {
		t.Errorf("simulator counted %d successes, client saw %d", st.Succeeded, ok)
	}
	if got := st.Succeeded + st.Faults["http_503"] + st.Faults["isp"]; got != callers*calls {
		t.Errorf("successes + faults = %d, want %d", got, callers*calls)
	}
	if len(st.Calls) != callers*3 {
		t.Errorf("%d (method, key) rows, want %d", len(st.Calls), callers*3)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  topsim.Config
	}{
		{"no app key", topsim.Config{AppSecret: "s", Rules: fakeRules{}}},
		{"no secret", topsim.Config{AppKey: "k", Rules: fakeRules{}}},
		{"no rules", topsim.Config{AppKey: "k", AppSecret: "s"}},
		{"bad faults", topsim.Config{AppKey: "k", AppSecret: "s", Rules: fakeRules{}, Faults: topsim.Faults{HangRate: -1}}},
	}
	for _, tt := range tests {
		if _, err := topsim.New(tt.cfg); err == nil {
			t.Errorf("%s: New succeeded, want an error", tt.name)
		}
	}
}

// BenchmarkRoundTrip measures client → simulator calls over real HTTP
// (loopback, keep-alive), signing and checking hmac-sha256 on every call,
// with 16 callers per CPU as a worker with many calls in flight would have.
// Client and simulator share the machine's CPUs.
func BenchmarkRoundTrip(b *testing.B) {
	_, srv := newSim(b, nil)
	c := newClient(b, srv, nil)
	b.ReportAllocs()
	b.SetParallelism(16)
	start := time.Now()
	defer func() { b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s") }()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := c.Call(context.Background(), omniCall("REQ-bench-"+strconv.Itoa(i%64))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
