package xds

import (
	"bytes"
	"maps"
	"reflect"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
)

// changes are the parts of the mesh that differ between two inputs, at the
// grain translation reads them: a proxy's configuration depends on the
// whole-mesh fields, on the Service resource of its own service, and on the
// Service resource and workloads of each service it routes to (of every
// service when it has an HTTP proxy port), on the Route and the
// DestinationPolicy of each of those, and on the Service, workloads and
// DestinationPolicy of every service such a Route names. A cluster also
// carries the retry budget of the Routes that send to it, so a Route's
// change reaches the holders of the clusters it budgets, before and after.
type changes struct {
	all       bool // trust domain, trust bundle or Mesh
	specs     map[translate.ServiceKey]bool
	workloads map[translate.ServiceKey]bool
	routes    map[translate.ServiceKey]bool
	policies  map[translate.ServiceKey]bool
	// access holds the services whose AccessPolicies changed: they are
	// enforced on the service's own inbound listener.
	access map[translate.ServiceKey]bool
	// authn holds the services whose RequestAuth changed, or whose Route
	// changed while their RequestAuth reads its rules: both are enforced
	// on the service's own inbound listener.
	authn map[translate.ServiceKey]bool
	// limits holds the services whose RateLimit changed, or whose Route
	// changed while their RateLimit names its rules: both shape the
	// service's own inbound listener.
	limits map[translate.ServiceKey]bool
	// budgets holds the services whose clusters a changed Route budgets.
	budgets map[translate.ServiceKey]bool
	// gateways is set when a Gateway or a gateway Route changed: only
	// ingress proxies read them (changes_gateway.go).
	gateways bool
	// vips is set when a service's VIP was allocated or released: only
	// transparent proxies read them (their capture listener).
	vips bool
	// next is the newer input, whose Routes say what a proxy reads.
	next *translate.Input
}

// diffInputs compares the input of the last recompute, a, with the next, b.
// Inputs share what did not change (meshstate derives each from the last,
// copy-on-write), so a spec or workload slice that b shares with a is
// unchanged; one that is not shared is taken as changed, which costs a
// recompute that finds the same versions and pushes nothing.
func diffInputs(a, b *translate.Input) changes {
	if a == nil || a.TrustDomain != b.TrustDomain || !bytes.Equal(a.TrustBundlePEM, b.TrustBundlePEM) ||
		!reflect.DeepEqual(a.Mesh, b.Mesh) || !sameExternalServices(a, b) {
		return changes{all: true}
	}
	c := changes{
		specs: map[translate.ServiceKey]bool{}, workloads: map[translate.ServiceKey]bool{},
		routes: map[translate.ServiceKey]bool{}, policies: map[translate.ServiceKey]bool{},
		budgets: map[translate.ServiceKey]bool{}, next: b,
		access: map[translate.ServiceKey]bool{}, authn: map[translate.ServiceKey]bool{},
		limits: map[translate.ServiceKey]bool{},
	}
	diffMap(a.Routes, b.Routes, c.routes)
	c.gateways = !sameGateways(a, b)
	c.vips = !maps.Equal(a.VIPs, b.VIPs)
	diffAccessPolicies(a.AccessPolicies, b.AccessPolicies, c.access)
	diffMap(a.Policies, b.Policies, c.policies)
	diffMap(a.RequestAuths, b.RequestAuths, c.authn)
	for k := range c.routes {
		if a.RequestAuthReadsRoute(k) || b.RequestAuthReadsRoute(k) {
			c.authn[k] = true
		}
	}
	diffMap(a.RateLimits, b.RateLimits, c.limits)
	for k := range c.routes {
		if a.RateLimitReadsRoute(k) || b.RateLimitReadsRoute(k) {
			c.limits[k] = true
		}
	}
	for k := range c.routes {
		for _, r := range []*v1alpha1.RouteSpec{a.Routes[k], b.Routes[k]} {
			for _, d := range translate.ClustersTouchedBy(k, r) {
				c.budgets[d] = true
			}
		}
	}
	for k, spec := range b.Services {
		if old, ok := a.Services[k]; !ok || old != spec {
			c.specs[k] = true
		}
	}
	for k := range a.Services {
		if _, ok := b.Services[k]; !ok {
			c.specs[k] = true
		}
	}
	for k, ws := range b.Workloads {
		if old, ok := a.Workloads[k]; !ok || !sameSlice(old, ws) {
			c.workloads[k] = true
		}
	}
	for k := range a.Workloads {
		if _, ok := b.Workloads[k]; !ok {
			c.workloads[k] = true
		}
	}
	return c
}

// sameExternalServices reports whether a and b hold the same
// ExternalServices. Any change recomputes every proxy: every HTTP proxy
// port routes every external host (translate/egress.go), and they are few.
func sameExternalServices(a, b *translate.Input) bool {
	if len(a.ExternalServices) != len(b.ExternalServices) {
		return false
	}
	for k, v := range b.ExternalServices {
		if a.ExternalServices[k] != v {
			return false
		}
	}
	return true
}

// diffMap marks in changed the keys whose value is not the same pointer in
// a and b.
func diffMap[V comparable](a, b map[translate.ServiceKey]V, changed map[translate.ServiceKey]bool) {
	for k, v := range b {
		if old, ok := a[k]; !ok || old != v {
			changed[k] = true
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			changed[k] = true
		}
	}
}

// diffAccessPolicies marks in changed the services whose AccessPolicies are
// not the same slice in a and b (meshstate replaces a service's slice on
// any change of its policies).
func diffAccessPolicies(a, b map[translate.ServiceKey][]translate.AccessPolicy, changed map[translate.ServiceKey]bool) {
	for k, ps := range b {
		if old, ok := a[k]; !ok || len(old) != len(ps) || &old[0] != &ps[0] {
			changed[k] = true
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			changed[k] = true
		}
	}
}

// sameSlice reports whether a and b are one slice: same array, same length.
func sameSlice(a, b []*meshv1.Workload) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// affect reports whether a proxy described by n reads anything in c.
func (c changes) affect(n xdsmeta.Node) bool {
	if c.all {
		return true
	}
	if n.Ingress() {
		return c.affectIngress()
	}
	if n.Mode == xdsmeta.ModeTransparent && c.vips {
		return true
	}
	if len(c.specs) == 0 && len(c.workloads) == 0 && len(c.routes) == 0 && len(c.policies) == 0 && len(c.access) == 0 &&
		len(c.authn) == 0 && len(c.limits) == 0 {
		return false
	}
	if n.HTTPProxy != "" || n.Proxyless || n.Mode == xdsmeta.ModeTransparent {
		// Its route (a proxyless node: its listeners; a transparent one:
		// its capture listener) lists every service of the mesh.
		return true
	}
	if self := (translate.ServiceKey{Namespace: n.Namespace, Name: n.Service}); c.specs[self] || c.access[self] || c.authn[self] || c.limits[self] {
		return true
	}
	for _, u := range n.Upstreams {
		k := translate.ServiceKey{Namespace: u.Namespace, Name: u.Service}
		if c.routes[k] || c.target(k) {
			return true
		}
		for _, d := range c.next.RouteTargets(k) {
			if c.target(d) {
				return true
			}
		}
	}
	return false
}

// target reports whether the cluster or endpoints of a service, or what
// its routes read of it, changed.
func (c changes) target(k translate.ServiceKey) bool {
	return c.specs[k] || c.workloads[k] || c.policies[k] || c.budgets[k]
}
