package dispatch

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"sorted keys", `{"b":1,"a":{"d":2,"c":3}}`, `{"a":{"c":3,"d":2},"b":1}`},
		{"white space", " {\n\t\"a\" : [ 1 , 2 ] }\n", `{"a":[1,2]}`},
		{"nulls dropped in objects", `{"a":null,"b":[null,1],"c":{"d":null}}`, `{"b":[null,1],"c":{}}`},
		{"top-level null", `null`, `null`},
		{"escapes normalized", `{"s":"\u00e9\/\u4e2d\t\u0001\"\\<>&"}`, `{"s":"é/中\t\u0001\"\\<>&"}`},
		{"line separators raw", `"\u2028"`, "\"\u2028\""},
		{"keys compared as UTF-8 bytes", `{"é":1,"z":2,"A":3}`, `{"A":3,"z":2,"é":1}`},
		{"bools", `[true,false]`, `[true,false]`},
		{"integers", `[0,-0,7,-7,10,9223372036854775807,10309483976732423]`, `[0,0,7,-7,10,9223372036854775807,10309483976732423]`},
		{"fractions", `[1.0,1.50,15e-1,0.15E1,-2.5,0.000015,1.5e-7]`, `[1,1.5,1.5,1.5,-2.5,0.000015,1.5e-7]`},
		{"exponents", `[1e2,1E+2,100e0,1e20,1e21,12345e30,-0e5,0.0]`, `[100,100,100,100000000000000000000,1e21,1.2345e34,0,0]`},
		{"long integer", `123456789012345678901234567890`, `1.2345678901234567890123456789e29`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendCanonical(nil, []byte(tt.in))
			if err != nil {
				t.Fatalf("canonical(%s): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("canonical(%s) = %s, want %s", tt.in, got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("canonical(%s) = %s is not JSON", tt.in, got)
			}
			again, err := appendCanonical(nil, got)
			if err != nil || string(again) != string(got) {
				t.Errorf("canonical is not idempotent: %s -> %s (%v)", got, again, err)
			}
		})
	}
}

func TestCanonicalErrors(t *testing.T) {
	for _, in := range []string{
		``, `{`, `{"a":1,"a":2}`, `[1] [2]`, `1e99999999999`,
		strings.Repeat("[", canonicalDepth+1) + strings.Repeat("]", canonicalDepth+1),
	} {
		if got, err := appendCanonical(nil, []byte(in)); err == nil {
			t.Errorf("canonical(%.40q) = %s, want an error", in, got)
		}
	}
}

func TestFingerprint(t *testing.T) {
	base, err := Fingerprint(json.RawMessage(`{"a":1,"b":{"c":"x"}}`), "s1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		request string
		seller  string
		same    bool
	}{
		{"identical", `{"a":1,"b":{"c":"x"}}`, "s1", true},
		{"member order", `{"b":{"c":"x"},"a":1}`, "s1", true},
		{"white space", "{ \"a\" : 1 ,\n \"b\" : { \"c\" : \"x\" } }", "s1", true},
		{"escaped string", `{"a":1,"b":{"c":"\u0078"}}`, "s1", true},
		{"explicit null", `{"a":1,"b":{"c":"x","d":null}}`, "s1", true},
		{"other seller", `{"a":1,"b":{"c":"x"}}`, "s2", false},
		{"no seller", `{"a":1,"b":{"c":"x"}}`, "", false},
		{"other value", `{"a":2,"b":{"c":"x"}}`, "s1", false},
		{"number as string", `{"a":"1","b":{"c":"x"}}`, "s1", false},
		{"extra member", `{"a":1,"b":{"c":"x"},"e":0}`, "s1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Fingerprint(json.RawMessage(tt.request), tt.seller)
			if err != nil {
				t.Fatal(err)
			}
			if (got == base) != tt.same {
				t.Errorf("Fingerprint(%s, %q) = %s; same as base = %v, want %v", tt.request, tt.seller, got, got == base, tt.same)
			}
		})
	}
}

// TestFingerprintStable pins the fingerprints of the seed events. Completed
// outcomes are stored with their fingerprint for the retention window; if
// these change, re-sent events would be reported as conflicts after an
// upgrade. Change them only with a migration plan.
func TestFingerprintStable(t *testing.T) {
	want := map[string]string{
		"diantao-tripartite": "3637cf5c1fc64e4fbee37bf051f2f2a3f5f2148a0984bab160c9e8ab1ef7fff0",
		"icbu-trade":         "cc776c628c60a21d255067dd4b4296d6322d658d69e95fe9f7ab30364769b42f",
		"mos-haiding":        "9de831b8b13972b818bb7e704b3d699b37cf29512c3f68ff68f7f072abb88848",
		"omni-saas":          "3c7d226378df2fb96fdb5c6effac1c12808d40cd4c8d5f3d7d6d4bde39b3086f",
		"tmall-aliauto":      "12b60090b882b93d89704211b84ebefea0019b14bd520f4028594a8a39d35c24",
	}
	for _, id := range ChannelIDs() {
		p, err := channel(t, id).Prepare(mustDecode(t, seed(t, id)))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if p.Fingerprint != want[id] {
			t.Errorf("%s fingerprint = %s, want %s", id, p.Fingerprint, want[id])
		}
		// The same event compacted and with its members reversed.
		compact := edit(t, id) // re-encoded: sorted keys, no white space
		p2, err := channel(t, id).Prepare(mustDecode(t, compact))
		if err != nil {
			t.Fatal(err)
		}
		if p2.Fingerprint != p.Fingerprint {
			t.Errorf("%s: fingerprint changed with member order and white space", id)
		}
	}
}
