package dispatch

import (
	"encoding/json"
	"reflect"
)

// icbu-trade: alibaba.trade.order.create (国际站信保下单),
// seeds/002_03b9c079a263e3c6.txt.
//
// Wire structure from the Java example's setters (the flattened table puts
// several children one level off):
//
//	OrderCreateRequest: logistics_detail, fulfillment_channel, payment_detail,
//	  third_party_channel, target_participant, remark, product_list, biz_code,
//	  operator_email
//	LogisticsDetail: shipment_address, shipment_method, trade_term, carrier,
//	  carrier_code, shipment_date
//	Address: zip, country, address, city, province_code, city_code,
//	  contact_person, telephone, port_code, province, port, country_code,
//	  alternate_address, fax
//	ShipmentDate: duration, date, type
//
// Amounts are decimal strings in the order currency.

var icbuTradeSpec = &spec{
	id:           "icbu-trade",
	method:       "alibaba.trade.order.create",
	topic:        "orders.icbu-trade",
	session:      true, // client.execute(req, sessionKey)
	info:         mustStructInfo(reflect.TypeFor[IcbuTradeRequest]()),
	keyFromEvent: true, // no natural key in the request: idempotency_key, else event_id
	// dedupedBy: none — the platform sees no idempotency field, so a failed call that may have
	// been executed is ambiguous and is not repeated (docs/ARCHITECTURE.md, "Failure classes").
	interpret: interpretIcbu,
}

// IcbuTradeRequest holds the business parameters of alibaba.trade.order.create.
type IcbuTradeRequest struct {
	ParamOrderCreate IcbuOrderCreateRequest `json:"param_order_create" check:"required"`
}

// IcbuOrderCreateRequest is OrderCreateRequest (订单创建参数).
type IcbuOrderCreateRequest struct {
	LogisticsDetail    IcbuLogisticsDetail `json:"logistics_detail" check:"required"`
	FulfillmentChannel *string             `json:"fulfillment_channel,omitempty"`
	PaymentDetail      IcbuPaymentDetail   `json:"payment_detail" check:"required"`
	ThirdPartyChannel  *string             `json:"third_party_channel,omitempty"`
	TargetParticipant  IcbuParticipant     `json:"target_participant" check:"required"`
	Remark             *string             `json:"remark,omitempty"`
	ProductList        []IcbuProduct       `json:"product_list" check:"required"`
	BizCode            string              `json:"biz_code" check:"required"`
	OperatorEmail      *string             `json:"operator_email,omitempty"`
}

// IcbuLogisticsDetail is LogisticsDetail (物流详情).
type IcbuLogisticsDetail struct {
	ShipmentAddress IcbuAddress      `json:"shipment_address" check:"required"`
	ShipmentMethod  string           `json:"shipment_method" check:"required"` // sea, air, express...
	TradeTerm       string           `json:"trade_term" check:"required"`      // FOB...
	Carrier         *string          `json:"carrier,omitempty"`
	CarrierCode     *string          `json:"carrier_code,omitempty"`
	ShipmentDate    IcbuShipmentDate `json:"shipment_date" check:"required"`
}

// IcbuAddress is Address (收货地址); telephone and fax belong here.
type IcbuAddress struct {
	Zip              *string    `json:"zip,omitempty"`
	Country          string     `json:"country" check:"required"`
	Address          string     `json:"address" check:"required"`
	City             string     `json:"city" check:"required"`
	ProvinceCode     *string    `json:"province_code,omitempty"`
	CityCode         *string    `json:"city_code,omitempty"`
	ContactPerson    string     `json:"contact_person" check:"required"`
	Telephone        IcbuPhone  `json:"telephone" check:"required"`
	PortCode         *string    `json:"port_code,omitempty"`
	Province         *string    `json:"province,omitempty"`
	Port             *string    `json:"port,omitempty"`
	CountryCode      *string    `json:"country_code,omitempty"`
	AlternateAddress *string    `json:"alternate_address,omitempty"`
	Fax              *IcbuPhone `json:"fax,omitempty"`
}

