package dispatch

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// vcase edits a channel's seed event and expects Prepare to accept it
// (want == "") or to fail with exactly want ("path: reason").
type vcase struct {
	name    string
	channel string
	changes []string // path, JSON value pairs; deleteValue removes
	want    string
}

func runValidation(t *testing.T, tests []vcase) {
	t.Helper()
	r := registry(t)
	for _, tt := range tests {
		t.Run(tt.channel+"/"+tt.name, func(t *testing.T) {
			c, _ := r.ByID(tt.channel)
			env := mustDecode(t, edit(t, tt.channel, tt.changes...))
			_, err := c.Prepare(env)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Prepare: %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Prepare succeeded, want %q", tt.want)
			}
			fe := fieldErr(t, err)
			if got := fe.Error(); got != tt.want {
				t.Errorf("error = %q, want %q", got, tt.want)
			}
			if wantPath, _, _ := strings.Cut(tt.want, ": "); fe.FieldPath() != wantPath {
				t.Errorf("FieldPath = %q, want %q", fe.FieldPath(), wantPath)
			}
		})
	}
}

func TestStrictDecoding(t *testing.T) {
	runValidation(t, []vcase{
		{"seed", "omni-saas", nil, ""},
		{"unknown top-level parameter", "omni-saas", []string{"request.buyer_nick", `"x"`},
			"request.buyer_nick: unknown field"},
		{"unknown nested field", "omni-saas", []string{"request.goods_details[0].colour", `"red"`},
			"request.goods_details[0].colour: unknown field"},
		{"unknown field deep", "icbu-trade", []string{"request.param_order_create.logistics_detail.shipment_address.telephone.ext", `"1"`},
			"request.param_order_create.logistics_detail.shipment_address.telephone.ext: unknown field"},
		// The flattened table shows hide under buyer_info; the Java example sets
		// it on SyncSingleOrderReq.
		{"aliauto hide on buyer_info", "tmall-aliauto", []string{"request.sync_single_order_req.buyer_info.hide", "true"},
			"request.sync_single_order_req.buyer_info.hide: unknown field"},
		{"aliauto idempotent_id on pay_order_info", "tmall-aliauto", []string{"request.sync_single_order_req.pay_order_info.idempotent_id", `"k"`},
			"request.sync_single_order_req.pay_order_info.idempotent_id: unknown field"},
		{"aliauto source on order_info", "tmall-aliauto", []string{"request.sync_single_order_req.order_info.source", `"YC_STORE"`},
			"request.sync_single_order_req.order_info.source: unknown field"},
		{"icbu telephone on logistics_detail", "icbu-trade", []string{"request.param_order_create.logistics_detail.telephone", `{}`},
			"request.param_order_create.logistics_detail.telephone: unknown field"},
		{"icbu shipment_date type on date", "icbu-trade", []string{"request.param_order_create.logistics_detail.shipment_date.date.type", `"absolute"`},
			"request.param_order_create.logistics_detail.shipment_date.date.type: unknown field"},
		{"icbu remark on target_participant", "icbu-trade", []string{"request.param_order_create.target_participant.remark", `"x"`},
			"request.param_order_create.target_participant.remark: unknown field"},
		{"icbu biz_code on product", "icbu-trade", []string{"request.param_order_create.product_list[0].biz_code", `"1"`},
			"request.param_order_create.product_list[0].biz_code: unknown field"},
		{"diantao field at top level", "diantao-tripartite", []string{"request.out_order_id", `"1"`},
			"request.out_order_id: unknown field"},

		{"string given a number", "omni-saas", []string{"request.goods_details[0].price", "100"},
			"request.goods_details[0].price: must be a string"},
		{"number given a string", "omni-saas", []string{"request.coupon_infos[0].discount", `"100"`},
			"request.coupon_infos[0].discount: must be a number"},
		{"integer given a fraction", "omni-saas", []string{"request.coupon_infos[0].discount", "1.5"},
			"request.coupon_infos[0].discount: must be an integer"},
		{"integer given 1.0", "omni-saas", []string{"request.coupon_infos[0].discount", "100.0"},
			"request.coupon_infos[0].discount: must be an integer"},
		{"integer given an exponent", "omni-saas", []string{"request.coupon_infos[0].discount", "1e2"},
			"request.coupon_infos[0].discount: must be an integer"},
		{"int64 max", "tmall-aliauto", []string{"request.sync_single_order_req.item_info.item_id", "9223372036854775807"}, ""},
		{"int64 min", "tmall-aliauto", []string{"request.sync_single_order_req.item_info.item_id", "-9223372036854775808"}, ""},
		{"beyond int64", "tmall-aliauto", []string{"request.sync_single_order_req.item_info.item_id", "9223372036854775808"},
			"request.sync_single_order_req.item_info.item_id: out of int64 range"},
		{"beyond float64", "icbu-trade", []string{"request.param_order_create.product_list[0].product_id", "1" + strings.Repeat("0", 400)},
			"request.param_order_create.product_list[0].product_id: out of int64 range"},
		{"boolean given a string", "tmall-aliauto", []string{"request.sync_single_order_req.hide", `"true"`},
			"request.sync_single_order_req.hide: must be a boolean"},
		{"boolean given a number", "diantao-tripartite", []string{"request.tripartite_order_info_dto.trade_finished", "1"},
			"request.tripartite_order_info_dto.trade_finished: must be a boolean"},
		{"object given an array", "tmall-aliauto", []string{"request.sync_single_order_req.buyer_info", "[]"},
			"request.sync_single_order_req.buyer_info: must be an object"},
		{"object given a string", "mos-haiding", []string{"request.order_sync_request", `"{}"`},
			"request.order_sync_request: must be an object"},
		{"list given an object", "omni-saas", []string{"request.goods_details", "{}"},
			"request.goods_details: must be an array"},
		{"list element not an object", "omni-saas", []string{"request.goods_details[0]", `"GD00001"`},
			"request.goods_details[0]: must be an object"},
		{"list element null", "mos-haiding", []string{"request.order_sync_request.order_items[0]", "null"},
			"request.order_sync_request.order_items[0]: must be an object"},
		{"string map", "icbu-trade", []string{"request.param_order_create.product_list[0].properties", `{"key":"value","color":"red"}`}, ""},
		{"string map with a number", "icbu-trade", []string{"request.param_order_create.product_list[0].properties", `{"key":1}`},
			"request.param_order_create.product_list[0].properties.key: must be a string"},
		{"string map odd key", "icbu-trade", []string{"request.param_order_create.product_list[0].properties", `{"a b":1}`},
			`request.param_order_create.product_list[0].properties["a b"]: must be a string`},
		{"null optional is absent", "omni-saas", []string{"request.buyer_id", "null"}, ""},
		{"null optional object is absent", "tmall-aliauto", []string{"request.sync_single_order_req.item_info", "null"}, ""},
		{"null required", "omni-saas", []string{"request.store_id", "null"}, "request.store_id: required"},
		{"empty optional object", "tmall-aliauto", []string{"request.sync_single_order_req.seller_info", "{}"}, ""},
		{"request empty", "omni-saas", []string{"request", "{}"}, "request.goods_details: required"},
	})
}

