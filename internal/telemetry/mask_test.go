package telemetry

import (
	"regexp"
	"strings"
	"testing"
)

func TestMaskPhone(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"no digits", "order created", "order created"},
		{"plain", "13912345678", "139****5678"},
		{"every prefix 13-19", "13012345678 15912345678 19912345678", "130****5678 159****5678 199****5678"},
		{"in text", "call 13912345678 now", "call 139****5678 now"},
		{"glued to letters", "tel:13912345678;", "tel:139****5678;"},
		{"chinese text", "手机13912345678号", "手机139****5678号"},
		{"json", `{"mobile":"13912345678","tel":"18600001111"}`, `{"mobile":"139****5678","tel":"186****1111"}`},
		{"two adjacent by separator", "13912345678,13812345678", "139****5678,138****5678"},
		{"+86 space", "+86 13912345678", "+86 139****5678"},
		{"+86 glued", "+8613912345678", "+86139****5678"},
		{"86 glued", "8613912345678", "86139****5678"},
		{"0086 glued", "008613912345678", "0086139****5678"},
		{"spaced 3-4-4", "139 1234 5678", "139 **** 5678"},
		{"hyphen 3-4-4", "tel 139-1234-5678.", "tel 139-****-5678."},
		{"+86 hyphen 3-4-4", "+86-139-1234-5678", "+86-139-****-5678"},
		{"second prefix digit 0-2 is not mobile", "12012345678 11012345678", "12012345678 11012345678"},
		{"does not start with 1", "23912345678", "23912345678"},
		{"10 digits", "1391234567", "1391234567"},
		{"12 digits", "139123456789", "139123456789"},
		{"order id 19 digits", "3912345678901234567", "3912345678901234567"},
		{"13 digits not 86", "1739123456789", "1739123456789"},
		{"15 digits not 0086", "123413912345678", "123413912345678"},
		{"mixed separators", "139-1234 5678", "139-1234 5678"},
		{"3-4-4 followed by digit group", "139 1234 56789", "139 1234 56789"},
		{"3-4-4 preceded by digits", "1139 1234 5678", "1139 1234 5678"},
		{"decimal", "amount 13912345678.50", "amount 139****5678.50"},
		{"already masked", "139****5678", "139****5678"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaskPhone(tt.in); got != tt.want {
				t.Errorf("MaskPhone(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMaskPhoneNoMatchDoesNotAllocate(t *testing.T) {
	s := strings.Repeat("order 3912345678901234567 amount 12.50 ", 10)
	if n := testing.AllocsPerRun(100, func() { _ = MaskPhone(s) }); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

// unmaskedPhone finds an unmasked number in any form MaskPhone recognises.
var unmaskedPhone = regexp.MustCompile(`(^|[^0-9])((0086|86)?1[3-9][0-9]{9}|1[3-9][0-9]( [0-9]{4} |-[0-9]{4}-)[0-9]{4})($|[^0-9])`)

func FuzzMaskPhone(f *testing.F) {
	for _, s := range []string{"13912345678", "+86 139-1234-5678", "008613912345678", "a1391234567813912345678", "139 1234 5678 139 1234 5678", "手机13912345678"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := MaskPhone(in)
		if len(got) != len(in) {
			t.Fatalf("MaskPhone(%q) = %q: length %d, want %d", in, got, len(got), len(in))
		}
		for i := range len(in) {
			if got[i] != in[i] && (got[i] != '*' || !isDigit(in[i])) {
				t.Fatalf("MaskPhone(%q) = %q: byte %d changed to %q", in, got, i, got[i])
			}
		}
		if again := MaskPhone(got); again != got {
			t.Fatalf("MaskPhone not idempotent: %q → %q → %q", in, got, again)
		}
		if m := unmaskedPhone.FindString(got); m != "" {
			t.Fatalf("MaskPhone(%q) = %q still holds %q", in, got, m)
		}
	})
}

var maskInputs = []struct{ name, s string }{
	{"no_digits", "outcome published for channel omni-saas status succeeded"},
	{"digits_no_phone", "event 3912345678901234567 partition 3 offset 1234567 amount 12.50"},
	{"one_phone", "receiver 张三 mobile 13912345678 address 浙江省杭州市余杭区"},
}

func BenchmarkMaskPhone(b *testing.B) {
	for _, in := range maskInputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = MaskPhone(in.s)
			}
		})
	}
}

// regexpMask is the obvious regexp version, benchmarked for comparison only
// (it handles the plain 11-digit form alone).
var phoneRE = regexp.MustCompile(`(^|[^0-9])(1[3-9][0-9])([0-9]{4})([0-9]{4})($|[^0-9])`)

func BenchmarkMaskPhoneRegexp(b *testing.B) {
	for _, in := range maskInputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = phoneRE.ReplaceAllString(in.s, "$1$2****$4$5")
			}
		})
	}
}
