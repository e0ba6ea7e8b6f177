package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordersync/ordersync/pkg/topapi"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// topsimTestRules knows one method that needs a session (omni-saas, keyed by
// request_no) and one that does not (diantao); the real rules are the
// dispatch registry's.
type topsimTestRules struct{}

func (topsimTestRules) NeedsSession(method string) (needs, known bool) {
	switch method {
	case "alibaba.omni.saas.order.create":
		return true, true
	case "alibaba.diantao.tripartite.order.info":
		return false, true
	}
	return false, false
}

type topsimTestMissing string

func (m topsimTestMissing) Error() string     { return string(m) + ": required" }
func (m topsimTestMissing) FieldPath() string { return string(m) }
func (topsimTestMissing) Missing() bool       { return true }

func (topsimTestRules) CheckParams(method string, p map[string]string) (string, error) {
	if method == "alibaba.diantao.tripartite.order.info" {
		return p["tripartite_order_info_dto"], nil
	}
	if p["request_no"] == "" {
		return "", topsimTestMissing("request_no")
	}
	return p["request_no"], nil
}

// topsimOutput collects what runTopsim prints and signals its first line.
type topsimOutput struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan string
}

func newTopsimOutput() *topsimOutput { return &topsimOutput{first: make(chan string, 1)} }

func (o *topsimOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	hadLine := strings.Contains(o.buf.String(), "\n")
	o.buf.Write(p)
	if s := o.buf.String(); !hadLine && strings.Contains(s, "\n") {
		o.first <- s[:strings.Index(s, "\n")]
	}
	return len(p), nil
}

func (o *topsimOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// startTopsim runs runTopsim with args on a free port and returns the
// gateway URL; the simulator stops when the test ends.
func startTopsim(t *testing.T, args ...string) (gatewayURL string, out *topsimOutput) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = newTopsimOutput()
	done := make(chan error, 1)
	go func() {
		done <- runTopsim(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), topsimTestRules{}, out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runTopsim: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("runTopsim did not return after its context ended")
		}
	})
	select {
	case line := <-out.first:
		// "topsim: gateway http://127.0.0.1:PORT/router/rest (app key ...)"
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[2], "http://") {
			t.Fatalf("first line %q does not give the gateway URL", line)
		}
		return f[2], out
	case err := <-done:
		t.Fatalf("runTopsim returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("runTopsim printed nothing")
	}
	return "", nil
}