// Structural problems the edit helper cannot express.
func TestStrictDecodingRaw(t *testing.T) {
	tests := []struct {
		name    string
		channel string
		value   string
		want    string
	}{
		{"duplicate field", "diantao-tripartite",
			`{"event_id":"e","request":{"tripartite_order_info_dto":{"amount":1,"amount":2}}}`,
			"request.tripartite_order_info_dto.amount: duplicate field"},
		{"unknown key needing quotes", "omni-saas",
			`{"event_id":"e","request":{"goods_details":[{"goods.id":"x"}]}}`,
			`request.goods_details[0]["goods.id"]: unknown field`},
		{"first problem in document order", "diantao-tripartite",
			`{"event_id":"e","request":{"tripartite_order_info_dto":{"amount":-1,"zzz":1}}}`,
			"request.tripartite_order_info_dto.amount: must not be negative"},
		{"structure before required", "diantao-tripartite",
			`{"event_id":"e","request":{"tripartite_order_info_dto":{"zzz":1}}}`,
			"request.tripartite_order_info_dto.zzz: unknown field"},
		{"required in field order", "diantao-tripartite",
			`{"event_id":"e","request":{"tripartite_order_info_dto":{}}}`,
			"request.tripartite_order_info_dto.extend: required"},
		{"escaped key", "omni-saas",
			`{"event_id":"e","request":{"goods_detail\u0073":[{"goods_id":1}]}}`,
			"request.goods_details[0].goods_id: must be a string"},
	}
	r := registry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := r.ByID(tt.channel)
			_, err := c.Prepare(mustDecode(t, []byte(tt.value)))
			if err == nil {
				t.Fatalf("Prepare succeeded, want %q", tt.want)
			}
			if got := fieldErr(t, err).Error(); got != tt.want {
				t.Errorf("error = %q, want %q", got, tt.want)
			}
		})
	}
}

