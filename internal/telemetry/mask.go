package telemetry

// MaskPhone returns s with every mainland-China mobile number masked: the
// first three and the last four digits are kept and the middle four become
// '*', so "13912345678" becomes "139****5678". Recognised forms, each bounded
// by non-digits (or the ends of s):
//
//   - 11 digits starting 1[3-9]: "13912345678" → "139****5678"
//   - the same behind a country code written as digits: "8613912345678" →
//     "86139****5678", "008613912345678" → "0086139****5678"
//     ("+86 139…" and "+86-139…" are covered by the plain forms)
//   - 3-4-4 groups split by one space or hyphen used twice:
//     "139 1234 5678" → "139 **** 5678", "139-1234-5678" → "139-****-5678"
//
// Longer or shorter digit runs (order ids, timestamps, amounts) are left
// alone. The result has the same length in bytes as s. When s holds nothing
// to mask, s itself is returned without allocating. MaskPhone is safe for
// concurrent use.
func MaskPhone(s string) string {
	var b []byte // copy of s, made at the first match
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		mask := -1 // index of the first of the four digits to hide
		switch j - i {
		case 11:
			if isMobilePrefix(s[i:]) {
				mask = i + 3
			}
		case 13:
			if s[i] == '8' && s[i+1] == '6' && isMobilePrefix(s[i+2:]) {
				mask = i + 5
			}
		case 15:
			if s[i:i+4] == "0086" && isMobilePrefix(s[i+4:]) {
				mask = i + 7
			}
		case 3:
			if isMobilePrefix(s[i:]) && isSeparated(s[j:]) {
				mask = j + 1
				j += 10 // the whole "139 1234 5678" is consumed
			}
		}
		if mask >= 0 {
			if b == nil {
				b = []byte(s)
			}
			copy(b[mask:mask+4], "****")
		}
		i = j
	}
	if b == nil {
		return s
	}
	return string(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isMobilePrefix reports whether s starts with 1[3-9]; len(s) >= 2.
func isMobilePrefix(s string) bool { return s[0] == '1' && '3' <= s[1] && s[1] <= '9' }

// isSeparated reports whether s, which follows three digits, is "X1234X5678"
// with X a space or hyphen, not followed by another digit.
func isSeparated(s string) bool {
	if len(s) < 10 {
		return false
	}
	sep := s[0]
	if sep != ' ' && sep != '-' || s[5] != sep {
		return false
	}
	for _, k := range [...]int{1, 2, 3, 4, 6, 7, 8, 9} {
		if !isDigit(s[k]) {
			return false
		}
	}
	return len(s) == 10 || !isDigit(s[10])
}
