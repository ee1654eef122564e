package xds

import (
	"slices"
	"strings"
	"testing"
)

// FuzzSubscriptionUpdate feeds a subscription the resource names of a
// stream's requests, as a proxy sends them, and checks what it keeps: the
// names sorted and unique without "*", a wildcard as the protocol reads
// one, and a forced response exactly when a later request asks for more.
func FuzzSubscriptionUpdate(f *testing.F) {
	f.Add("", "a,b", "a")
	f.Add("a,b", "", "*")
	f.Add("*", "*,a", "")
	f.Add("b,a,a", "a,b,c", "c")
	f.Fuzz(func(t *testing.T, first, second, third string) {
		sub := &subscription{}
		for i, req := range []string{first, second, third} {
			var names []string
			if req != "" {
				names = strings.Split(req, ",")
			}
			before := *sub
			before.names = slices.Clone(sub.names)
			sub.force = false
			sub.update(names, i == 0)

			if !slices.IsSorted(sub.names) || len(slices.Compact(slices.Clone(sub.names))) != len(sub.names) || slices.Contains(sub.names, "*") {
				t.Fatalf("request %d %q: names %q, want sorted, unique, without *", i, names, sub.names)
			}
			wantWildcard := slices.Contains(names, "*") || (len(names) == 0 && (i == 0 || before.wildcard))
			if sub.wildcard != wantWildcard {
				t.Fatalf("request %d %q after %+v: wildcard %v, want %v", i, names, before, sub.wildcard, wantWildcard)
			}
			grew := i > 0 && !before.wildcard && (sub.wildcard || slices.ContainsFunc(sub.names, func(n string) bool {
				return !slices.Contains(before.names, n)
			}))
			if sub.force != grew {
				t.Fatalf("request %d %q after %+v: force %v, want %v", i, names, before, sub.force, grew)
			}
		}
	})
}
