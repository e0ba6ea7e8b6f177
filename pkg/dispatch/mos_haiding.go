package dispatch

import (
	"fmt"
	"math/big"
	"reflect"
	"strings"
)

// mos-haiding: alibaba.mos.trade.open.haiding.order.sync (海鼎收单接口),
// seeds/003_11b8f935282b29a5.txt: forward orders and refunds from Intime's
// HaiDing POS. Amounts are integers in fen.

var haidingSpec = &spec{
	id:        "mos-haiding",
	method:    "alibaba.mos.trade.open.haiding.order.sync",
	topic:     "orders.mos-haiding",
	session:   true, // client.execute(req, sessionKey)
	dedupedBy: "order.out_trade_no, refund_order.out_refund_no",
	info:      mustStructInfo(reflect.TypeFor[HaidingRequest]()),
	interpret: interpretNoFlag, // oc_trade_no, out_trade_no, oc_refund_no
}

// HaidingRequest holds the business parameters of
// alibaba.mos.trade.open.haiding.order.sync.
type HaidingRequest struct {
	OrderSyncRequest HaidingOrderSyncRequest `json:"order_sync_request" check:"required"`
}

// HaidingOrderSyncRequest is HaiDingOrderSyncRequest (同步订单请求). Order and
// RefundOrder cannot both be empty (absent, null or {}).
type HaidingOrderSyncRequest struct {
	OrderPayments        []HaidingOrderPayment      `json:"order_payments" check:"required"`
	OrderItems           []HaidingOrderItem         `json:"order_items" check:"required"`
	Order                *HaidingOrder              `json:"order,omitempty"`
	OrderSharePromotions []HaidingOrderSharePayment `json:"order_share_promotions" check:"required"`
	RefundOrder          *HaidingRefundOrder        `json:"refund_order,omitempty"`
}

// HaidingOrderPayment is HaiDingOrderPaymentVO (支付单).
type HaidingOrderPayment struct {
	OutPaymentName *string `json:"out_payment_name,omitempty"`
	PaymentSubType *string `json:"payment_sub_type,omitempty"`
	OutPaymentNo   *string `json:"out_payment_no,omitempty"`
	PayLineNo      int64   `json:"pay_line_no" check:"required"`
	PaymentAmount  int64   `json:"payment_amount" check:"required,nonneg"`
	PaymentType    string  `json:"payment_type" check:"required"`
}

// HaidingOrderItem is HaiDingOrderItemVO (订单商品). Quantity is a string
// holding a non-negative decimal number.
type HaidingOrderItem struct {
	LineNo         int64   `json:"line_no" check:"required"`
	Quantity       string  `json:"quantity" check:"required,decimal,nonneg"`
	CounterNo      string  `json:"counter_no" check:"required"`
	ItemTitle      string  `json:"item_title" check:"required"`
	SalePrice      int64   `json:"sale_price" check:"required,nonneg"`
	OutID          string  `json:"out_id" check:"required"`
	Attributes     *string `json:"attributes,omitempty"`
	GoodsCode      *string `json:"goods_code,omitempty"`
	TagPrice       int64   `json:"tag_price" check:"required,nonneg"`
	DiscountAmount *int64  `json:"discount_amount,omitempty" check:"nonneg"`
}

// HaidingOrder is HaiDingOrderVO (订单). TotalFee, when given, must be
// Σ sale_price × quantity over order_items.
type HaidingOrder struct {
	StoreNo         *string `json:"store_no,omitempty"`
	PayTime         *string `json:"pay_time,omitempty" check:"date"`
	TotalFee        *int64  `json:"total_fee,omitempty" check:"nonneg"`
	Phone           *string `json:"phone,omitempty"`
	Subject         *string `json:"subject,omitempty"`
	OpenID          *int64  `json:"open_id,omitempty"`
	OutTradeNo      *string `json:"out_trade_no,omitempty"`
	Attributes      *string `json:"attributes,omitempty"`
	GmtCreate       *string `json:"gmt_create,omitempty" check:"date"`
	IsIntimeCounter *bool   `json:"is_intime_counter,omitempty"`
}