// requiredFields are the fields each page marks 必须, transcribed from the
// pages (paths under request, list elements at [0]) — independent of the
// struct tags, which TestRequiredMatchesTags compares with them.
var requiredFields = map[string][]string{
	"tmall-aliauto": {
		"sync_single_order_req", // 可选 on the page; see AliautoRequest
		"sync_single_order_req.idempotent_id",
	},
	"omni-saas": {
		"goods_details", "goods_details[0].goods_id", "goods_details[0].price", "goods_details[0].quantity",
		"goods_details[0].id_type", "buyer_id_type", "store_id", "pay_channel", "store_id_type", "request_no",
	},
	"icbu-trade": {
		"param_order_create",
		"param_order_create.logistics_detail",
		"param_order_create.logistics_detail.shipment_address",
		"param_order_create.logistics_detail.shipment_address.country",
		"param_order_create.logistics_detail.shipment_address.address",
		"param_order_create.logistics_detail.shipment_address.city",
		"param_order_create.logistics_detail.shipment_address.contact_person",
		"param_order_create.logistics_detail.shipment_address.telephone",
		"param_order_create.logistics_detail.shipment_method",
		"param_order_create.logistics_detail.trade_term",
		"param_order_create.logistics_detail.shipment_date",
		"param_order_create.payment_detail",
		"param_order_create.payment_detail.shipment_fee",
		"param_order_create.payment_detail.total_amount",
		"param_order_create.payment_detail.product_amount",
		"param_order_create.payment_detail.shipment_insurance_fee",
		"param_order_create.payment_detail.initial_amount",
		"param_order_create.target_participant",
		"param_order_create.product_list",
		"param_order_create.product_list[0].name",
		"param_order_create.product_list[0].sku_id",
		"param_order_create.product_list[0].unit",
		"param_order_create.product_list[0].quantity",
		"param_order_create.product_list[0].unit_price_str",
		"param_order_create.product_list[0].encrypt_product_id",
		"param_order_create.biz_code",
	},
	"mos-haiding": {
		"order_sync_request",
		"order_sync_request.order_payments",
		"order_sync_request.order_payments[0].pay_line_no",
		"order_sync_request.order_payments[0].payment_amount",
		"order_sync_request.order_payments[0].payment_type",
		"order_sync_request.order_items",
		"order_sync_request.order_items[0].line_no",
		"order_sync_request.order_items[0].quantity",
		"order_sync_request.order_items[0].counter_no",
		"order_sync_request.order_items[0].item_title",
		"order_sync_request.order_items[0].sale_price",
		"order_sync_request.order_items[0].out_id",
		"order_sync_request.order_items[0].tag_price",
		"order_sync_request.order_share_promotions",
		"order_sync_request.order_share_promotions[0].item_line_no",
		"order_sync_request.order_share_promotions[0].split_amount",
		"order_sync_request.order_share_promotions[0].pay_line_no",
		"order_sync_request.order_share_promotions[0].payment_type",
	},
	"diantao-tripartite": {
		"tripartite_order_info_dto", // 可选 on the page; see DiantaoRequest
		"tripartite_order_info_dto.extend",
		"tripartite_order_info_dto.amount",
		"tripartite_order_info_dto.biz",
		"tripartite_order_info_dto.order_id",
		"tripartite_order_info_dto.pay_time",
		"tripartite_order_info_dto.out_order_id",
		"tripartite_order_info_dto.biz_scene",
		"tripartite_order_info_dto.appkey",
		"tripartite_order_info_dto.trade_finished",
		"tripartite_order_info_dto.title",
		"tripartite_order_info_dto.user_id",
	},
}

// keyFields are optional on the page but hold the channel's idempotency key.
var keyFields = map[string]string{
	"mos-haiding": "order_sync_request.refund_order.out_refund_no",
}

// TestRequired deletes every field of every seed event in turn: a required
// field must be reported missing at its path, any other field may go.
func TestRequired(t *testing.T) {
	r := registry(t)
	for _, id := range ChannelIDs() {
		c, _ := r.ByID(id)
		req := decodeJSON(t, seed(t, id)).(map[string]any)["request"]
		for _, path := range leafAndObjectPaths(req, "") {
			t.Run(id+"/"+path, func(t *testing.T) {
				env := mustDecode(t, edit(t, id, "request."+path, deleteValue))
				_, err := c.Prepare(env)
				switch {
				case slices.Contains(requiredFields[id], path), keyFields[id] == path:
					if err == nil {
						t.Fatal("Prepare succeeded, want required")
					}
					fe := fieldErr(t, err)
					if want := "request." + path; fe.Path != want || !fe.Missing() {
						t.Errorf("error = %v (missing %v), want %s: required", fe, fe.Missing(), want)
					}
				case strings.HasPrefix(path, "order_sync_request.refund_order") && strings.Count(path, ".") == 1:
					// Without the refund the key is the order's: still valid.
					if err != nil {
						t.Errorf("Prepare: %v", err)
					}
				default:
					if err != nil {
						t.Errorf("Prepare: %v, want an optional field", err)
					}
				}
			})
		}
	}
}

// leafAndObjectPaths lists the path of every member and list element below
// v, in the edit helper's syntax.
func leafAndObjectPaths(v any, prefix string) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out = append(out, p)
			out = append(out, leafAndObjectPaths(x[k], p)...)
		}
	case []any:
		for i, e := range x {
			out = append(out, leafAndObjectPaths(e, fmt.Sprintf("%s[%d]", prefix, i))...)
		}
	}
	return out
}

// TestRequiredMatchesTags checks the struct tags against the transcription
// of the pages.
func TestRequiredMatchesTags(t *testing.T) {
	for _, id := range ChannelIDs() {
		c := channel(t, id)
		var got []string
		var walk func(si *structInfo, prefix string)
		walk = func(si *structInfo, prefix string) {
			for _, f := range si.fields {
				p := f.name
				if prefix != "" {
					p = prefix + "." + f.name
				}
				if f.rule.required {
					got = append(got, p)
				}
				if f.kind == kindList {
					p += "[0]"
				}
				if f.elem != nil {
					walk(f.elem, p)
				}
			}
		}
		walk(c.spec.info, "")
		want := slices.Clone(requiredFields[id])
		slices.Sort(got)
		slices.Sort(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s required fields (-page +tags):\n%s", id, diff)
		}
	}
}