// IcbuPhone is Phone, used for telephone and fax.
type IcbuPhone struct {
	Area    *string `json:"area,omitempty"`
	Country *string `json:"country,omitempty"`
	Number  *string `json:"number,omitempty"`
}

// IcbuShipmentDate is ShipmentDate (发货日期). Type is relative (days after
// the advance payment), relative_balance (days after the balance) or
// absolute (a date). The page's example value
// "relative/relative_balance/absolute" lists the choices and is rejected.
type IcbuShipmentDate struct {
	Duration *int64      `json:"duration,omitempty" check:"nonneg"`
	Date     *IcbuDateVo `json:"date,omitempty"`
	Type     *string     `json:"type,omitempty" check:"enum=relative|relative_balance|absolute"`
}

// IcbuDateVo is DateVo (绝对日期).
type IcbuDateVo struct {
	FormatDate *string `json:"format_date,omitempty"`
	TimeStamp  *int64  `json:"time_stamp,omitempty" check:"nonneg"`
}

// IcbuPaymentDetail is PaymentDetail (支付详情): non-negative decimal strings.
type IcbuPaymentDetail struct {
	ShipmentFee           string  `json:"shipment_fee" check:"required,decimal,nonneg"`
	TotalAmount           string  `json:"total_amount" check:"required,decimal,nonneg"`
	ProductAmount         string  `json:"product_amount" check:"required,decimal,nonneg"`
	ShipmentInsuranceFee  string  `json:"shipment_insurance_fee" check:"required,decimal,nonneg"`
	InitialAmount         string  `json:"initial_amount" check:"required,decimal,nonneg"`
	ValueAddServiceAmount *string `json:"value_add_service_amount,omitempty" check:"decimal,nonneg"`
	TaxAmount             *string `json:"tax_amount,omitempty" check:"decimal,nonneg"`
	Currency              *string `json:"currency,omitempty"`
}

// IcbuParticipant is Participant (交易对方信息).
type IcbuParticipant struct {
	LoginID *string `json:"login_id,omitempty"`
	Email   *string `json:"email,omitempty"`
}

// IcbuProduct is TradeEcologyOrderProduct. The page gives properties (扩展属性)
// no type, only the example {"key":"value"}: it is taken as an object of
// strings.
type IcbuProduct struct {
	ProductID        *int64            `json:"product_id,omitempty"`
	Name             string            `json:"name" check:"required"`
	SkuID            string            `json:"sku_id" check:"required"` // "-1" when none
	Unit             string            `json:"unit" check:"required"`
	Quantity         string            `json:"quantity" check:"required,decimal,nonneg"`
	UnitPriceStr     string            `json:"unit_price_str" check:"required,decimal,nonneg"`
	Currency         *string           `json:"currency,omitempty"`
	EncryptProductID string            `json:"encrypt_product_id" check:"required"`
	ProductImage     *string           `json:"product_image,omitempty"`
	Properties       map[string]string `json:"properties,omitempty"`
}

func (r *IcbuTradeRequest) rules(string) error { return nil }

// key: the request has no natural key; Prepare uses the envelope.
func (r *IcbuTradeRequest) key(string) (string, error) { return "", nil }

// interpretIcbu: result.success false → error_code / error_message; the
// created order is result.value {trade_id, pay_url}.
func interpretIcbu(body json.RawMessage) (string, *ErrorInfo) {
	type response struct {
		Result struct {
			Success      flag `json:"success"`
			ErrorCode    text `json:"error_code"`
			ErrorMessage text `json:"error_message"`
		} `json:"result"`
	}
	return interpretFlag(body, func(r *response) (flag, text, text) {
		return r.Result.Success, r.Result.ErrorCode, r.Result.ErrorMessage
	}, "result.success")
}
