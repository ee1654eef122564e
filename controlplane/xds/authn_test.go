package xds

import (
	"maps"
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
)

// TestAffectFollowsRequestAuths: a RequestAuth shapes the inbound listener
// of its own service only, and a Route change reaches that service's
// proxies when the RequestAuth's rules name the Route's rules.
func TestAffectFollowsRequestAuths(t *testing.T) {
	pay := translate.ServiceKey{Namespace: "default", Name: "payments"}
	issuers := []v1alpha1.JWTIssuer{{Issuer: "https://idp.test", JWKS: `{"keys":[{}]}`}}
	byRule := &v1alpha1.RequestAuthSpec{Issuers: issuers, Rules: []v1alpha1.RequestAuthRule{{RouteRules: []string{"checkout"}, Require: true}}}
	byPath := &v1alpha1.RequestAuthSpec{Issuers: issuers, Rules: []v1alpha1.RequestAuthRule{{Paths: []string{"/admin"}, Require: true}}}
	route := &v1alpha1.RouteSpec{Service: "payments", Rules: []v1alpha1.RouteRule{{Name: "checkout", Backends: []v1alpha1.Backend{{}}}}}
	base := &translate.Input{
		TrustDomain: "weft.test", TrustBundlePEM: []byte("b"),
		Routes: map[translate.ServiceKey]*v1alpha1.RouteSpec{pay: route},
	}
	with := func(ra *v1alpha1.RequestAuthSpec) *translate.Input {
		in := *base
		in.RequestAuths = map[translate.ServiceKey]*v1alpha1.RequestAuthSpec{pay: ra}
		return &in
	}
	newRoute := func(in *translate.Input) {
		in.Routes = maps.Clone(in.Routes)
		r := *route
		in.Routes[pay] = &r
	}
	self := xdsmeta.Node{Service: "payments", Namespace: "default"}
	other := xdsmeta.Node{Service: "ledger", Namespace: "default"}
	for _, tc := range []struct {
		name   string
		base   *translate.Input
		change func(*translate.Input)
		want   map[string]bool
	}{
		{"a RequestAuth appears", base, func(in *translate.Input) {
			in.RequestAuths = map[translate.ServiceKey]*v1alpha1.RequestAuthSpec{pay: byPath}
		}, map[string]bool{"self": true, "other": false}},
		{"a RequestAuth goes", with(byPath), func(in *translate.Input) { in.RequestAuths = nil },
			map[string]bool{"self": true, "other": false}},
		{"the Route its rule names", with(byRule), newRoute, map[string]bool{"self": true, "other": false}},
		{"the Route, with a RequestAuth that reads only paths", with(byPath), newRoute,
			map[string]bool{"self": false, "other": false}},
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
