package topsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/ordersync/ordersync/pkg/topapi"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	appKey    = "12345678"
	appSecret = "sim-test-secret-0123456789"
	session   = "6100e23657fb0b2d0c78568e55a3031134be9a3a5d4b3a365753805"
)

// newSim starts a simulator behind a real HTTP server.
func newSim(t testing.TB, mod func(*topsim.Config)) (*topsim.Sim, *httptest.Server) {
	t.Helper()
	cfg := topsim.Config{AppKey: appKey, AppSecret: appSecret, Sessions: []string{session}, Rules: fakeRules{}, Seed: 1}
	if mod != nil {
		mod(&cfg)
	}
	sim, err := topsim.New(cfg)
	if err != nil {
		t.Fatalf("topsim.New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	return sim, srv
}

func newClient(t testing.TB, srv *httptest.Server, mod func(*topapi.Config)) *topapi.Client {
	t.Helper()
	// Short bans are waited out, as the worker configures it (top.max_ban_wait).
	cfg := topapi.Config{Gateway: srv.URL + "/router/rest", AppKey: appKey, AppSecret: appSecret, MaxBanWait: time.Minute}
	if mod != nil {
		mod(&cfg)
	}
	c, err := topapi.New(cfg)
	if err != nil {
		t.Fatalf("topapi.New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// The wire parameters of the five API pages' request examples.
var (
	aliautoReq = `{"buyer_info":{"user_nick":"张三","user_phone":"13912340000","user_id":23432},"hide":true,` +
		`"order_info":{"biz_type":200,"pay_time":"2022-05-01 12:30:50","out_order_id":"ABC123432",` +
		`"end_time":"2022-05-01 12:30:50","gmt_create":"2022-05-01 12:30:50","total_fee":10000},"source":"YC_STORE",` +
		`"item_info":{"item_id":1000,"item_title":"一个商品","root_cat":123432,"item_price":10000,"category_id":123243,"buy_amount":2},` +
		`"seller_info":{"user_nick":"李四","user_phone":"13912341111","user_id":4567823},` +
		`"pay_order_info":{"channel":"alipay","pay_order_id":"2024091167897678768"},` +
		`"idempotent_id":"YC_STORE-45678765","ext_info":"自定义json字符"}`
	omniParams = map[string]string{
		"goods_details": `[{"goods_id":"GD00001","price":"100","quantity":"10.0","id_type":"ITEM_SKU"}]`,
		"buyer_id":      "79284721321", "buyer_id_type": "TAOBAO", "store_id": "1047384",
		"device": "POS", "device_no": "POS001", "operator_id": "5436457654", "pay_channel": "ALIPAY",
		"coupon_infos":  `[{"name":"满100减10元","discount":100,"option_id":"YH9527"}]`,
		"store_id_type": "PLACE", "request_no": "REQ-3436967",
	}
	icbuReq = `{"logistics_detail":{"shipment_address":{"zip":"461670","country":"United States of America",` +
		`"address":"Bank of new york","city":"New York","province_code":"California","city_code":"NY","contact_person":"james",` +
		`"telephone":{"area":"0512","country":"86","number":"13890876543"},"port_code":"frisco","province":"California",` +
		`"port":"SH","country_code":"US","alternate_address":"test","fax":{"area":"SH","country":"CH","number":"461670"}},` +
		`"shipment_method":"sea","trade_term":"FOB","carrier":"DHL","carrier_code":"DHL",` +
		`"shipment_date":{"duration":5,"date":{"format_date":"2019-11-11","time_stamp":4123459999},"type":"relative"}},` +
		`"fulfillment_channel":"TAD","payment_detail":{"shipment_fee":"20","total_amount":"300","product_amount":"200",` +
		`"shipment_insurance_fee":"80","initial_amount":"100","value_add_service_amount":"0","tax_amount":"0","currency":"USD"},` +
		`"third_party_channel":"futu","target_participant":{"login_id":"ca1090886111","email":"xinbaoifm@sina.cn"},"remark":"test",` +
		`"product_list":[{"product_id":62337348461,"name":"helloworld","sku_id":"-1","unit":"set","quantity":"100",` +
		`"unit_price_str":"2","currency":"USD","encrypt_product_id":"XJU123452","product_image":"Hbfa463819ebf485f8a9dc31b871b6764y.jpg"}],` +
		`"biz_code":"1020702","operator_email":"xicat1112@163.com"}`
	haidingCommon = `"order_payments":[{"out_payment_name":"支付宝","payment_sub_type":"16","out_payment_no":"202100312321",` +
		`"pay_line_no":1,"payment_amount":100,"payment_type":"D1"}],"order_items":[{"line_no":1,"quantity":"2","counter_no":"8998",` +
		`"item_title":"大米","sale_price":90,"out_id":"8888","attributes":"\"\"","goods_code":"34234","tag_price":100,"discount_amount":50}],` +
		`"order_share_promotions":[{"out_payment_name":"支付宝","item_line_no":1,"payment_sub_type":"14","out_payment_no":"213213421",` +
		`"split_amount":90,"pay_line_no":1,"payment_type":"D1"}]`
	haidingOrder = `"order":{"store_no":"HZ01","pay_time":"2021-10-01 00:00:00","total_fee":180,"phone":"138979923123",` +
		`"subject":"购物订单","open_id":21312,"out_trade_no":"20211001231231","attributes":"\"\"","gmt_create":"2021-10-01 00:00:00",` +
		`"is_intime_counter":true}`
	haidingRefund = `"refund_order":{"gmt_create":"2021-10-01 00:00:00","out_trade_no":"20211001231231",` +
		`"out_refund_no":"20211001231232","store_no":"HZ01","phone":"138979923123","open_id":21312,"refund_amount":180,` +
		`"refund_time":"2021-10-01 00:00:00","refund_reason":"商品退款","is_intime_counter":true,"attributes":"\"\""}`
	diantaoReq = `{"extend":"{}","amount":990,"biz":"xxx","phone_number":"15249762486","order_id":"123",` +
		`"pay_time":1661148782000,"out_order_id":"543125","biz_scene":"xxx","appkey":"123456","trade_finished":true,` +
		`"title":"xxx","user_id":"123456"}`
)

// jsonOf decodes s, failing the test on error.
func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

func TestSeedExamplesRoundTrip(t *testing.T) {
	sim, srv := newSim(t, nil)
	c := newClient(t, srv, nil)
	tests := []struct {
		name    string
		method  string
		session string
		params  map[string]string
		key     string
		want    func(id int64) string // the expected body without request_id
	}{
		{
			name:   "tmall-aliauto",
			method: "tmall.aliauto.trade.external.order.sycn",
			params: map[string]string{"sync_single_order_req": aliautoReq},
			key:    "YC_STORE-45678765",
			want:   func(id int64) string { return fmt.Sprintf(`{"result":{"data":{"order_id":%d},"success":true}}`, id) },
		},
		{
			name:    "omni-saas",
			method:  "alibaba.omni.saas.order.create",
			session: session,
			params:  omniParams,
			key:     "REQ-3436967",
			want: func(id int64) string {
				return fmt.Sprintf(`{"trade_no":%d,"total_amount":1000,"actual_pay_fee":900}`, id)
			},
		},
		{
			name:    "icbu-trade",
			method:  "alibaba.trade.order.create",
			session: session,
			params:  map[string]string{"param_order_create": icbuReq},
			key:     fakeKey(t, "alibaba.trade.order.create", map[string]string{"param_order_create": icbuReq}),
			want: func(id int64) string {
				return fmt.Sprintf(`{"result":{"success":true,"value":{"trade_id":"%d","pay_url":"https://cashier.alibaba.com/?trade_id=%d"}}}`, id, id)
			},
		},
		{
			name:    "mos-haiding order",
			method:  "alibaba.mos.trade.open.haiding.order.sync",
			session: session,
			params:  map[string]string{"order_sync_request": "{" + haidingCommon + "," + haidingOrder + "}"},
			key:     "order:20211001231231",
			want: func(id int64) string {
				return fmt.Sprintf(`{"oc_trade_no":"%d","out_trade_no":"20211001231231"}`, id)
			},
		},
		{
			name:    "mos-haiding refund",
			method:  "alibaba.mos.trade.open.haiding.order.sync",
			session: session,
			params:  map[string]string{"order_sync_request": "{" + haidingCommon + "," + haidingOrder + "," + haidingRefund + "}"},
			key:     "refund:20211001231232",
			want: func(id int64) string {
				return fmt.Sprintf(`{"oc_refund_no":"%d","out_trade_no":"20211001231231"}`, id)
			},
		},
		{
			name:   "diantao-tripartite",
			method: "alibaba.diantao.tripartite.order.info",
			params: map[string]string{"tripartite_order_info_dto": diantaoReq},
			key:    "543125:true",
			want:   func(int64) string { return `{"is_success":true}` },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var first string
			for attempt := range 2 {
				resp, err := c.Call(context.Background(), topapi.Request{Method: tt.method, Params: tt.params, Session: tt.session})
				if err != nil {
					t.Fatalf("attempt %d: Call: %v", attempt, err)
				}
				if resp.RequestID == "" {
					t.Errorf("attempt %d: empty request id", attempt)
				}
				got := jsonOf(t, string(resp.Body)).(map[string]any)
				if got["request_id"] != resp.RequestID {
					t.Errorf("attempt %d: body request_id %v, Response.RequestID %q", attempt, got["request_id"], resp.RequestID)
				}
				delete(got, "request_id")
				want := jsonOf(t, tt.want(topsim.PlatformID(tt.method, tt.key)))
				if diff := cmp.Diff(want, any(got)); diff != "" {
					t.Errorf("attempt %d: body (-want +got):\n%s", attempt, diff)
				}
				b, _ := json.Marshal(got)
				if attempt == 0 {
					first = string(b)
				} else if string(b) != first {
					t.Errorf("repeat answered %s, first call %s: want the same ids", b, first)
				}
			}
			if got, want := sim.Stats().For(tt.method, tt.key), (topsim.CallStats{Method: tt.method, Key: tt.key, Calls: 2, Succeeded: 2}); got != want {
				t.Errorf("stats = %+v, want %+v", got, want)
			}
		})
	}
}

func fakeKey(t *testing.T, method string, p map[string]string) string {
	t.Helper()
	k, err := fakeRules{}.CheckParams(method, p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signedForm builds the parameters of a valid call of the omni-saas example,
// signed with sign_method m; edit changes them before signing, and after
// (for the sign itself) when it returns false.
func signedForm(t *testing.T, now time.Time, m string, edit func(url.Values)) url.Values {
	t.Helper()
	v := url.Values{}
	for k, p := range omniParams {
		v.Set(k, p)
	}
	v.Set("method", "alibaba.omni.saas.order.create")
	v.Set("app_key", appKey)
	v.Set("timestamp", now.In(time.FixedZone("GMT+8", 8*3600)).Format(time.DateTime))
	v.Set("v", "2.0")
	v.Set("format", "json")
	v.Set("sign_method", m)
	v.Set("session", session)
	if edit != nil {
		edit(v)
	}
	flat := map[string]string{}
	for k := range v {
		flat[k] = v.Get(k)
	}
	sign, err := topapi.Sign(flat, appSecret, m)
	if err != nil {
		sign, _ = topapi.Sign(flat, appSecret, topapi.SignMD5)
	}
	if v.Get("sign") == "" {
		v.Set("sign", sign)
	}
	if v.Get("sign") == "-" {
		v.Del("sign")
	}
	return v
}

type errorAnswer struct {
	ErrorResponse struct {
		Code    int    `json:"code"`
		Msg     string `json:"msg"`
		SubCode string `json:"sub_code"`
		SubMsg  string `json:"sub_msg"`
	} `json:"error_response"`
}

func post(t *testing.T, srv *httptest.Server, body url.Values, query url.Values) (int, string) {
	t.Helper()
	u := srv.URL + "/router/rest"
	if query != nil {
		u += "?" + query.Encode()
	}
	resp, err := srv.Client().Post(u, "application/x-www-form-urlencoded;charset=UTF-8", strings.NewReader(body.Encode()))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return resp.StatusCode, string(b)
}

func TestGatewayChecks(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	_, srv := newSim(t, func(c *topsim.Config) { c.Now = func() time.Time { return now } })
	tests := []struct {
		name        string
		signMethod  string
		at          time.Time
		edit        func(url.Values)
		wantCode    int // 0 = success
		wantSubCode string
	}{
		{name: "md5 ok", signMethod: "md5"},
		{name: "hmac ok", signMethod: "hmac"},
		{name: "hmac-sha256 ok", signMethod: "hmac-sha256"},
		{name: "timestamp 9 minutes early ok", signMethod: "md5", at: now.Add(-9 * time.Minute)},
		{name: "empty business value ignored", signMethod: "md5", edit: func(v url.Values) { v.Set("device", "") }},
		{name: "wrong signature", signMethod: "md5", edit: func(v url.Values) { v.Set("sign", strings.Repeat("A", 32)) }, wantCode: 25},
		{name: "signed with another secret", signMethod: "hmac-sha256", edit: func(v url.Values) {
			v.Set("sign", mustSign(t, v, "not-the-secret", "hmac-sha256"))
		}, wantCode: 25},
		{name: "unknown sign method", signMethod: "sha1", wantCode: 25},
		{name: "missing signature", signMethod: "md5", edit: func(v url.Values) { v.Set("sign", "-") }, wantCode: 24},
		{name: "stale timestamp", signMethod: "md5", at: now.Add(-11 * time.Minute), wantCode: 31},
		{name: "future timestamp", signMethod: "md5", at: now.Add(11 * time.Minute), wantCode: 31},
		{name: "malformed timestamp", signMethod: "md5", edit: func(v url.Values) { v.Set("timestamp", "2026/11/21 10:00") }, wantCode: 31},
		{name: "missing timestamp", signMethod: "md5", edit: func(v url.Values) { v.Del("timestamp") }, wantCode: 30},
		{name: "missing method", signMethod: "md5", edit: func(v url.Values) { v.Del("method") }, wantCode: 21},
		{name: "unknown method", signMethod: "md5", edit: func(v url.Values) { v.Set("method", "taobao.nothing.here") }, wantCode: 22},
		{name: "missing app key", signMethod: "md5", edit: func(v url.Values) { v.Del("app_key") }, wantCode: 28},
		{name: "wrong app key", signMethod: "md5", edit: func(v url.Values) { v.Set("app_key", "999") }, wantCode: 29},
		{name: "missing version", signMethod: "md5", edit: func(v url.Values) { v.Del("v") }, wantCode: 32},
		{name: "invalid version", signMethod: "md5", edit: func(v url.Values) { v.Set("v", "two") }, wantCode: 33},
		{name: "unsupported version", signMethod: "md5", edit: func(v url.Values) { v.Set("v", "3.0") }, wantCode: 34},
		{name: "xml format", signMethod: "md5", edit: func(v url.Values) { v.Set("format", "xml") }, wantCode: 23},
		{name: "missing session", signMethod: "md5", edit: func(v url.Values) { v.Del("session") }, wantCode: 26},
		{name: "invalid session", signMethod: "md5", edit: func(v url.Values) { v.Set("session", "6100-someone-else") }, wantCode: 27},
		{name: "missing business field", signMethod: "md5", edit: func(v url.Values) { v.Del("request_no") },
			wantCode: 41, wantSubCode: "isv.missing-parameter:request_no"},
		{name: "invalid business field", signMethod: "hmac", edit: func(v url.Values) {
			v.Set("method", "alibaba.mos.trade.open.haiding.order.sync")
			v.Set("order_sync_request", "{}")
		}, wantCode: 41, wantSubCode: "isv.invalid-parameter:order_sync_request.order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tt.at
			if at.IsZero() {
				at = now
			}
			status, body := post(t, srv, signedForm(t, at, tt.signMethod, tt.edit), nil)
			if status != http.StatusOK {
				t.Fatalf("HTTP %d %s, want 200", status, body)
			}
			var ea errorAnswer
			if err := json.Unmarshal([]byte(body), &ea); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if got := ea.ErrorResponse.Code; got != tt.wantCode {
				t.Fatalf("code %d, want %d (answer %s)", got, tt.wantCode, body)
			}
			if got := ea.ErrorResponse.SubCode; got != tt.wantSubCode {
				t.Errorf("sub_code %q, want %q", got, tt.wantSubCode)
			}
			if tt.wantCode == 0 && !strings.Contains(body, `"alibaba_omni_saas_order_create_response"`) {
				t.Errorf("answer %s has no alibaba_omni_saas_order_create_response", body)
			}
			if strings.Contains(body, appSecret) || strings.Contains(body, session) {
				t.Errorf("answer %s echoes a secret", body)
			}
		})
	}
}

func mustSign(t *testing.T, v url.Values, secret, m string) string {
	t.Helper()
	flat := map[string]string{}
	for k := range v {
		flat[k] = v.Get(k)
	}
	s, err := topapi.Sign(flat, secret, m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The Java SDK puts the system parameters, sign included, in the query
// string and the business parameters in the body.
func TestGatewayAcceptsSystemParamsInQuery(t *testing.T) {
	_, srv := newSim(t, nil)
	all := signedForm(t, time.Now(), "hmac-sha256", nil)
	query, body := url.Values{}, url.Values{}
	for k := range all {
		if _, business := omniParams[k]; business {
			body.Set(k, all.Get(k))
		} else {
			query.Set(k, all.Get(k))
		}
	}
	status, answer := post(t, srv, body, query)
	if status != http.StatusOK || !strings.Contains(answer, `"trade_no"`) {
		t.Errorf("HTTP %d %s, want a success answer", status, answer)
	}
}

func TestGatewayRejectsGet(t *testing.T) {
	_, srv := newSim(t, nil)
	resp, err := srv.Client().Get(srv.URL + "/router/rest?" + signedForm(t, time.Now(), "md5", nil).Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ea errorAnswer
	if err := json.NewDecoder(resp.Body).Decode(&ea); err != nil {
		t.Fatal(err)
	}
	if got, want := ea.ErrorResponse.Code, 9; got != want {
		t.Errorf("code %d, want %d", got, want)
	}
}

// Any session is valid when the simulator has no list of sessions.
func TestAnySessionWhenNoneConfigured(t *testing.T) {
	_, srv := newSim(t, func(c *topsim.Config) { c.Sessions = nil })
	c := newClient(t, srv, nil)
	_, err := c.Call(context.Background(), topapi.Request{Method: "alibaba.omni.saas.order.create", Params: omniParams, Session: "whatever"})
	if err != nil {
		t.Errorf("Call with any session: %v", err)
	}
	_, err = c.Call(context.Background(), topapi.Request{Method: "alibaba.omni.saas.order.create", Params: omniParams})
	if e := asTopError(t, err); e.Code != 26 || e.Kind() != topapi.KindAuth || e.Retryable() {
		t.Errorf("Call without session: %v (kind %s, retryable %v), want code 26, auth, permanent", e, e.Kind(), e.Retryable())
	}
}

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
