package v1alpha1

import (
	"maps"
	"slices"
	"strings"
)

// Names and labels follow the Kubernetes rules, so that they carry over
// between the two unchanged.

const (
	maxLabelLength     = 63
	maxSubdomainLength = 253

	dnsLabelRule  = "a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
	labelNameRule = "at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
	labelKeyRule  = "an optional DNS subdomain prefix and '/', then " + labelNameRule
)

// isDNSLabel reports whether s is a DNS-1123 label.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > maxLabelLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// isDNSName reports whether s is DNS-1123 labels joined by dots, at most
// maxLen characters in all.
func isDNSName(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

// isLabelName reports whether s may be a label value or the name part of a
// label key.
func isLabelName(s string) bool {
	if s == "" || len(s) > maxLabelLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// isLabelKey reports whether s is a label or annotation key, such as "app"
// or "weft.dev/version".
func isLabelKey(s string) bool {
	prefix, name, hasPrefix := strings.Cut(s, "/")
	if !hasPrefix {
		return isLabelName(s)
	}
	return isDNSName(prefix, maxSubdomainLength) && isLabelName(name)
}

// validateLabels checks label keys and values, in key order so that the
// errors come out the same every time.
func validateLabels(path *Path, labels map[string]string) ErrorList {
	var errs ErrorList
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		switch v := labels[k]; {
		case !isLabelKey(k):
			errs = append(errs, Invalid(path.Key(k), "invalid label key: use %s", labelKeyRule))
		case v != "" && !isLabelName(v):
			errs = append(errs, Invalid(path.Key(k), "invalid label value %s: use %s", quote(v), labelNameRule))
		}
	}
	return errs
}

// validateAnnotations checks annotation keys; their values are free text.
func validateAnnotations(path *Path, annotations map[string]string) ErrorList {
	var errs ErrorList
	for _, k := range slices.Sorted(maps.Keys(annotations)) {
		if !isLabelKey(k) {
			errs = append(errs, Invalid(path.Key(k), "invalid annotation key: use %s", labelKeyRule))
		}
	}
	return errs
}
