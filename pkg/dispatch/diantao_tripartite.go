package dispatch

import (
	"encoding/json"
	"reflect"
	"strconv"
)

// diantao-tripartite: alibaba.diantao.tripartite.order.info
// (点淘对接三方接受交易状态推送), seeds/004_9197c50a357ee698.txt: a third party
// pushes a trade-status change to Diantao (Taobao Live).

var diantaoSpec = &spec{
	id:        "diantao-tripartite",
	method:    "alibaba.diantao.tripartite.order.info",
	topic:     "orders.diantao-tripartite",
	session:   false, // client.execute(req)
	dedupedBy: "tripartite_order_info_dto.out_order_id",
	info:      mustStructInfo(reflect.TypeFor[DiantaoRequest]()),
	interpret: interpretDiantao,
}

// DiantaoRequest holds the business parameters of
// alibaba.diantao.tripartite.order.info.
//
// tripartite_order_info_dto is marked 可选 on the page, but it is the only
// parameter, all but one of its fields are 必须, and it holds the
// idempotency key, so an event without it is rejected.
type DiantaoRequest struct {
	TripartiteOrderInfoDTO DiantaoTripartiteOrderInfo `json:"tripartite_order_info_dto" check:"required"`
}

// DiantaoTripartiteOrderInfo is TripartiteOrderInfoDTO (交易订单流水). Extend is
// itself a JSON text (so it travels double-encoded); PayTime is epoch
// milliseconds; Amount is in fen.
type DiantaoTripartiteOrderInfo struct {
	Extend        string  `json:"extend" check:"required,json"`
	Amount        int64   `json:"amount" check:"required,nonneg"`
	Biz           string  `json:"biz" check:"required"`
	PhoneNumber   *string `json:"phone_number,omitempty"`
	OrderID       string  `json:"order_id" check:"required"`
	PayTime       int64   `json:"pay_time" check:"required,nonneg"`
	OutOrderID    string  `json:"out_order_id" check:"required"`
	BizScene      string  `json:"biz_scene" check:"required"`
	Appkey        string  `json:"appkey" check:"required"`
	TradeFinished bool    `json:"trade_finished" check:"required"`
	Title         string  `json:"title" check:"required"`
	UserID        string  `json:"user_id" check:"required"`
}

func (r *DiantaoRequest) rules(string) error { return nil }

// key: "<out_order_id>:<trade_finished>", one key per status change.
func (r *DiantaoRequest) key(root string) (string, error) {
	d := &r.TripartiteOrderInfoDTO
	k, err := keyPart(root, &d.OutOrderID, "tripartite_order_info_dto", "out_order_id")
	if err != nil {
		return "", err
	}
	return k + ":" + strconv.FormatBool(d.TradeFinished), nil
}

// interpretDiantao: is_success false → error_info / error_message.
func interpretDiantao(body json.RawMessage) (string, *ErrorInfo) {
	type response struct {
		IsSuccess    flag `json:"is_success"`
		ErrorInfo    text `json:"error_info"`
		ErrorMessage text `json:"error_message"`
	}
	return interpretFlag(body, func(r *response) (flag, text, text) {
		return r.IsSuccess, r.ErrorInfo, r.ErrorMessage
	}, "is_success")
}
