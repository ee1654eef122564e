package xds

import (
	"maps"
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
)

// TestAffectFollowsRateLimits: a RateLimit shapes the inbound listener of
// its own service only, and a Route change reaches that service's proxies
// when the RateLimit names the Route's rules.
func TestAffectFollowsRateLimits(t *testing.T) {
	pay := translate.ServiceKey{Namespace: "default", Name: "payments"}
	byRule := &v1alpha1.RateLimitSpec{Limits: []v1alpha1.Limit{{Name: "checkout", RouteRule: "checkout",
		Global: &v1alpha1.GlobalLimit{Requests: 1, Unit: v1alpha1.UnitSecond}}}}
	route := &v1alpha1.RouteSpec{Service: "payments", Rules: []v1alpha1.RouteRule{{Name: "checkout", Backends: []v1alpha1.Backend{{}}}}}
	base := &translate.Input{
		TrustDomain: "weft.test", TrustBundlePEM: []byte("b"),
		Routes: map[translate.ServiceKey]*v1alpha1.RouteSpec{pay: route},
	}
	self := xdsmeta.Node{Service: "payments", Namespace: "default"}
	other := xdsmeta.Node{Service: "ledger", Namespace: "default"}
	for _, tc := range []struct {
		name   string
		base   *translate.Input
		change func(*translate.Input)
		want   map[string]bool
	}{
		{"a RateLimit appears", base, func(in *translate.Input) {
			in.RateLimits = map[translate.ServiceKey]*v1alpha1.RateLimitSpec{pay: byRule}
		}, map[string]bool{"self": true, "other": false}},
		{"the Route its limit names", func() *translate.Input {
			in := *base
			in.RateLimits = map[translate.ServiceKey]*v1alpha1.RateLimitSpec{pay: byRule}
			return &in
		}(), func(in *translate.Input) {
			r := *route
			in.Routes = map[translate.ServiceKey]*v1alpha1.RouteSpec{pay: &r}
		}, map[string]bool{"self": true, "other": false}},
		{"the Route, with no RateLimit reading it", base, func(in *translate.Input) {
			in.Routes = maps.Clone(in.Routes)
			in.Routes[pay] = &v1alpha1.RouteSpec{Service: "payments"}
		}, map[string]bool{"self": false, "other": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := *tc.base
			tc.change(&in)
			c := diffInputs(tc.base, &in)
			for name, n := range map[string]xdsmeta.Node{"self": self, "other": other} {
				if got := c.affect(n); got != tc.want[name] {
					t.Errorf("%s affected = %v, want %v", name, got, tc.want[name])
				}
			}
		})
	}
}