func TestBlankRequired(t *testing.T) {
	runValidation(t, []vcase{
		{"empty string", "omni-saas", []string{"request.request_no", `""`}, "request.request_no: required"},
		{"blank string", "omni-saas", []string{"request.store_id", `"  "`}, "request.store_id: required"},
		{"empty nested string", "icbu-trade", []string{"request.param_order_create.product_list[0].sku_id", `""`},
			"request.param_order_create.product_list[0].sku_id: required"},
		{"empty required list", "omni-saas", []string{"request.goods_details", "[]"},
			"request.goods_details: must not be empty"},
		{"empty required list nested", "mos-haiding", []string{"request.order_sync_request.order_share_promotions", "[]"},
			"request.order_sync_request.order_share_promotions: must not be empty"},
		{"empty optional list", "omni-saas", []string{"request.coupon_infos", "[]"}, ""},
		{"required object may be empty", "icbu-trade", []string{"request.param_order_create.target_participant", "{}"}, ""},
		{"required bool false", "diantao-tripartite", []string{"request.tripartite_order_info_dto.trade_finished", "false"}, ""},
		{"required number zero", "diantao-tripartite", []string{"request.tripartite_order_info_dto.amount", "0"}, ""},
	})
}

func TestEnums(t *testing.T) {
	runValidation(t, []vcase{
		{"buyer_id_type ALIPAY", "omni-saas", []string{"request.buyer_id_type", `"ALIPAY"`}, ""},
		{"buyer_id_type TAOBAO", "omni-saas", []string{"request.buyer_id_type", `"TAOBAO"`}, ""},
		{"buyer_id_type MOBILE", "omni-saas", []string{"request.buyer_id_type", `"MOBILE"`}, ""},
		{"buyer_id_type other", "omni-saas", []string{"request.buyer_id_type", `"WECHAT"`},
			"request.buyer_id_type: must be one of ALIPAY, TAOBAO, MOBILE"},
		{"buyer_id_type lower case", "omni-saas", []string{"request.buyer_id_type", `"taobao"`},
			"request.buyer_id_type: must be one of ALIPAY, TAOBAO, MOBILE"},
		{"pay_channel ALIPAY", "omni-saas", []string{"request.pay_channel", `"ALIPAY"`}, ""},
		{"pay_channel BANK_CARD", "omni-saas", []string{"request.pay_channel", `"BANK_CARD"`}, ""},
		{"pay_channel other", "omni-saas", []string{"request.pay_channel", `"CASH"`},
			"request.pay_channel: must be one of ALIPAY, BANK_CARD"},
		{"store_id_type PLACE", "omni-saas", []string{"request.store_id_type", `"PLACE"`}, ""},
		{"store_id_type CUSTOM", "omni-saas", []string{"request.store_id_type", `"CUSTOM"`}, ""},
		{"store_id_type other", "omni-saas", []string{"request.store_id_type", `"STORE"`},
			"request.store_id_type: must be one of PLACE, CUSTOM"},
		{"id_type CUSTOM", "omni-saas", []string{"request.goods_details[0].id_type", `"CUSTOM"`}, ""},
		{"id_type ITEM_SKU", "omni-saas", []string{"request.goods_details[0].id_type", `"ITEM_SKU"`}, ""},
		{"id_type other", "omni-saas", []string{"request.goods_details[0].id_type", `"SKU"`},
			"request.goods_details[0].id_type: must be one of CUSTOM, ITEM_SKU"},
		{"shipment type relative", "icbu-trade", []string{"request.param_order_create.logistics_detail.shipment_date.type", `"relative"`}, ""},
		{"shipment type relative_balance", "icbu-trade", []string{"request.param_order_create.logistics_detail.shipment_date.type", `"relative_balance"`}, ""},
		{"shipment type absolute", "icbu-trade", []string{"request.param_order_create.logistics_detail.shipment_date.type", `"absolute"`}, ""},
		// The page's example value lists the choices; it is not one of them.
		{"shipment type page example", "icbu-trade", []string{"request.param_order_create.logistics_detail.shipment_date.type", `"relative/relative_balance/absolute"`},
			"request.param_order_create.logistics_detail.shipment_date.type: must be one of relative, relative_balance, absolute"},
	})
}

// list returns a JSON array of n copies of elem.
func list(n int, elem string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(elem+",", n), ",") + "]"
}

func TestListLimits(t *testing.T) {
	goods := `{"goods_id":"GD00001","price":"100","quantity":"1","id_type":"CUSTOM"}`
	coupon := `{"name":"c","discount":1}`
	runValidation(t, []vcase{
		{"goods_details 1", "omni-saas", []string{"request.goods_details", list(1, goods)}, ""},
		{"goods_details 20", "omni-saas", []string{"request.goods_details", list(20, goods)}, ""},
		{"goods_details 21", "omni-saas", []string{"request.goods_details", list(21, goods)},
			"request.goods_details: more than 20 elements"},
		{"coupon_infos 20", "omni-saas", []string{"request.coupon_infos", list(20, coupon)}, ""},
		{"coupon_infos 21", "omni-saas", []string{"request.coupon_infos", list(21, coupon)},
			"request.coupon_infos: more than 20 elements"},
		{"error in element 4", "omni-saas", []string{"request.goods_details", list(3, goods)[:len(list(3, goods))-1] + `,{"goods_id":"x","quantity":"1","id_type":"CUSTOM"}]`},
			"request.goods_details[3].price: required"},
		{"no limit on product_list", "icbu-trade", []string{"request.param_order_create.product_list",
			list(50, `{"name":"n","sku_id":"-1","unit":"set","quantity":"1","unit_price_str":"2","encrypt_product_id":"X"}`)}, ""},
	})
}

