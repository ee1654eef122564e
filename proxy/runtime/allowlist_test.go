package runtime

import "testing"

// TestAllowlistNamesExist: every field an allowlist names is a field of its
// message. allow takes the names without looking them up, so a misspelt
// name would otherwise only show as a config that is refused.
func TestAllowlistNamesExist(t *testing.T) {
	if len(allowed) == 0 || len(allowed) != len(supported) {
		t.Fatalf("%d allowed messages, %d in supported; want the same, and some", len(allowed), len(supported))
	}
	for _, d := range allowed {
		for f := range supported[d.FullName()] {
			if d.Fields().ByName(f) == nil {
				t.Errorf("%s has no field %q", d.FullName(), f)
			}
		}
	}
}
