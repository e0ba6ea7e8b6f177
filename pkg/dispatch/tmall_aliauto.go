package dispatch

import (
	"encoding/json"
	"reflect"
)

// tmall-aliauto: tmall.aliauto.trade.external.order.sycn (汽车外部订单创建接口),
// seeds/000_db9035eb2f813bc5.txt. The method name really is spelled "sycn".
//
// Wire structure from the Java example's setters: hide, source,
// idempotent_id and ext_info are set on SyncSingleOrderReq itself, not on
// buyer_info / order_info / pay_order_info where the flattened table shows
// them.

var aliautoSpec = &spec{
	id:        "tmall-aliauto",
	method:    "tmall.aliauto.trade.external.order.sycn",
	topic:     "orders.tmall-aliauto",
	session:   false, // client.execute(req)
	dedupedBy: "sync_single_order_req.idempotent_id",
	info:      mustStructInfo(reflect.TypeFor[AliautoRequest]()),
	interpret: interpretAliauto,
}

// AliautoRequest holds the business parameters of
// tmall.aliauto.trade.external.order.sycn.
//
// sync_single_order_req is marked 可选 on the page, but it is the only
// parameter and holds the required idempotent_id (the channel's idempotency
// key), so an event without it is rejected.
type AliautoRequest struct {
	SyncSingleOrderReq AliautoSyncSingleOrderReq `json:"sync_single_order_req" check:"required"`
}

// AliautoSyncSingleOrderReq is SyncSingleOrderReq (订单同步入参).
type AliautoSyncSingleOrderReq struct {
	BuyerInfo    *AliautoUserInfo     `json:"buyer_info,omitempty"`
	Hide         *bool                `json:"hide,omitempty"` // 是否买卖双方订单列表不可见
	OrderInfo    *AliautoOrderInfo    `json:"order_info,omitempty"`
	Source       *string              `json:"source,omitempty"` // 订单来源, e.g. YC_STORE
	ItemInfo     *AliautoItemInfo     `json:"item_info,omitempty"`
	SellerInfo   *AliautoUserInfo     `json:"seller_info,omitempty"`
	PayOrderInfo *AliautoPayOrderInfo `json:"pay_order_info,omitempty"`
	IdempotentID string               `json:"idempotent_id" check:"required"` // 幂等id
	ExtInfo      *string              `json:"ext_info,omitempty"`             // 扩展信息 (free text)
}

// AliautoUserInfo is UserInfo, used for buyer_info and seller_info.
type AliautoUserInfo struct {
	UserNick  *string `json:"user_nick,omitempty"`
	UserPhone *string `json:"user_phone,omitempty"`
	UserID    *int64  `json:"user_id,omitempty"`
}

// AliautoOrderInfo is OrderInfo. Amounts are in fen.
type AliautoOrderInfo struct {
	BizType    *int64  `json:"biz_type,omitempty"`
	PayTime    *string `json:"pay_time,omitempty" check:"date"`
	OutOrderID *string `json:"out_order_id,omitempty"`
	EndTime    *string `json:"end_time,omitempty" check:"date"`
	GmtCreate  *string `json:"gmt_create,omitempty" check:"date"`
	TotalFee   *int64  `json:"total_fee,omitempty" check:"nonneg"`
}

// AliautoItemInfo is ItemInfo. item_price is in fen.
type AliautoItemInfo struct {
	ItemID     *int64  `json:"item_id,omitempty"`
	ItemTitle  *string `json:"item_title,omitempty"`
	RootCat    *int64  `json:"root_cat,omitempty"`
	ItemPrice  *int64  `json:"item_price,omitempty" check:"nonneg"`
	CategoryID *int64  `json:"category_id,omitempty"`
	BuyAmount  *int64  `json:"buy_amount,omitempty" check:"nonneg"`
}

// AliautoPayOrderInfo is PayOrderInfo.
type AliautoPayOrderInfo struct {
	Channel    *string `json:"channel,omitempty"`
	PayOrderID *string `json:"pay_order_id,omitempty"`
}

func (r *AliautoRequest) rules(string) error { return nil }

// key: sync_single_order_req.idempotent_id.
func (r *AliautoRequest) key(root string) (string, error) {
	return keyPart(root, &r.SyncSingleOrderReq.IdempotentID, "sync_single_order_req", "idempotent_id")
}

// interpretAliauto: result.success false → msg_code / msg_info.
func interpretAliauto(body json.RawMessage) (string, *ErrorInfo) {
	type response struct {
		Result struct {
			Success flag `json:"success"`
			MsgCode text `json:"msg_code"`
			MsgInfo text `json:"msg_info"`
		} `json:"result"`
	}
	return interpretFlag(body, func(r *response) (flag, text, text) {
		return r.Result.Success, r.Result.MsgCode, r.Result.MsgInfo
	}, "result.success")
}
