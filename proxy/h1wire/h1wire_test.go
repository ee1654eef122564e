package h1wire

import (
	"strings"
	"testing"
)

// FuzzTrimOWS: TrimOWS trims as strings.Trim(s, " \t") does.
func FuzzTrimOWS(f *testing.F) {
	for _, s := range []string{"", " ", "\t", "a", " a ", "\t a b \t", "  \t", "a\t", " \r a \n "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := TrimOWS(s), strings.Trim(s, " \t"); got != want {
			t.Fatalf("TrimOWS(%q) = %q, want %q", s, got, want)
		}
	})
}
