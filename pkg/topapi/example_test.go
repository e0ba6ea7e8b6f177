package topapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/ordersync/ordersync/pkg/topapi"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// omniRules is just enough of the channel rules for the example: one method
// that needs a session and whose idempotency key is request_no.
type omniRules struct{}

func (omniRules) NeedsSession(method string) (needs, known bool) {
	return true, method == "alibaba.omni.saas.order.create"
}

type missingField string

func (m missingField) Error() string     { return string(m) + ": required" }
func (m missingField) FieldPath() string { return string(m) }
func (missingField) Missing() bool       { return true }

func (omniRules) CheckParams(_ string, p map[string]string) (string, error) {
	if p["request_no"] == "" {
		return "", missingField("request_no")
	}
	return p["request_no"], nil
}

func ExampleClient_Call() {
	// A gateway simulator stands in for https://eco.taobao.com/router/rest.
	sim, err := topsim.New(topsim.Config{AppKey: "12345678", AppSecret: "helloworld", Rules: omniRules{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()

	c, err := topapi.New(topapi.Config{Gateway: srv.URL + "/router/rest", AppKey: "12345678", AppSecret: "helloworld"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseIdleConnections()

	req := topapi.Request{
		Method:  "alibaba.omni.saas.order.create",
		Session: "seller-session-key",
		Params: map[string]string{
			"goods_details": `[{"goods_id":"GD00001","price":"100","quantity":"10.0","id_type":"ITEM_SKU"}]`,
			"coupon_infos":  `[{"name":"满100减10元","discount":100,"option_id":"YH9527"}]`,
			"buyer_id_type": "TAOBAO", "store_id": "1047384", "pay_channel": "ALIPAY", "store_id_type": "PLACE",
			"request_no": "REQ-3436967",
		},
	}
	resp, err := c.Call(context.Background(), req)
	if err != nil {
		fmt.Println(err)
		return
	}
	var order struct {
		TradeNo      int64 `json:"trade_no"`
		TotalAmount  int64 `json:"total_amount"`
		ActualPayFee int64 `json:"actual_pay_fee"`
	}
	if err := json.Unmarshal(resp.Body, &order); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("same trade as the simulator's id for the key:", order.TradeNo == topsim.PlatformID(req.Method, "REQ-3436967"))
	fmt.Println("total", order.TotalAmount, "paid", order.ActualPayFee)

	// A platform error is a *topapi.Error that says whether to retry.
	delete(req.Params, "request_no")
	_, err = c.Call(context.Background(), req)
	var e *topapi.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.SubCode, "retryable:", e.Retryable())
	}
	// Output:
	// same trade as the simulator's id for the key: true
	// total 1000 paid 900
	// 41 isv.missing-parameter:request_no retryable: false
}
