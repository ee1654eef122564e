package ascii

import "testing"

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"chunked", "CHUNKED", true},
		{"Chunked", "chunked", true},
		{"example.COM.", "Example.com.", true},
		{"chun\u212aed", "chunked", false}, // Kelvin sign: strings.EqualFold says true
		{"chunke", "chunked", false},
		{"[", "{", false}, // 0x5b and 0x7b differ by 0x20 but are not letters
		{"", "", true},
	} {
		if got := EqualFold(tc.a, tc.b); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