func TestDates(t *testing.T) {
	const payTime = "request.sync_single_order_req.order_info.pay_time"
	runValidation(t, []vcase{
		{"valid", "tmall-aliauto", []string{payTime, `"2024-02-29 23:59:59"`}, ""},
		{"ISO 8601", "tmall-aliauto", []string{payTime, `"2022-05-01T12:30:50"`}, payTime + ": not yyyy-MM-dd HH:mm:ss"},
		{"RFC 3339", "tmall-aliauto", []string{payTime, `"2022-05-01T12:30:50+08:00"`}, payTime + ": not yyyy-MM-dd HH:mm:ss"},
		{"date only", "tmall-aliauto", []string{payTime, `"2022-05-01"`}, payTime + ": not yyyy-MM-dd HH:mm:ss"},
		{"fraction", "tmall-aliauto", []string{payTime, `"2022-05-01 12:30:50.123"`}, payTime + ": not yyyy-MM-dd HH:mm:ss"},
		{"month 13", "tmall-aliauto", []string{payTime, `"2022-13-01 12:30:50"`}, payTime + ": not yyyy-MM-dd HH:mm:ss"},
		{"not a leap year", "tmall-aliauto", []string{payTime, `"2023-02-29 12:30:50"`}, payTime + ": not yyyy-MM-dd HH:mm:ss"},
		{"empty", "tmall-aliauto", []string{payTime, `""`}, payTime + ": not yyyy-MM-dd HH:mm:ss"},
		{"epoch number", "tmall-aliauto", []string{payTime, "1651379450"}, payTime + ": must be a string"},
		{"end_time", "tmall-aliauto", []string{"request.sync_single_order_req.order_info.end_time", `"x"`},
			"request.sync_single_order_req.order_info.end_time: not yyyy-MM-dd HH:mm:ss"},
		{"gmt_create", "tmall-aliauto", []string{"request.sync_single_order_req.order_info.gmt_create", `"x"`},
			"request.sync_single_order_req.order_info.gmt_create: not yyyy-MM-dd HH:mm:ss"},
		{"mos order pay_time", "mos-haiding", []string{"request.order_sync_request.order.pay_time", `"2021/10/01 00:00:00"`},
			"request.order_sync_request.order.pay_time: not yyyy-MM-dd HH:mm:ss"},
		{"mos order gmt_create", "mos-haiding", []string{"request.order_sync_request.order.gmt_create", `"x"`},
			"request.order_sync_request.order.gmt_create: not yyyy-MM-dd HH:mm:ss"},
		{"mos refund gmt_create", "mos-haiding", []string{"request.order_sync_request.refund_order.gmt_create", `"x"`},
			"request.order_sync_request.refund_order.gmt_create: not yyyy-MM-dd HH:mm:ss"},
		{"mos refund_time", "mos-haiding", []string{"request.order_sync_request.refund_order.refund_time", `"2021-10-01 24:00:00"`},
			"request.order_sync_request.refund_order.refund_time: not yyyy-MM-dd HH:mm:ss"},
		// diantao pay_time is epoch milliseconds, a Number.
		{"diantao pay_time ms", "diantao-tripartite", []string{"request.tripartite_order_info_dto.pay_time", "1661148782000"}, ""},
		{"diantao pay_time as date", "diantao-tripartite", []string{"request.tripartite_order_info_dto.pay_time", `"2022-08-22 14:13:02"`},
			"request.tripartite_order_info_dto.pay_time: must be a number"},
	})
}

