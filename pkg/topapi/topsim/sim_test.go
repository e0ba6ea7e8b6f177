package topsim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
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
