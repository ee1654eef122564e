// Package match compiles Envoy's StringMatcher once per configuration and
// matches without allocating: route matching and RBAC share it, so a
// header or path matcher means the same thing to both.
package match

import (
	"fmt"
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/proxy/xdswire"
)

type kind uint8

const (
	exact kind = iota
	prefix
	suffix
	contains
	regex
)

// String is a compiled matcherv3.StringMatcher.
type String struct {
	kind       kind
	value      string
	ignoreCase bool
	re         *regexp.Regexp
}

// Compile compiles m; path names m in errors. As in Envoy, ignore_case has
// no effect on safe_regex, and a regular expression must match the whole
// value.
func Compile(m *matcherv3.StringMatcher, path string) (String, error) {
	s := String{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.value = exact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.value = prefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.value = suffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.value = contains, p.Contains
		if s.ignoreCase {
			s.value = strings.ToLower(s.value)
		}
	case *matcherv3.StringMatcher_SafeRegex:
		s.kind, s.ignoreCase = regex, false
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return s, &xdswire.FieldError{Path: path + ".safe_regex.regex", Err: err}
		}
		s.re = re
	default:
		return s, &xdswire.FieldError{Path: path, Err: fmt.Errorf("a match pattern (exact, prefix, suffix, contains or safe_regex) is required")}
	}
	return s, nil
}

// Matches reports whether v matches. Only contains with ignore_case
// allocates, and only when v holds upper case.
func (m *String) Matches(v string) bool {
	switch m.kind {
	case exact:
		if m.ignoreCase {
			return strings.EqualFold(v, m.value)
		}
		return v == m.value
	case prefix:
		if m.ignoreCase {
			return len(v) >= len(m.value) && strings.EqualFold(v[:len(m.value)], m.value)
		}
		return strings.HasPrefix(v, m.value)
	case suffix:
		if m.ignoreCase {
			return len(v) >= len(m.value) && strings.EqualFold(v[len(v)-len(m.value):], m.value)
		}
		return strings.HasSuffix(v, m.value)
	case contains:
		if m.ignoreCase {
			return strings.Contains(lower(v), m.value)
		}
		return strings.Contains(v, m.value)
	default:
		return m.re.MatchString(v)
	}
}

// lower lowers s, allocating only when it holds upper case.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' || c >= 0x80 {
			return strings.ToLower(s)
		}
	}
	return s
}
