package tlsx

import (
	"fmt"
	"regexp"
	"strings"
)

// MatchKind says how a StringMatcher compares.
type MatchKind int

// The kinds of envoy.type.matcher.v3.StringMatcher.
const (
	MatchExact MatchKind = iota
	MatchPrefix
	MatchSuffix
	MatchContains
	MatchRegex
)

// StringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type StringMatcher struct {
	kind       MatchKind
	pattern    string
	ignoreCase bool
	re         *regexp.Regexp
}

// NewStringMatcher compiles a matcher. Regular expressions use RE2 syntax
// and must match the whole input, as in Envoy.
func NewStringMatcher(kind MatchKind, pattern string, ignoreCase bool) (StringMatcher, error) {
	m := StringMatcher{kind: kind, pattern: pattern, ignoreCase: ignoreCase}
	switch kind {
	case MatchExact, MatchPrefix, MatchSuffix, MatchContains:
		if ignoreCase {
			m.pattern = strings.ToLower(pattern)
		}
	case MatchRegex:
		expr := "^(?:" + pattern + ")$"
		if ignoreCase {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return StringMatcher{}, fmt.Errorf("tlsx: regex %q: %w", pattern, err)
		}
		m.re = re
	default:
		return StringMatcher{}, fmt.Errorf("tlsx: unknown match kind %d", kind)
	}
	return m, nil
}

// Match reports whether s matches.
func (m StringMatcher) Match(s string) bool {
	if m.kind == MatchRegex {
		return m.re.MatchString(s)
	}
	if m.ignoreCase {
		s = strings.ToLower(s)
	}
	switch m.kind {
	case MatchExact:
		return s == m.pattern
	case MatchPrefix:
		return strings.HasPrefix(s, m.pattern)
	case MatchSuffix:
		return strings.HasSuffix(s, m.pattern)
	default:
		return strings.Contains(s, m.pattern)
	}
}

// String describes the matcher for errors and dumps.
func (m StringMatcher) String() string {
	kind := [...]string{"exact", "prefix", "suffix", "contains", "regex"}[m.kind]
	return fmt.Sprintf("%s %q", kind, m.pattern)
}