func TestDecimalStrings(t *testing.T) {
	const price = "request.goods_details[0].price"
	const qty = "request.goods_details[0].quantity"
	const icbuPay = "request.param_order_create.payment_detail."
	const icbuProd = "request.param_order_create.product_list[0]."
	runValidation(t, []vcase{
		{"price integer", "omni-saas", []string{price, `"100"`}, ""},
		{"price fraction", "omni-saas", []string{price, `"99.50"`}, ""},
		{"price zero", "omni-saas", []string{price, `"0"`}, ""},
		{"price negative", "omni-saas", []string{price, `"-1"`}, price + ": must not be negative"},
		{"price negative zero", "omni-saas", []string{price, `"-0.00"`}, ""},
		{"price text", "omni-saas", []string{price, `"abc"`}, price + ": must be a decimal number"},
		{"price comma", "omni-saas", []string{price, `"1,00"`}, price + ": must be a decimal number"},
		{"price exponent", "omni-saas", []string{price, `"1e3"`}, price + ": must be a decimal number"},
		{"price leading point", "omni-saas", []string{price, `".5"`}, price + ": must be a decimal number"},
		{"price trailing point", "omni-saas", []string{price, `"5."`}, price + ": must be a decimal number"},
		{"price plus", "omni-saas", []string{price, `"+5"`}, price + ": must be a decimal number"},
		{"price spaces", "omni-saas", []string{price, `" 5"`}, price + ": must be a decimal number"},
		{"quantity 10.0", "omni-saas", []string{qty, `"10.0"`}, ""},
		{"quantity negative", "omni-saas", []string{qty, `"-0.5"`}, qty + ": must not be negative"},
		{"quantity number", "omni-saas", []string{qty, `10`}, qty + ": must be a string"},
		{"icbu total_amount", "icbu-trade", []string{icbuPay + "total_amount", `"300.25"`}, ""},
		{"icbu total_amount text", "icbu-trade", []string{icbuPay + "total_amount", `"USD 300"`}, icbuPay + "total_amount: must be a decimal number"},
		{"icbu shipment_fee negative", "icbu-trade", []string{icbuPay + "shipment_fee", `"-20"`}, icbuPay + "shipment_fee: must not be negative"},
		{"icbu product_amount", "icbu-trade", []string{icbuPay + "product_amount", `"x"`}, icbuPay + "product_amount: must be a decimal number"},
		{"icbu shipment_insurance_fee", "icbu-trade", []string{icbuPay + "shipment_insurance_fee", `"x"`}, icbuPay + "shipment_insurance_fee: must be a decimal number"},
		{"icbu initial_amount", "icbu-trade", []string{icbuPay + "initial_amount", `"x"`}, icbuPay + "initial_amount: must be a decimal number"},
		{"icbu value_add_service_amount", "icbu-trade", []string{icbuPay + "value_add_service_amount", `"x"`}, icbuPay + "value_add_service_amount: must be a decimal number"},
		{"icbu tax_amount", "icbu-trade", []string{icbuPay + "tax_amount", `"-1"`}, icbuPay + "tax_amount: must not be negative"},
		{"icbu quantity", "icbu-trade", []string{icbuProd + "quantity", `"many"`}, icbuProd + "quantity: must be a decimal number"},
		{"icbu unit_price_str", "icbu-trade", []string{icbuProd + "unit_price_str", `"-2"`}, icbuProd + "unit_price_str: must not be negative"},
		{"icbu sku_id -1 is an id", "icbu-trade", []string{icbuProd + "sku_id", `"-1"`}, ""},
		{"mos quantity fraction", "mos-haiding", []string{"request.order_sync_request.order_items[0].quantity", `"2.000"`}, ""},
		{"mos quantity text", "mos-haiding", []string{"request.order_sync_request.order_items[0].quantity", `"two"`},
			"request.order_sync_request.order_items[0].quantity: must be a decimal number"},
	})
}

func TestNonNegative(t *testing.T) {
	type field struct{ channel, path string }
	fields := []field{
		{"tmall-aliauto", "request.sync_single_order_req.order_info.total_fee"},
		{"tmall-aliauto", "request.sync_single_order_req.item_info.item_price"},
		{"tmall-aliauto", "request.sync_single_order_req.item_info.buy_amount"},
		{"omni-saas", "request.coupon_infos[0].discount"},
		{"icbu-trade", "request.param_order_create.logistics_detail.shipment_date.duration"},
		{"icbu-trade", "request.param_order_create.logistics_detail.shipment_date.date.time_stamp"},
		{"mos-haiding", "request.order_sync_request.order_payments[0].payment_amount"},
		{"mos-haiding", "request.order_sync_request.order_items[0].tag_price"},
		{"mos-haiding", "request.order_sync_request.order_items[0].discount_amount"},
		{"mos-haiding", "request.order_sync_request.order_share_promotions[0].split_amount"},
		{"mos-haiding", "request.order_sync_request.refund_order.refund_amount"},
		{"diantao-tripartite", "request.tripartite_order_info_dto.amount"},
		{"diantao-tripartite", "request.tripartite_order_info_dto.pay_time"},
	}
	var tests []vcase
	for _, f := range fields {
		tests = append(tests,
			vcase{"zero " + f.path, f.channel, []string{f.path, "0"}, ""},
			vcase{"negative " + f.path, f.channel, []string{f.path, "-1"}, f.path + ": must not be negative"})
	}
	// ids and line numbers have no sign rule
	tests = append(tests,
		vcase{"negative user_id", "tmall-aliauto", []string{"request.sync_single_order_req.buyer_info.user_id", "-1"}, ""},
		// sale_price feeds the total_fee check, so drop total_fee first
		vcase{"negative sale_price", "mos-haiding", []string{
			"request.order_sync_request.order.total_fee", deleteValue,
			"request.order_sync_request.order_items[0].sale_price", "-1"},
			"request.order_sync_request.order_items[0].sale_price: must not be negative"},
		vcase{"negative total_fee", "mos-haiding", []string{"request.order_sync_request.order.total_fee", "-1"},
			"request.order_sync_request.order.total_fee: must not be negative"},
	)
	runValidation(t, tests)
}

