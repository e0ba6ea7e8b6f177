package dispatch

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewRegistry(t *testing.T) {
	tests := []struct {
		name       string
		topics     map[string]string
		wantTopics []string
		wantErr    string
	}{
		{name: "nil enables all on default topics", topics: nil, wantTopics: []string{
			"orders.diantao-tripartite", "orders.icbu-trade", "orders.mos-haiding", "orders.omni-saas", "orders.tmall-aliauto"}},
		{name: "only listed, empty is default", topics: map[string]string{"omni-saas": "", "icbu-trade": "pos.icbu"},
			wantTopics: []string{"orders.omni-saas", "pos.icbu"}},
		{name: "empty map enables none", topics: map[string]string{}, wantTopics: []string{}},
		{name: "unknown channel", topics: map[string]string{"omni": ""},
			wantErr: `unknown channel "omni" (known: diantao-tripartite, icbu-trade, mos-haiding, omni-saas, tmall-aliauto)`},
		{name: "shared topic", topics: map[string]string{"omni-saas": "t", "icbu-trade": "t"},
			wantErr: `channels omni-saas and icbu-trade both use topic "t"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRegistry(tt.topics)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("NewRegistry error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantTopics, r.Topics()); diff != "" {
				t.Errorf("Topics (-want +got):\n%s", diff)
			}
			for _, c := range r.Channels() {
				if got, ok := r.ByTopic(c.Topic); !ok || got != c {
					t.Errorf("ByTopic(%q) = %v, %v", c.Topic, got, ok)
				}
			}
		})
	}
}

func TestRegistryLookups(t *testing.T) {
	r, err := NewRegistry(map[string]string{"omni-saas": "pos.omni", "mos-haiding": ""})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := r.ByTopic("pos.omni")
	if !ok || c.ID != "omni-saas" || c.Topic != "pos.omni" || c.DefaultTopic != "orders.omni-saas" ||
		c.Method != "alibaba.omni.saas.order.create" || !c.NeedsSession {
		t.Fatalf("ByTopic(pos.omni) = %+v, %v", c, ok)
	}
	if _, ok := r.ByTopic("orders.omni-saas"); ok {
		t.Error("ByTopic found the default topic of a renamed channel")
	}
	if got, ok := r.ByID("omni-saas"); !ok || got != c {
		t.Errorf("ByID = %v, %v", got, ok)
	}
	if got, ok := r.ByMethod("alibaba.omni.saas.order.create"); !ok || got != c {
		t.Errorf("ByMethod = %v, %v", got, ok)
	}
	if _, ok := r.ByID("tmall-aliauto"); ok {
		t.Error("ByID found a channel that is not enabled")
	}
	var ids []string
	for _, c := range r.Channels() {
		ids = append(ids, c.ID)
	}
	if diff := cmp.Diff([]string{"mos-haiding", "omni-saas"}, ids); diff != "" {
		t.Errorf("Channels (-want +got):\n%s", diff)
	}
}

func TestNeedsSession(t *testing.T) {
	r := registry(t)
	tests := []struct {
		method     string
		needs, has bool
	}{
		{"tmall.aliauto.trade.external.order.sycn", false, true},
		{"alibaba.omni.saas.order.create", true, true},
		{"alibaba.trade.order.create", true, true},
		{"alibaba.mos.trade.open.haiding.order.sync", true, true},
		{"alibaba.diantao.tripartite.order.info", false, true},
		{"tmall.aliauto.trade.external.order.sync", false, false},
	}
	for _, tt := range tests {
		needs, known := r.NeedsSession(tt.method)
		if needs != tt.needs || known != tt.has {
			t.Errorf("NeedsSession(%s) = %v, %v, want %v, %v", tt.method, needs, known, tt.needs, tt.has)
		}
	}
}

func sha256Key(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestCheckParamsRoundTrip: what Prepare builds, the simulator accepts, and
// it keys it as the platform would.
func TestCheckParamsRoundTrip(t *testing.T) {
	r := registry(t)
	icbuParam := func(t *testing.T) string {
		p, err := channel(t, "icbu-trade").Prepare(mustDecode(t, seed(t, "icbu-trade")))
		if err != nil {
			t.Fatal(err)
		}
		canon, err := appendCanonical(nil, []byte(p.Request.Params["param_order_create"]))
		if err != nil {
			t.Fatal(err)
		}
		return string(canon)
	}
	want := map[string]string{
		"tmall-aliauto":      "YC_STORE-45678765",
		"omni-saas":          "REQ-3436967",
		"icbu-trade":         sha256Key(icbuParam(t)),
		"mos-haiding":        "refund:20211001231232",
		"diantao-tripartite": "543125:true",
	}
	for _, id := range ChannelIDs() {
		t.Run(id, func(t *testing.T) {
			c, _ := r.ByID(id)
			p, err := c.Prepare(mustDecode(t, seed(t, id)))
			if err != nil {
				t.Fatal(err)
			}
			key, err := r.CheckParams(c.Method, p.Request.Params)
			if err != nil {
				t.Fatalf("CheckParams: %v", err)
			}
			if key != want[id] {
				t.Errorf("key = %q, want %q", key, want[id])
			}
			// The whole form, system parameters included, is accepted too.
			form := maps.Clone(p.Request.Params)
			maps.Copy(form, map[string]string{"method": c.Method, "app_key": "1", "sign": "X", "sign_method": "hmac-sha256",
				"timestamp": "2026-11-21 10:00:00", "v": "2.0", "format": "json", "session": "s"})
			if key2, err := r.CheckParams(c.Method, form); err != nil || key2 != key {
				t.Errorf("CheckParams(full form) = %q, %v, want %q", key2, err, key)
			}
		})
	}
}

func TestCheckParamsIcbuKeyIgnoresLayout(t *testing.T) {
	r := registry(t)
	p, err := channel(t, "icbu-trade").Prepare(mustDecode(t, seed(t, "icbu-trade")))
	if err != nil {
		t.Fatal(err)
	}
	compact, err := r.CheckParams("alibaba.trade.order.create", p.Request.Params)
	if err != nil {
		t.Fatal(err)
	}
	// The same object as the seed file lays it out (indented, page order).
	env := mustDecode(t, seed(t, "icbu-trade"))
	obj := string(env.Request)
	obj = obj[strings.Index(obj, `"param_order_create":`)+len(`"param_order_create":`) : strings.LastIndex(obj, "}")]
	indented, err := r.CheckParams("alibaba.trade.order.create", map[string]string{"param_order_create": obj})
	if err != nil {
		t.Fatal(err)
	}
	if compact != indented {
		t.Errorf("key %s for the compact form, %s for the indented one", compact, indented)
	}
	p2, err := channel(t, "icbu-trade").Prepare(mustDecode(t, edit(t, "icbu-trade", "request.param_order_create.remark", `"other"`)))
	if err != nil {
		t.Fatal(err)
	}
	if other, _ := r.CheckParams("alibaba.trade.order.create", p2.Request.Params); other == compact {
		t.Error("different orders share a key")
	}
}

func TestCheckParamsErrors(t *testing.T) {
	r := registry(t)
	seedParams := func(id string) map[string]string {
		p, err := channel(t, id).Prepare(mustDecode(t, seed(t, id)))
		if err != nil {
			t.Fatal(err)
		}
		return p.Request.Params
	}
	with := func(id string, changes map[string]string) map[string]string {
		p := seedParams(id)
		for k, v := range changes {
			if v == deleteValue {
				delete(p, k)
			} else {
				p[k] = v
			}
		}
		return p
	}
	omni := "alibaba.omni.saas.order.create"
	mos := "alibaba.mos.trade.open.haiding.order.sync"
	tests := []struct {
		name        string
		method      string
		params      map[string]string
		want        string
		wantMissing bool
	}{
		{"missing scalar", omni, with("omni-saas", map[string]string{"request_no": deleteValue}), "request_no: required", true},
		{"empty scalar", omni, with("omni-saas", map[string]string{"store_id": ""}), "store_id: required", true},
		{"missing list", omni, with("omni-saas", map[string]string{"goods_details": deleteValue}), "goods_details: required", true},
		{"nested missing", omni, with("omni-saas", map[string]string{"goods_details": `[{"goods_id":"g","quantity":"1","id_type":"CUSTOM"}]`}),
			"goods_details[0].price: required", true},
		{"enum", omni, with("omni-saas", map[string]string{"pay_channel": "CASH"}), "pay_channel: must be one of ALIPAY, BANK_CARD", false},
		{"list limit", omni, with("omni-saas", map[string]string{"coupon_infos": list(21, `{}`)}), "coupon_infos: more than 20 elements", false},
		{"unknown parameter", omni, with("omni-saas", map[string]string{"buyer_nick": "x"}), "buyer_nick: unknown parameter", false},
		{"unknown nested field", omni, with("omni-saas", map[string]string{"coupon_infos": `[{"amount":1}]`}), "coupon_infos[0].amount: unknown field", false},
		{"not JSON", omni, with("omni-saas", map[string]string{"goods_details": `[{"goods_id":}]`}),
			"goods_details[0].goods_id: invalid JSON: unexpected '}'", false},
		{"trailing data", omni, with("omni-saas", map[string]string{"coupon_infos": `[] []`}), "coupon_infos: invalid JSON: data after the value", false},
		{"not UTF-8", omni, with("omni-saas", map[string]string{"device": "\xff"}), "device: not valid UTF-8", false},
		{"object param given a list", mos, map[string]string{"order_sync_request": `[]`}, "order_sync_request: must be an object", false},
		{"relation", mos, with("mos-haiding", map[string]string{"order_sync_request": `{"order_payments":[{"pay_line_no":1,"payment_amount":1,"payment_type":"D1"}],"order_items":[{"line_no":1,"quantity":"1","counter_no":"c","item_title":"t","sale_price":1,"out_id":"o","tag_price":1}],"order_share_promotions":[{"item_line_no":1,"split_amount":1,"pay_line_no":1,"payment_type":"D1"}]}`}),
			"order_sync_request: order and refund_order cannot both be empty", false},
		{"total_fee", mos, with("mos-haiding", map[string]string{"order_sync_request": strings.Replace(seedParams("mos-haiding")["order_sync_request"], `"total_fee":180`, `"total_fee":181`, 1)}),
			"order_sync_request.order.total_fee: must equal Σ sale_price × quantity of order_items (180), not 181", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.CheckParams(tt.method, tt.params)
			if err == nil {
				t.Fatalf("CheckParams succeeded, want %q", tt.want)
			}
			var fe interface {
				FieldPath() string
				Missing() bool
			}
			if !errors.As(err, &fe) {
				t.Fatalf("error %v does not implement FieldPath/Missing", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q, want %q", err.Error(), tt.want)
			}
			if wantPath, _, _ := strings.Cut(tt.want, ": "); fe.FieldPath() != wantPath {
				t.Errorf("FieldPath = %q, want %q", fe.FieldPath(), wantPath)
			}
			if fe.Missing() != tt.wantMissing {
				t.Errorf("Missing = %v, want %v", fe.Missing(), tt.wantMissing)
			}
		})
	}

	if _, err := r.CheckParams("taobao.trade.get", nil); !errors.Is(err, ErrUnknownMethod) {
		t.Errorf("unknown method: error = %v, want ErrUnknownMethod", err)
	}
}

// A mos-haiding refund without out_refund_no can only come with an envelope
// key, which the platform never sees: the simulator keys on the content.
func TestCheckParamsMosWithoutKeyField(t *testing.T) {
	r := registry(t)
	c := channel(t, "mos-haiding")
	value := edit(t, "mos-haiding", "request.order_sync_request.refund_order.out_refund_no", deleteValue, "idempotency_key", `"POS-1"`)
	p, err := c.Prepare(mustDecode(t, value))
	if err != nil {
		t.Fatal(err)
	}
	key, err := r.CheckParams(c.Method, p.Request.Params)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := appendCanonical(nil, []byte(p.Request.Params["order_sync_request"]))
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256Key(string(canon)); key != want {
		t.Errorf("key = %s, want %s", key, want)
	}
}
