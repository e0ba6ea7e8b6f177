package dispatch

import "reflect"

// omni-saas: alibaba.omni.saas.order.create (订单创建接口),
// seeds/001_a234913c91e413ac.txt. Every parameter is top-level; goods_details
// and coupon_infos are lists sent as JSON text, the rest plain strings.

var omniSaasSpec = &spec{
	id:        "omni-saas",
	method:    "alibaba.omni.saas.order.create",
	topic:     "orders.omni-saas",
	session:   true, // client.execute(req, sessionKey)
	dedupedBy: "request_no",
	info:      mustStructInfo(reflect.TypeFor[OmniSaasRequest]()),
	interpret: interpretNoFlag, // trade_no, total_amount, actual_pay_fee
}

// OmniSaasRequest holds the business parameters of
// alibaba.omni.saas.order.create.
type OmniSaasRequest struct {
	GoodsDetails []OmniGoodsDetail `json:"goods_details" check:"required,max=20"`
	// BuyerID is the Taobao member code, or the Alipay payment code when
	// paying with Alipay.
	BuyerID     *string          `json:"buyer_id,omitempty"`
	BuyerIDType string           `json:"buyer_id_type" check:"required,enum=ALIPAY|TAOBAO|MOBILE"`
	StoreID     string           `json:"store_id" check:"required"`
	Device      *string          `json:"device,omitempty"`
	DeviceNo    *string          `json:"device_no,omitempty"`
	OperatorID  *string          `json:"operator_id,omitempty"`
	PayChannel  string           `json:"pay_channel" check:"required,enum=ALIPAY|BANK_CARD"`
	CouponInfos []OmniCouponInfo `json:"coupon_infos,omitempty" check:"max=20"`
	StoreIDType string           `json:"store_id_type" check:"required,enum=PLACE|CUSTOM"`
	RequestNo   string           `json:"request_no" check:"required"` // 请求号: the idempotency key
}

// OmniGoodsDetail is GoodsDetail. Price (fen) and quantity are strings
// holding non-negative decimal numbers ("100", "10.0").
type OmniGoodsDetail struct {
	GoodsID  string `json:"goods_id" check:"required"`
	Price    string `json:"price" check:"required,decimal,nonneg"`
	Quantity string `json:"quantity" check:"required,decimal,nonneg"`
	IDType   string `json:"id_type" check:"required,enum=CUSTOM|ITEM_SKU"`
}

// OmniCouponInfo is CouponInfo (商家自有优惠). Discount is a number of fen.
type OmniCouponInfo struct {
	Name     *string `json:"name,omitempty"`
	Discount *int64  `json:"discount,omitempty" check:"nonneg"`
	OptionID *string `json:"option_id,omitempty"`
}

func (r *OmniSaasRequest) rules(string) error { return nil }

// key: request_no.
func (r *OmniSaasRequest) key(root string) (string, error) {
	return keyPart(root, &r.RequestNo, "request_no")
}