func TestDiantaoExtend(t *testing.T) {
	const extend = "request.tripartite_order_info_dto.extend"
	runValidation(t, []vcase{
		{"object", "diantao-tripartite", []string{extend, `"{\"k\":[1,2]}"`}, ""},
		{"not JSON", "diantao-tripartite", []string{extend, `"k=v"`}, extend + ": must be a JSON text"},
		{"object not string", "diantao-tripartite", []string{extend, `{}`}, extend + ": must be a string"},
		{"empty", "diantao-tripartite", []string{extend, `""`}, extend + ": required"},
	})
}

func TestHaidingRelations(t *testing.T) {
	const (
		order  = "request.order_sync_request.order"
		refund = "request.order_sync_request.refund_order"
		items  = "request.order_sync_request.order_items"
		fee    = order + ".total_fee"
	)
	item := func(lineNo int, qty string, price int) string {
		return fmt.Sprintf(`{"line_no":%d,"quantity":%q,"counter_no":"1","item_title":"t","sale_price":%d,"out_id":"o","tag_price":%d}`,
			lineNo, qty, price, price)
	}
	const both = "request.order_sync_request: order and refund_order cannot both be empty"
	runValidation(t, []vcase{
		{"order and refund", "mos-haiding", nil, ""},
		{"order only", "mos-haiding", []string{refund, deleteValue}, ""},
		{"refund only", "mos-haiding", []string{order, deleteValue}, ""},
		{"neither", "mos-haiding", []string{order, deleteValue, refund, deleteValue}, both},
		{"both null", "mos-haiding", []string{order, "null", refund, "null"}, both},
		{"both empty objects", "mos-haiding", []string{order, "{}", refund, "{}"}, both},
		{"empty order, no refund", "mos-haiding", []string{order, "{}", refund, deleteValue}, both},

		{"total_fee matches", "mos-haiding", []string{fee, "180"}, ""},
		{"total_fee absent", "mos-haiding", []string{fee, deleteValue}, ""},
		{"total_fee differs", "mos-haiding", []string{fee, "170"},
			fee + ": must equal Σ sale_price × quantity of order_items (180), not 170"},
		{"two items", "mos-haiding", []string{items, "[" + item(1, "2", 90) + "," + item(2, "1.5", 100) + "]", fee, "330"}, ""},
		{"two items wrong", "mos-haiding", []string{items, "[" + item(1, "2", 90) + "," + item(2, "1.5", 100) + "]", fee, "180"},
			fee + ": must equal Σ sale_price × quantity of order_items (330), not 180"},
		// 0.333 × 90 = 29.97 fen: 29 or 30 are both accepted roundings.
		{"fraction rounded up", "mos-haiding", []string{items, "[" + item(1, "0.333", 90) + "]", fee, "30"}, ""},
		{"fraction rounded down", "mos-haiding", []string{items, "[" + item(1, "0.333", 90) + "]", fee, "29"}, ""},
		{"fraction too far", "mos-haiding", []string{items, "[" + item(1, "0.333", 90) + "]", fee, "31"},
			fee + ": must equal Σ sale_price × quantity of order_items (29.97), not 31"},
		{"refund_amount not checked", "mos-haiding", []string{refund + ".refund_amount", "1"}, ""},
	})
}

func TestIdempotencyKeys(t *testing.T) {
	long := strings.Repeat("k", MaxIdempotencyKeyLen)
	tests := []struct {
		name    string
		channel string
		changes []string
		want    string // key
		wantErr string
	}{
		{"aliauto idempotent_id", "tmall-aliauto", nil, "YC_STORE-45678765", ""},
		{"omni request_no", "omni-saas", nil, "REQ-3436967", ""},
		{"omni request_no 256 chars", "omni-saas", []string{"request.request_no", `"` + long + `"`}, long, ""},
		{"omni request_no 256 runes", "omni-saas", []string{"request.request_no", `"` + strings.Repeat("号", 256) + `"`}, strings.Repeat("号", 256), ""},
		{"omni request_no too long", "omni-saas", []string{"request.request_no", `"` + long + `x"`}, "",
			"request.request_no: longer than 256 characters (it is the idempotency key)"},
		{"icbu event_id", "icbu-trade", nil, "seed-icbu-trade-0001", ""},
		{"mos refund", "mos-haiding", nil, "refund:20211001231232", ""},
		{"mos order", "mos-haiding", []string{"request.order_sync_request.refund_order", deleteValue}, "order:20211001231231", ""},
		{"mos refund without number", "mos-haiding", []string{"request.order_sync_request.refund_order.out_refund_no", deleteValue}, "",
			"request.order_sync_request.refund_order.out_refund_no: required"},
		{"mos refund with blank number", "mos-haiding", []string{"request.order_sync_request.refund_order.out_refund_no", `"  "`}, "",
			"request.order_sync_request.refund_order.out_refund_no: required"},
		{"mos order without number", "mos-haiding", []string{"request.order_sync_request.refund_order", deleteValue,
			"request.order_sync_request.order.out_trade_no", deleteValue}, "",
			"request.order_sync_request.order.out_trade_no: required"},
		{"mos refund without number, envelope key", "mos-haiding", []string{"request.order_sync_request.refund_order.out_refund_no", deleteValue,
			"idempotency_key", `"POS-9"`}, "POS-9", ""},
		{"diantao finished", "diantao-tripartite", nil, "543125:true", ""},
		{"diantao not finished", "diantao-tripartite", []string{"request.tripartite_order_info_dto.trade_finished", "false"}, "543125:false", ""},
	}
	for _, id := range ChannelIDs() {
		tests = append(tests, struct {
			name, channel string
			changes       []string
			want, wantErr string
		}{"envelope override", id, []string{"idempotency_key", `"upstream-key-1"`}, "upstream-key-1", ""})
	}
	r := registry(t)
	for _, tt := range tests {
		t.Run(tt.channel+"/"+tt.name, func(t *testing.T) {
			c, _ := r.ByID(tt.channel)
			p, err := c.Prepare(mustDecode(t, edit(t, tt.channel, tt.changes...)))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Prepare error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if p.IdempotencyKey != tt.want {
				t.Errorf("key = %q, want %q", p.IdempotencyKey, tt.want)
			}
		})
	}
}

