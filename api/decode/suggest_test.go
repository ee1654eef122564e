package decode

import "testing"

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{a: "", b: "", want: 0},
		{a: "port", b: "port", want: 0},
		{a: "", b: "abc", want: 3},
		{a: "protocl", b: "protocol", want: 1},
		{a: "prots", b: "ports", want: 2},
		{a: "kitten", b: "sitting", want: 3},
		{a: "héllo", b: "hello", want: 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestClosest(t *testing.T) {
	fields := []string{"name", "port", "protocol"}
	tests := []struct {
		name string
		want string
	}{
		{name: "protocl", want: "protocol"},
		{name: "Protocol", want: "protocol"},
		{name: "prot", want: "port"},
		{name: "nmae", want: "name"},
		{name: "portt", want: "port"},
		{name: "replicas", want: ""},
		{name: "po", want: ""},
		{name: "x", want: ""},
	}
	for _, tt := range tests {
		if got := closest(tt.name, fields); got != tt.want {
			t.Errorf("closest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
