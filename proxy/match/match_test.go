package match

import (
	"errors"
	"testing"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/proxy/xdswire"
)

func TestString(t *testing.T) {
	re := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
	}
	for _, tc := range []struct {
		name  string
		m     *matcherv3.StringMatcher
		in    string
		match bool
	}{
		{"exact", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "Admin"}}, "Admin", true},
		{"exact is case sensitive", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "Admin"}}, "admin", false},
		{"exact ignoring case", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "Admin"}, IgnoreCase: true}, "ADMIN", true},
		{"prefix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/api"}}, "/api/v1", true},
		{"prefix ignoring case", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/API"}, IgnoreCase: true}, "/api/v1", true},
		{"prefix longer than value", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/api"}, IgnoreCase: true}, "/a", false},
		{"suffix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".json"}}, "/x.json", true},
		{"suffix ignoring case", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".JSON"}, IgnoreCase: true}, "/x.json", true},
		{"contains ignoring case", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "Bot"}, IgnoreCase: true}, "GoogleBOT/2.1", true},
		{"regex matches whole value", re("v[0-9]+"), "v12", true},
		{"regex is anchored", re("v[0-9]+"), "xv12", false},
	} {
		m, err := Compile(tc.m, "m")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := m.Matches(tc.in); got != tc.match {
			t.Errorf("%s: Matches(%q) = %v, want %v", tc.name, tc.in, got, tc.match)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	_, err := Compile(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}, "headers[0].string_match")
	var e *xdswire.FieldError
	if !errors.As(err, &e) || e.Path != "headers[0].string_match.safe_regex.regex" {
		t.Errorf("bad regex: %v, want an error at its path", err)
	}
	if _, err := Compile(&matcherv3.StringMatcher{}, "p"); err == nil {
		t.Error("no pattern: no error")
	}
}

func TestMatchesDoesNotAllocate(t *testing.T) {
	m, _ := Compile(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/API"}, IgnoreCase: true}, "p")
	if n := testing.AllocsPerRun(100, func() { m.Matches("/api/items") }); n != 0 {
		t.Errorf("%v allocations per match", n)
	}
}
