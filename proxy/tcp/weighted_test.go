package tcp

import "testing"

func TestWeightedPick(t *testing.T) {
	p := &Proxy{Weighted: []Backend{{Name: "a", Weight: 3}, {Name: "none", Weight: 0}, {Name: "b", Weight: 1}}}
	const n = 40_000
	got := map[string]int{}
	for i := 0; i < n; i++ {
		got[p.pick().Name]++
	}
	// b takes 25%: mean 10,000, standard deviation about 87; allow five.
	if got["none"] != 0 || got["b"] < 9_560 || got["b"] > 10_440 || got["a"]+got["b"] != n {
		t.Errorf("split %v, want a:b about 3:1 and none never", got)
	}
	if name := (&Proxy{Backend: Backend{Name: "only"}}).pick().Name; name != "only" {
		t.Errorf("single cluster picked %q", name)
	}
}
