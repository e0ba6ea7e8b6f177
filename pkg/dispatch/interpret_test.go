package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ordersync/ordersync/pkg/topapi"
)

func TestInterpret(t *testing.T) {
	tests := []struct {
		name       string
		channel    string
		body       string
		wantStatus string
		wantErr    *ErrorInfo
	}{
		{"aliauto success", "tmall-aliauto", `{"result":{"data":{"order_id":4356787654345678},"success":true}}`, StatusSucceeded, nil},
		{"aliauto business failure", "tmall-aliauto",
			`{"result":{"success":false,"msg_info":"卖家信息不存在","msg_code":"SELLER_NOT_EXIST"}}`, StatusFailed,
			&ErrorInfo{Kind: KindBusiness, Code: "SELLER_NOT_EXIST", Msg: "卖家信息不存在"}},
		{"aliauto flag as string", "tmall-aliauto", `{"result":{"success":"false","msg_code":"E"}}`, StatusFailed,
			&ErrorInfo{Kind: KindBusiness, Code: "E"}},
		{"aliauto flag missing", "tmall-aliauto", `{"result":{"data":{"order_id":1}}}`, StatusFailed,
			&ErrorInfo{Kind: KindBusiness, Msg: "response has no result.success flag"}},
		{"aliauto no result", "tmall-aliauto", `{}`, StatusFailed,
			&ErrorInfo{Kind: KindBusiness, Msg: "response has no result.success flag"}},
		{"aliauto flag null", "tmall-aliauto", `{"result":{"success":null}}`, StatusFailed,
			&ErrorInfo{Kind: KindBusiness, Msg: "response has no result.success flag"}},
		{"icbu success", "icbu-trade", `{"result":{"success":true,"value":{"trade_id":"123456789","pay_url":"cashier.alibaba.com"}}}`, StatusSucceeded, nil},
		{"icbu business failure", "icbu-trade", `{"result":{"success":false,"error_message":"invalid request","error_code":"400"}}`, StatusFailed,
			&ErrorInfo{Kind: KindBusiness, Code: "400", Msg: "invalid request"}},
		{"icbu numeric code", "icbu-trade", `{"result":{"success":false,"error_code":400}}`, StatusFailed,
			&ErrorInfo{Kind: KindBusiness, Code: "400"}},
		{"diantao success", "diantao-tripartite", `{"is_success":true}`, StatusSucceeded, nil},
		{"diantao business failure", "diantao-tripartite", `{"error_message":"xxx","error_info":"1001","is_success":false}`, StatusFailed,
			&ErrorInfo{Kind: KindBusiness, Code: "1001", Msg: "xxx"}},
		{"diantao flag missing", "diantao-tripartite", `{"error_info":"1001"}`, StatusFailed,
			&ErrorInfo{Kind: KindBusiness, Msg: "response has no is_success flag"}},
		{"omni no flag", "omni-saas", `{"trade_no":10309483976732423}`, StatusSucceeded, nil},
		{"omni empty", "omni-saas", `{}`, StatusSucceeded, nil},
		{"mos no flag", "mos-haiding", `{"oc_refund_no":"2021011000031231"}`, StatusSucceeded, nil},
		{"not an object", "tmall-aliauto", `[1]`, StatusFailed, &ErrorInfo{Kind: KindPlatform, Msg: "response is not a JSON object"}},
		{"not JSON", "icbu-trade", `<xml/>`, StatusFailed, &ErrorInfo{Kind: KindPlatform, Msg: "response is not a JSON object"}},
		{"empty body", "diantao-tripartite", ``, StatusFailed, &ErrorInfo{Kind: KindPlatform, Msg: "response is not a JSON object"}},
	}
	r := registry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := r.ByID(tt.channel)
			status, info := c.Interpret(topapi.Response{Body: []byte(tt.body)})
			if status != tt.wantStatus {
				t.Errorf("status = %q, want %q", status, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantErr, info); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorFromTOP(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want *ErrorInfo
	}{
		{"nil", nil, nil},
		{"page error example", &topapi.Error{Code: 50, Msg: "Remote service error", SubCode: "isv.invalid-parameter", SubMsg: "非法参数", RequestID: "r1"},
			&ErrorInfo{Kind: KindPlatform, Code: "50", Msg: "Remote service error", SubCode: "isv.invalid-parameter", SubMsg: "非法参数"}},
		{"wrapped", fmt.Errorf("call: %w", &topapi.Error{Code: 15, Msg: "Remote service error", SubCode: "isv.x"}),
			&ErrorInfo{Kind: KindPlatform, Code: "15", Msg: "Remote service error", SubCode: "isv.x"}},
		{"invalid session", &topapi.Error{Code: 27, Msg: "Invalid session"},
			&ErrorInfo{Kind: KindAuth, Code: "27", Msg: "Invalid session"}},
		{"transport", &topapi.Error{Msg: "post", Err: io.ErrUnexpectedEOF},
			&ErrorInfo{Kind: KindPlatform, Msg: "post: unexpected EOF"}},
		{"http status", &topapi.Error{Msg: "Bad Gateway", HTTPStatus: 502},
			&ErrorInfo{Kind: KindPlatform, Msg: "HTTP 502 Bad Gateway"}},
		{"other error", errors.New("context deadline exceeded"),
			&ErrorInfo{Kind: KindPlatform, Msg: "context deadline exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ErrorFromTOP(tt.err)); diff != "" {
				t.Errorf("ErrorFromTOP (-want +got):\n%s", diff)
			}
		})
	}
}

