package topsim_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// fakeRules knows the five seed methods well enough for the simulator's
// tests: session needs per the channel table, a few required fields and the
// default idempotency keys. The real rules live in pkg/dispatch.
type fakeRules struct{}

type fieldErr struct{ path, reason string }

func (e *fieldErr) Error() string     { return e.path + ": " + e.reason }
func (e *fieldErr) FieldPath() string { return e.path }
func (e *fieldErr) Missing() bool     { return e.reason == "required" }

func missing(path string) error { return &fieldErr{path, "required"} }

func (fakeRules) NeedsSession(method string) (needs, known bool) {
	switch method {
	case "tmall.aliauto.trade.external.order.sycn", "alibaba.diantao.tripartite.order.info":
		return false, true
	case "alibaba.omni.saas.order.create", "alibaba.trade.order.create", "alibaba.mos.trade.open.haiding.order.sync":
		return true, true
	}
	return false, false
}

func (fakeRules) CheckParams(method string, p map[string]string) (string, error) {
	switch method {
	case "tmall.aliauto.trade.external.order.sycn":
		var req struct {
			IdempotentID string `json:"idempotent_id"`
		}
		if err := json.Unmarshal([]byte(p["sync_single_order_req"]), &req); err != nil && p["sync_single_order_req"] != "" {
			return "", &fieldErr{"sync_single_order_req", "not a JSON object"}
		}
		if req.IdempotentID == "" {
			return "", missing("sync_single_order_req.idempotent_id")
		}
		return req.IdempotentID, nil
	case "alibaba.omni.saas.order.create":
		for _, f := range []string{"goods_details", "buyer_id_type", "store_id", "pay_channel", "store_id_type", "request_no"} {
			if p[f] == "" {
				return "", missing(f)
			}
		}
		return p["request_no"], nil
	case "alibaba.trade.order.create":
		if p["param_order_create"] == "" {
			return "", missing("param_order_create")
		}
		h := sha256.Sum256([]byte(p["param_order_create"]))
		return hex.EncodeToString(h[:8]), nil
	case "alibaba.mos.trade.open.haiding.order.sync":
		var req struct {
			Order *struct {
				OutTradeNo string `json:"out_trade_no"`
			} `json:"order"`
			RefundOrder *struct {
				OutRefundNo string `json:"out_refund_no"`
			} `json:"refund_order"`
		}
		if p["order_sync_request"] == "" {
			return "", missing("order_sync_request")
		}
		if err := json.Unmarshal([]byte(p["order_sync_request"]), &req); err != nil {
			return "", &fieldErr{"order_sync_request", "not a JSON object"}
		}
		switch {
		case req.RefundOrder != nil && req.RefundOrder.OutRefundNo != "":
			return "refund:" + req.RefundOrder.OutRefundNo, nil
		case req.Order != nil && req.Order.OutTradeNo != "":
			return "order:" + req.Order.OutTradeNo, nil
		}
		return "", &fieldErr{"order_sync_request.order", "order and refund_order cannot both be empty"}
	case "alibaba.diantao.tripartite.order.info":
		var req struct {
			OutOrderID    string `json:"out_order_id"`
			TradeFinished *bool  `json:"trade_finished"`
		}
		_ = json.Unmarshal([]byte(p["tripartite_order_info_dto"]), &req)
		if req.OutOrderID == "" {
			return "", missing("tripartite_order_info_dto.out_order_id")
		}
		if req.TradeFinished == nil {
			return "", missing("tripartite_order_info_dto.trade_finished")
		}
		return req.OutOrderID + ":" + strconv.FormatBool(*req.TradeFinished), nil
	}
	return "", &fieldErr{"method", "unknown"}
}
