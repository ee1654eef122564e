// Package ascii holds what protocols that are case-insensitive in ASCII
// only (HTTP tokens, DNS names) need: strings.EqualFold also folds
// Unicode, so "chun\u212Aed" (a Kelvin sign) would equal "chunked".
package ascii

// EqualFold reports whether a and b are equal with ASCII letters folded
// to lower case; other bytes must be equal.
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}
