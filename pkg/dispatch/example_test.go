package dispatch_test

import (
	"fmt"
	"maps"
	"slices"

	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi"
)

func ExampleDecodeEnvelope() {
	_, err := dispatch.DecodeEnvelope([]byte(`{"request":{}}`), 0)
	fmt.Println(err)

	_, err = dispatch.DecodeEnvelope([]byte(`{"event_id":"evt-1","occurred_at":"yesterday","request":{}}`), 0)
	fmt.Println(err)

	env, err := dispatch.DecodeEnvelope([]byte(`{"event_id":"evt-1","seller":"shop-1","trace":"ignored","request":{"request_no":"REQ-1"}}`), 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(env.EventID, env.Seller, string(env.Request))
	// Output:
	// event_id: required
	// occurred_at: not RFC 3339
	// evt-1 shop-1 {"request_no":"REQ-1"}
}

func ExampleChannel_Prepare() {
	reg, err := dispatch.NewRegistry(nil) // every channel on its default topic
	if err != nil {
		fmt.Println(err)
		return
	}
	ch, _ := reg.ByTopic("orders.omni-saas")

	env, err := dispatch.DecodeEnvelope([]byte(`{
	  "event_id": "evt-000123",
	  "request": {
	    "goods_details": [{"goods_id": "GD00001", "price": "100", "quantity": "10.0", "id_type": "ITEM_SKU"}],
	    "buyer_id_type": "TAOBAO", "store_id": "1047384", "pay_channel": "ALIPAY",
	    "store_id_type": "PLACE", "request_no": "REQ-3436967"
	  }
	}`), 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := ch.Prepare(env)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Request.Method, "session:", ch.NeedsSession)
	fmt.Println("key:", p.IdempotencyKey)
	for _, name := range slices.Sorted(maps.Keys(p.Request.Params)) {
		fmt.Printf("%s=%s\n", name, p.Request.Params[name])
	}

	// A problem names its path.
	env.Request = []byte(`{"goods_details":[{"goods_id":"GD00001","quantity":"1","id_type":"ITEM_SKU"}]}`)
	_, err = ch.Prepare(env)
	fmt.Println(err)

	// The platform's answer.
	status, _ := ch.Interpret(topapi.Response{Body: []byte(`{"trade_no":10309483976732423,"total_amount":10000,"actual_pay_fee":9000}`)})
	fmt.Println(status)
	// Output:
	// alibaba.omni.saas.order.create session: true
	// key: REQ-3436967
	// buyer_id_type=TAOBAO
	// goods_details=[{"goods_id":"GD00001","price":"100","quantity":"10.0","id_type":"ITEM_SKU"}]
	// pay_channel=ALIPAY
	// request_no=REQ-3436967
	// store_id=1047384
	// store_id_type=PLACE
	// request.goods_details[0].price: required
	// succeeded
}