func topsimClient(t *testing.T, gateway, key, secret string) *topapi.Client {
	t.Helper()
	c, err := topapi.New(topapi.Config{Gateway: gateway, AppKey: key, AppSecret: secret, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func omniTestRequest(session string) topapi.Request {
	return topapi.Request{
		Method:  "alibaba.omni.saas.order.create",
		Session: session,
		Params:  map[string]string{"request_no": "REQ-1", "store_id": "1047384"},
	}
}

func topsimCode(t *testing.T, err error) int {
	t.Helper()
	var e *topapi.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *topapi.Error", err)
	}
	return e.Code
}

func TestRunTopsim(t *testing.T) {
	const key, secret = "K-topsim", "S-topsim-secret-4711"
	gw, out := startTopsim(t, "--app-key", key, "--app-secret", secret, "--sessions", "sess-a, sess-b", "--seed", "7")
	ctx := context.Background()

	c := topsimClient(t, gw, key, secret)
	if _, err := c.Call(ctx, omniTestRequest("sess-b")); err != nil {
		t.Fatalf("signed call: %v", err)
	}
	if _, err := c.Call(ctx, omniTestRequest("sess-unknown")); topsimCode(t, err) != 27 {
		t.Errorf("unknown session: %v, want code 27", err)
	}
	wrong := topsimClient(t, gw, key, "not-the-secret")
	if _, err := wrong.Call(ctx, omniTestRequest("sess-a")); topsimCode(t, err) != 25 {
		t.Errorf("wrong secret: %v, want code 25", err)
	}

	resp, err := http.Get(strings.TrimSuffix(gw, "/router/rest") + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st topsim.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if got := st.For("alibaba.omni.saas.order.create", "REQ-1"); got.Calls != 3 || got.Succeeded != 1 {
		t.Errorf("stats %+v, want 3 calls, 1 succeeded", got)
	}
	if s := out.String(); strings.Contains(s, secret) {
		t.Errorf("output %q holds the secret", s)
	}
}

func TestRunTopsimEnvironment(t *testing.T) {
	t.Setenv("ORDERSYNC_TOP_APP_KEY", "K-env")
	t.Setenv("ORDERSYNC_TOP_APP_SECRET", "S-env-secret-0815")
	t.Run("from the environment", func(t *testing.T) {
		gw, out := startTopsim(t)
		c := topsimClient(t, gw, "K-env", "S-env-secret-0815")
		if _, err := c.Call(context.Background(), omniTestRequest("any")); err != nil {
			t.Errorf("call with the environment's credentials: %v", err)
		}
		if s := out.String(); strings.Contains(s, "S-env-secret-0815") || !strings.Contains(s, "K-env") {
			t.Errorf("output %q: want the app key and not the secret", s)
		}
	})
	t.Run("flags win", func(t *testing.T) {
		gw, _ := startTopsim(t, "--app-key", "K-flag", "--app-secret", "S-flag-secret-1234")
		c := topsimClient(t, gw, "K-flag", "S-flag-secret-1234")
		if _, err := c.Call(context.Background(), omniTestRequest("any")); err != nil {
			t.Errorf("call with the flags' credentials: %v", err)
		}
	})
}

func TestRunTopsimDevelopmentDefaults(t *testing.T) {
	t.Setenv("ORDERSYNC_TOP_APP_KEY", "")
	t.Setenv("ORDERSYNC_TOP_APP_SECRET", "")
	gw, _ := startTopsim(t)
	c := topsimClient(t, gw, topsimDevAppKey, topsimDevAppSecret)
	if _, err := c.Call(context.Background(), omniTestRequest("any")); err != nil {
		t.Errorf("call with the development credentials: %v", err)
	}
}

func TestRunTopsimFaultFlags(t *testing.T) {
	gw, _ := startTopsim(t, "--app-key", "K", "--app-secret", "S-faults", "--error-rate", "1")
	c := topsimClient(t, gw, "K", "S-faults")
	_, err := c.Call(context.Background(), omniTestRequest("any"))
	var e *topapi.Error
	if !errors.As(err, &e) || e.HTTPStatus != http.StatusServiceUnavailable || !e.Retryable() {
		t.Errorf("call with --error-rate 1: %v, want a retryable HTTP 503", err)
	}
}

// --drop-rate: the call is executed and counted, its connection reset before the answer.
func TestRunTopsimDropFlag(t *testing.T) {
	gw, out := startTopsim(t, "--app-key", "K", "--app-secret", "S-drop", "--drop-rate", "1")
	c := topsimClient(t, gw, "K", "S-drop")
	_, err := c.Call(context.Background(), omniTestRequest("any"))
	var e *topapi.Error
	if !errors.As(err, &e) || e.Code != 0 || e.HTTPStatus != 0 || e.Err == nil {
		t.Fatalf("call with --drop-rate 1: %v, want a transport error without an answer", err)
	}
	base := strings.TrimSuffix(gw, "/router/rest")
	resp, err := http.Get(base + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st topsim.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if got := st.For("alibaba.omni.saas.order.create", "REQ-1"); got.Calls != 1 || got.Succeeded != 1 || st.Faults["drop"] != 1 {
		t.Errorf("stats %+v (faults %v), want 1 call, 1 succeeded, 1 drop", got, st.Faults)
	}
	if !strings.Contains(out.String(), "ban POST "+base+"/ban") {
		t.Errorf("output %q does not name the ban route", out.String())
	}
}

func TestRunTopsimBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"--nope"}},
		{"rate above 1", []string{"--addr", "127.0.0.1:0", "--error-rate", "2"}},
		{"drop rate above 1", []string{"--addr", "127.0.0.1:0", "--drop-rate", "1.5"}},
		{"ban sub_code not accesscontrol", []string{"--addr", "127.0.0.1:0", "--ban-sub-code", "isv.busy"}},
		{"bad duration", []string{"--latency", "soon"}},
		{"stray argument", []string{"--addr", "127.0.0.1:0", "extra"}},
		{"bad address", []string{"--addr", "127.0.0.1:99999"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := runTopsim(context.Background(), tt.args, topsimTestRules{}, &out); err == nil {
				t.Errorf("runTopsim(%q) succeeded, want an error", tt.args)
			}
		})
	}
	var out bytes.Buffer
	if err := runTopsim(context.Background(), []string{"-h"}, topsimTestRules{}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "--app-secret") && !strings.Contains(out.String(), "-app-secret") {
		t.Errorf("help %q does not list the flags", out.String())
	}
	if err := runTopsim(context.Background(), []string{"--addr", "127.0.0.1:0"}, nil, &out); err == nil {
		t.Error("runTopsim without rules succeeded, want an error")
	}
}
