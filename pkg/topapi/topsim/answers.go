package topsim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
)

// The methods whose success answers the simulator shapes after their API
// pages; any other method Rules knows is answered with an empty object.
const (
	methodAliAuto  = "tmall.aliauto.trade.external.order.sycn"
	methodOmniSaaS = "alibaba.omni.saas.order.create"
	methodICBU     = "alibaba.trade.order.create"
	methodHaiDing  = "alibaba.mos.trade.open.haiding.order.sync"
	methodDianTao  = "alibaba.diantao.tripartite.order.info"
)

// PlatformID is the id the simulator gives the order of (method, key): a
// 16-digit number (below 2^53, so exact in JSON everywhere) derived from a
// SHA-256 of both, so a repeated call gets the same id.
func PlatformID(method, key string) int64 {
	h := sha256.Sum256([]byte(method + "\x00" + key))
	return 1_000_000_000_000_000 + int64(binary.BigEndian.Uint64(h[:8])%8_000_000_000_000_000)
}

// success builds the inner object of method's success answer (without
// request_id) in the shape of its API page.
func success(method, key string, params map[string]string) map[string]any {
	id := PlatformID(method, key)
	switch method {
	case methodAliAuto:
		return map[string]any{"result": map[string]any{
			"data":    map[string]any{"order_id": id},
			"success": true,
		}}
	case methodOmniSaaS:
		total, paid := omniAmounts(params)
		return map[string]any{"trade_no": id, "total_amount": total, "actual_pay_fee": paid}
	case methodICBU:
		tid := strconv.FormatInt(id, 10)
		return map[string]any{"result": map[string]any{
			"success": true,
			"value":   map[string]any{"trade_id": tid, "pay_url": "https://cashier.alibaba.com/?trade_id=" + tid},
		}}
	case methodHaiDing:
		return haidingAnswer(id, params)
	case methodDianTao:
		return map[string]any{"is_success": true}
	}
	return map[string]any{}
}

// omniAmounts is the order total (sum of price × quantity, in fen) and what
// is left to pay after the coupons, from the goods_details and coupon_infos
// parameters; unreadable entries count as 0.
func omniAmounts(params map[string]string) (total, paid int64) {
	var goods []struct {
		Price    string `json:"price"`
		Quantity string `json:"quantity"`
	}
	_ = json.Unmarshal([]byte(params["goods_details"]), &goods)
	var t float64
	for _, g := range goods {
		p, err1 := strconv.ParseFloat(g.Price, 64)
		q, err2 := strconv.ParseFloat(g.Quantity, 64)
		if err1 == nil && err2 == nil {
			t += p * q
		}
	}
	var coupons []struct {
		Discount int64 `json:"discount"`
	}
	_ = json.Unmarshal([]byte(params["coupon_infos"]), &coupons)
	total = int64(math.Round(t))
	paid = total
	for _, c := range coupons {
		paid -= c.Discount
	}
	return total, max(paid, 0)
}

// haidingAnswer answers a refund (refund_order.out_refund_no set) with
// oc_refund_no and a forward order with oc_trade_no.
func haidingAnswer(id int64, params map[string]string) map[string]any {
	var req struct {
		Order *struct {
			OutTradeNo string `json:"out_trade_no"`
		} `json:"order"`
		RefundOrder *struct {
			OutTradeNo  string `json:"out_trade_no"`
			OutRefundNo string `json:"out_refund_no"`
		} `json:"refund_order"`
	}
	_ = json.Unmarshal([]byte(params["order_sync_request"]), &req)
	oc := strconv.FormatInt(id, 10)
	if r := req.RefundOrder; r != nil && r.OutRefundNo != "" {
		return map[string]any{"oc_refund_no": oc, "out_trade_no": r.OutTradeNo}
	}
	out := ""
	if req.Order != nil {
		out = req.Order.OutTradeNo
	}
	return map[string]any{"oc_trade_no": oc, "out_trade_no": out}
}
