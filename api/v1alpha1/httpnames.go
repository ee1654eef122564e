package v1alpha1

import (
	"regexp"
	"strings"
	"time"
)

// Validation helpers for HTTP names and values, regexes, percentages and
// one-of choices, shared by the traffic kinds.

func validateHeaderName(path *Path, name string) ErrorList {
	switch {
	case name == "":
		return ErrorList{Required(path)}
	case !isHeaderName(name):
		return ErrorList{Invalid(path, "%s is not a valid header name: use %s", quote(name), headerNameRule)}
	}
	return nil
}

// validateHeaderValue rejects control characters, which could split or
// smuggle a header; a tab is allowed, as HTTP allows it.
func validateHeaderValue(path *Path, v string) ErrorList {
	if i := strings.IndexFunc(v, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }); i >= 0 {
		return ErrorList{Invalid(path, "control character %U is not allowed in a header value", v[i])}
	}
	return nil
}

// isToken reports whether c may appear in an HTTP token (RFC 9110 tchar).
func isToken(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isHeaderName reports whether s is a lower-case HTTP token: HTTP/2 and
// HTTP/3 require header names in lower case, and the proxy matches them so.
func isHeaderName(s string) bool {
	if s == "" || len(s) > maxHeaderNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isToken(c) || ('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// isMethod reports whether s is an HTTP token with no lower-case letter:
// methods are case-sensitive, and "get" would never match a GET.
func isMethod(s string) bool {
	if s == "" || len(s) > maxMethodLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isToken(c) || ('a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

func isQueryParamName(s string) bool {
	return s != "" && len(s) <= maxQueryParamLength &&
		!strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune("&=#", r) })
}

// validateRegex compiles an RE2 expression, as the proxy will. The length
// is capped because the proxy compiles every expression of every Route.
func validateRegex(path *Path, expr string) ErrorList {
	if len(expr) > maxRegexLength {
		return ErrorList{Invalid(path, "is %d characters long: at most %d are allowed", len(expr), maxRegexLength)}
	}
	if _, err := regexp.Compile(expr); err != nil {
		return ErrorList{Invalid(path, "%s is not a valid RE2 regular expression: %s", quote(expr), strings.TrimPrefix(err.Error(), "error parsing regexp: "))}
	}
	return nil
}

// validatePercentage checks a defaulted percentage.
func validatePercentage(path *Path, p *float64) ErrorList {
	if p != nil && !(*p >= 0 && *p <= 100) {
		return ErrorList{Invalid(path, "must be between 0 and 100, got %g", *p)}
	}
	return nil
}

// durationBetween reports d outside [lo, hi].
func durationBetween(path *Path, d, lo, hi time.Duration) ErrorList {
	if d < lo || d > hi {
		return ErrorList{Invalid(path, "must be between %s and %s, got %s", FormatDuration(lo), FormatDuration(hi), FormatDuration(d))}
	}
	return nil
}

// field is a member of a one-of group and whether it is set.
type field struct {
	name string
	set  bool
}

// setFields returns the names of the fields that are set.
func setFields(fields ...field) []string {
	var set []string
	for _, f := range fields {
		if f.set {
			set = append(set, f.name)
		}
	}
	return set
}

// exactlyOne reports a one-of group with none or several members set.
func exactlyOne(path *Path, set []string, choices string) *FieldError {
	if len(set) == 0 {
		return Invalid(path, "set exactly one of %s", choices)
	}
	both := "both"
	if len(set) > 2 {
		both = "all"
	}
	names := strings.Join(set[:len(set)-1], ", ") + " and " + set[len(set)-1]
	return Invalid(path, "%s are %s set: set exactly one of %s", names, both, choices)
}

func ptr[T any](v T) *T { return &v }

var _ Spec = (*RouteSpec)(nil)