// HaidingOrderSharePayment is HaiDingOrderSharePaymentVO (支付分摊).
type HaidingOrderSharePayment struct {
	OutPaymentName *string `json:"out_payment_name,omitempty"`
	ItemLineNo     int64   `json:"item_line_no" check:"required"`
	PaymentSubType *string `json:"payment_sub_type,omitempty"`
	OutPaymentNo   *string `json:"out_payment_no,omitempty"`
	SplitAmount    int64   `json:"split_amount" check:"required,nonneg"`
	PayLineNo      int64   `json:"pay_line_no" check:"required"`
	PaymentType    string  `json:"payment_type" check:"required"`
}

// HaidingRefundOrder is HaiDingRefundOrderVO (退款订单).
type HaidingRefundOrder struct {
	GmtCreate       *string `json:"gmt_create,omitempty" check:"date"`
	OutTradeNo      *string `json:"out_trade_no,omitempty"`
	OutRefundNo     *string `json:"out_refund_no,omitempty"`
	StoreNo         *string `json:"store_no,omitempty"`
	Phone           *string `json:"phone,omitempty"`
	OpenID          *int64  `json:"open_id,omitempty"`
	RefundAmount    *int64  `json:"refund_amount,omitempty" check:"nonneg"`
	RefundTime      *string `json:"refund_time,omitempty" check:"date"`
	RefundReason    *string `json:"refund_reason,omitempty"`
	IsIntimeCounter *bool   `json:"is_intime_counter,omitempty"`
	Attributes      *string `json:"attributes,omitempty"`
}

func (o *HaidingOrder) empty() bool       { return o == nil || *o == HaidingOrder{} }
func (o *HaidingRefundOrder) empty() bool { return o == nil || *o == HaidingRefundOrder{} }

// rules: "订单和退款单不能同时为空" and "订单总金额(分) = sum(销售价 * 数量)".
func (r *HaidingRequest) rules(root string) error {
	o := &r.OrderSyncRequest
	if o.Order.empty() && o.RefundOrder.empty() {
		return &FieldError{Path: joinPath(root, "order_sync_request"),
			Reason: "order and refund_order cannot both be empty"}
	}
	if o.Order == nil || o.Order.TotalFee == nil {
		return nil
	}
	sum := new(big.Rat)
	for _, it := range o.OrderItems {
		q, ok := new(big.Rat).SetString(it.Quantity) // a checked decimal
		if !ok {
			return &FieldError{Path: joinPath(root, "order_sync_request", "order_items"), Reason: "bad quantity"}
		}
		sum.Add(sum, q.Mul(q, new(big.Rat).SetInt64(it.SalePrice)))
	}
	// A fractional quantity can make the exact sum a fraction of a fen: then
	// total_fee may be it rounded either way.
	fee := new(big.Rat).SetInt64(*o.Order.TotalFee)
	lo := new(big.Int).Quo(sum.Num(), sum.Denom()) // sum >= 0: truncation is floor
	ok := fee.Cmp(sum) == 0
	if !sum.IsInt() {
		ok = fee.Cmp(new(big.Rat).SetInt(lo)) == 0 || fee.Cmp(new(big.Rat).SetInt(lo.Add(lo, big.NewInt(1)))) == 0
	}
	if !ok {
		return &FieldError{Path: joinPath(root, "order_sync_request", "order", "total_fee"),
			Reason: fmt.Sprintf("must equal Σ sale_price × quantity of order_items (%s), not %d", ratString(sum), *o.Order.TotalFee)}
	}
	return nil
}

func ratString(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	return strings.TrimRight(r.FloatString(6), "0")
}

// key: "refund:<refund_order.out_refund_no>" for a refund (refund_order not
// empty), else "order:<order.out_trade_no>". Both numbers are optional on the
// page but required here unless the envelope carries idempotency_key.
func (r *HaidingRequest) key(root string) (string, error) {
	o := &r.OrderSyncRequest
	if !o.RefundOrder.empty() {
		k, err := keyPart(root, o.RefundOrder.OutRefundNo, "order_sync_request", "refund_order", "out_refund_no")
		return "refund:" + k, err
	}
	k, err := keyPart(root, o.Order.OutTradeNo, "order_sync_request", "order", "out_trade_no")
	return "order:" + k, err
}