// TestErrorFromTOPClassified takes errors from the real client talking to a
// gateway that answers with the pages' error example and its isp.* cousin,
// so retryability comes from topapi's own classification.
func TestErrorFromTOPClassified(t *testing.T) {
	answers := map[string]string{
		"alibaba.omni.saas.order.create": `{"error_response":{"code":50,"msg":"Remote service error","sub_code":"isv.invalid-parameter","sub_msg":"非法参数","request_id":"r1"}}`,
		"alibaba.trade.order.create":     `{"error_response":{"code":15,"msg":"Remote service error","sub_code":"isp.top-remote-connection-timeout","request_id":"r2"}}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answers[r.Form.Get("method")])
	}))
	defer srv.Close()
	client, err := topapi.New(topapi.Config{Gateway: srv.URL, AppKey: "12345", AppSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()

	tests := []struct {
		method string
		want   *ErrorInfo
	}{
		{"alibaba.omni.saas.order.create",
			&ErrorInfo{Kind: KindPlatform, Code: "50", Msg: "Remote service error", SubCode: "isv.invalid-parameter", SubMsg: "非法参数", Retryable: false}},
		{"alibaba.trade.order.create",
			&ErrorInfo{Kind: KindPlatform, Code: "15", Msg: "Remote service error", SubCode: "isp.top-remote-connection-timeout", Retryable: true}},
	}
	for _, tt := range tests {
		_, err := client.Call(context.Background(), topapi.Request{Method: tt.method, Params: map[string]string{"x": "1"}})
		if err == nil {
			t.Fatalf("%s: Call succeeded", tt.method)
		}
		if diff := cmp.Diff(tt.want, ErrorFromTOP(err)); diff != "" {
			t.Errorf("%s: ErrorFromTOP (-want +got):\n%s", tt.method, diff)
		}
	}
}

func TestErrorFromValidation(t *testing.T) {
	tests := []struct {
		err  error
		want *ErrorInfo
	}{
		{nil, nil},
		{&FieldError{Path: "request.store_id", Reason: ReasonRequired},
			&ErrorInfo{Kind: KindValidation, Code: "missing", Msg: "request.store_id: required"}},
		{fmt.Errorf("prepare: %w", &FieldError{Path: "request.pay_channel", Reason: "must be one of ALIPAY, BANK_CARD"}),
			&ErrorInfo{Kind: KindValidation, Code: "invalid", Msg: "prepare: request.pay_channel: must be one of ALIPAY, BANK_CARD"}},
		{&FieldError{Reason: "value is empty"}, &ErrorInfo{Kind: KindValidation, Code: "invalid", Msg: "value is empty"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, ErrorFromValidation(tt.err)); diff != "" {
			t.Errorf("ErrorFromValidation(%v) (-want +got):\n%s", tt.err, diff)
		}
	}
}