// TestBuildParams: absent optional fields are not sent, present false/0/""
// are; top-level empty strings are dropped (the gateway ignores them);
// characters are not HTML-escaped.
func TestBuildParams(t *testing.T) {
	tests := []struct {
		name    string
		channel string
		changes []string
		param   string
		want    string // JSON text; "" = parameter not sent
		exact   bool   // compare bytes, not decoded JSON
	}{
		{"false is sent", "tmall-aliauto", []string{"request.sync_single_order_req", `{"hide":false,"idempotent_id":"k"}`},
			"sync_single_order_req", `{"hide":false,"idempotent_id":"k"}`, true},
		{"absent is not sent", "tmall-aliauto", []string{"request.sync_single_order_req", `{"idempotent_id":"k"}`},
			"sync_single_order_req", `{"idempotent_id":"k"}`, true},
		{"null is not sent", "tmall-aliauto", []string{"request.sync_single_order_req", `{"idempotent_id":"k","hide":null,"buyer_info":null}`},
			"sync_single_order_req", `{"idempotent_id":"k"}`, true},
		{"empty object is sent", "tmall-aliauto", []string{"request.sync_single_order_req", `{"idempotent_id":"k","buyer_info":{}}`},
			"sync_single_order_req", `{"buyer_info":{},"idempotent_id":"k"}`, true},
		{"zero is sent", "omni-saas", []string{"request.coupon_infos", `[{"discount":0}]`},
			"coupon_infos", `[{"discount":0}]`, true},
		{"empty nested string is sent", "omni-saas", []string{"request.coupon_infos", `[{"name":""}]`},
			"coupon_infos", `[{"name":""}]`, true},
		{"empty list not sent", "omni-saas", []string{"request.coupon_infos", `[]`}, "coupon_infos", "", false},
		{"absent scalar not sent", "omni-saas", []string{"request.device", deleteValue}, "device", "", false},
		{"empty scalar not sent", "omni-saas", []string{"request.device", `""`}, "device", "", false},
		{"scalar as string", "omni-saas", nil, "buyer_id", `79284721321`, false},
		{"no HTML escaping", "tmall-aliauto", []string{"request.sync_single_order_req", `{"idempotent_id":"a<b>&c","ext_info":"{\"x\":1}"}`},
			"sync_single_order_req", `{"idempotent_id":"a<b>&c","ext_info":"{\"x\":1}"}`, true},
		{"large ids intact", "icbu-trade", []string{"request.param_order_create.product_list[0].product_id", "9007199254740993"},
			"param_order_create", "", false},
	}
	r := registry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := r.ByID(tt.channel)
			p, err := c.Prepare(mustDecode(t, edit(t, tt.channel, tt.changes...)))
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			got, sent := p.Request.Params[tt.param]
			switch {
			case tt.name == "large ids intact":
				if !strings.Contains(got, `"product_id":9007199254740993`) {
					t.Errorf("param = %s, want product_id 9007199254740993", got)
				}
			case tt.want == "":
				if sent {
					t.Errorf("param %s = %q, want not sent", tt.param, got)
				}
			case tt.exact:
				if got != tt.want {
					t.Errorf("param %s = %s, want %s", tt.param, got, tt.want)
				}
			default:
				if got != tt.want {
					t.Errorf("param %s = %q, want %q", tt.param, got, tt.want)
				}
			}
		})
	}
}

func TestPrepareNilAndBadRequest(t *testing.T) {
	c := channel(t, "omni-saas")
	if _, err := c.Prepare(nil); err == nil {
		t.Error("Prepare(nil) succeeded")
	}
	tests := []struct {
		request string
		want    string
	}{
		{``, "request: required"},
		{`null`, "request: required"},
		{`[]`, "request: must be an object"},
		{`{"goods_details":`, "request.goods_details: invalid JSON: unexpected end of input"},
		{string(mustDecode(t, seed(t, "omni-saas")).Request) + ` {}`, "request: invalid JSON: data after the value"},
	}
	for _, tt := range tests {
		_, err := c.Prepare(&Envelope{EventID: "e", Request: json.RawMessage(tt.request)})
		if err == nil || err.Error() != tt.want {
			t.Errorf("Prepare(request %q) = %v, want %q", tt.request, err, tt.want)
		}
	}
}
