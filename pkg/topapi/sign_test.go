package topapi

import (
	"net/url"
	"testing"
)

// vectorParams are the parameters of the test vectors; sign_method
// is filled in per case.
func vectorParams(signMethod string) map[string]string {
	return map[string]string{
		"app_key":      "12345678",
		"method":       "alibaba.omni.saas.order.create",
		"timestamp":    "2026-01-02 03:04:05",
		"format":       "json",
		"v":            "2.0",
		"sign_method":  signMethod,
		"coupon_infos": `[{"discount":100,"name":"满100减10元","option_id":"YH9527"}]`,
	}
}

func TestSignVectors(t *testing.T) {
	tests := []struct {
		name   string
		method string
		extra  map[string]string
		want   string
	}{
		{name: "md5", method: SignMD5, want: "8368A4C9AC30CAE999B8CA88F670BE2C"},
		{name: "hmac", method: SignHMAC, want: "C22BA2A5C5C9448CC2B51C5333CEF13A"},
		{name: "hmac-sha256", method: SignHMACSHA256, want: "A72573F1B9942F0E10F40DCB9AE94657B1227F7C20010DAF911F1F41BEDBA92E"},
		{
			name:   "md5 with reserved characters and an empty value",
			method: SignMD5,
			extra:  map[string]string{"request_no": "REQ 1&a=b+c/中文", "device": ""},
			want:   "7BB3704A65B8008D2774D0A5B051C78C",
		},
		{
			name:   "sign and blank values are not signed",
			method: SignMD5,
			extra:  map[string]string{"sign": "ANYTHING", "device": " \t", "operator_id": "\u3000"},
			want:   "8368A4C9AC30CAE999B8CA88F670BE2C",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := vectorParams(tt.method)
			for k, v := range tt.extra {
				params[k] = v
			}
			got, err := Sign(params, "helloworld", tt.method)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if got != tt.want {
				t.Errorf("Sign = %s, want %s", got, tt.want)
			}
		})
	}
}

// The published TOP md5 example (taobao.item.seller.get, secret helloworld).
func TestSignPublishedExample(t *testing.T) {
	params := map[string]string{
		"method":      "taobao.item.seller.get",
		"app_key":     "12345678",
		"session":     "test",
		"timestamp":   "2016-01-01 12:00:00",
		"format":      "json",
		"v":           "2.0",
		"sign_method": "md5",
		"fields":      "num_iid,title,nick,price,num",
		"num_iid":     "11223344",
	}
	got, err := Sign(params, "helloworld", SignMD5)
	if err != nil {
		t.Fatal(err)
	}
	if want := "66987CB115214E59E6EC978214934FB8"; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestSignUnknownMethod(t *testing.T) {
	if _, err := Sign(vectorParams("sha1"), "helloworld", "sha1"); err == nil {
		t.Error("Sign with sign method sha1: got nil error, want one")
	}
}

func TestSignerMatchesSign(t *testing.T) {
	// The pooled signer must give the same answer on reuse.
	for _, m := range []string{SignMD5, SignHMAC, SignHMACSHA256} {
		s := newSigner("helloworld", m)
		want, _ := Sign(vectorParams(m), "helloworld", m)
		for i := 0; i < 3; i++ {
			ps := []param{}
			for k, v := range vectorParams(m) {
				ps = append(ps, param{k, v})
			}
			sortParams(ps)
			if got := string(s.sum(nil, ps)); got != want {
				t.Errorf("%s round %d: got %s, want %s", m, i, got, want)
			}
		}
	}
}

func TestAppendQueryEscape(t *testing.T) {
	for _, s := range []string{"", "abc-_.~XYZ019", "REQ 1&a=b+c/中文", `[{"a":1}]`, "\x00\xff%"} {
		got := string(appendQueryEscape(nil, s))
		if want := url.QueryEscape(s); got != want {
			t.Errorf("appendQueryEscape(%q) = %q, want %q", s, got, want)
		}
		if got, want := queryEscapedLen(s), len(url.QueryEscape(s)); got != want {
			t.Errorf("queryEscapedLen(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestIsBlank(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", true}, {" ", true}, {"\t\n\v\f\r", true}, {"\u3000", true}, {"\u2028", true},
		{"\u00a0", false}, {"a", false}, {" a ", false}, {"0", false}, {"\x1f", true}, {"\x00", false},
	}
	for _, tt := range tests {
		if got := isBlank(tt.in); got != tt.want {
			t.Errorf("isBlank(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
