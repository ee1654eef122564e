package xds

import "github.com/weftmesh/weft/controlplane/translate"

// sameGateways reports whether a and b hold the same Gateways and gateway
// Routes (meshstate replaces a spec on any change of its resource).
func sameGateways(a, b *translate.Input) bool {
	same := func(x, y map[translate.ServiceKey]bool) bool { return len(x) == 0 && len(y) == 0 }
	g, r := map[translate.ServiceKey]bool{}, map[translate.ServiceKey]bool{}
	diffMap(a.Gateways, b.Gateways, g)
	diffMap(a.GatewayRoutes, b.GatewayRoutes, r)
	return same(g, r)
}

// affectIngress reports whether an ingress proxy reads anything in c. Its
// configuration depends on its Gateways, their Routes, and the specs,
// workloads and policies of the services those Routes send to; gateways
// are few, so any change of those kinds recomputes them.
func (c changes) affectIngress() bool {
	return c.gateways || len(c.specs) > 0 || len(c.workloads) > 0 || len(c.policies) > 0 || len(c.budgets) > 0
}
