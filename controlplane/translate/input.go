// Package translate turns the mesh's state into the xDS resources of one
// proxy. It is a pure function: the same Input and node give the same
// resources, byte for byte, so it is golden-tested and pushes are skipped
// when a proxy's output did not change.
package translate

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// ServiceKey names a mesh service.
type ServiceKey struct {
	Namespace, Name string
}

// Input is everything translation reads.
type Input struct {
	TrustDomain string
	// TrustBundlePEM holds every root the mesh trusts, PEM.
	TrustBundlePEM []byte
	// Mesh is the defaulted spec of the Mesh resource (defaults if none exists).
	Mesh v1alpha1.MeshSpec
	// Services holds the Service resources by key (spec defaulted).
	Services map[ServiceKey]*v1alpha1.ServiceSpec
	// Workloads holds every registered workload, by service; each slice sorted by ID.
	Workloads map[ServiceKey][]*meshv1.Workload
	// Routes holds the Route of each service that has one, keyed by the
	// service it governs (spec defaulted).
	Routes map[ServiceKey]*v1alpha1.RouteSpec
	// Policies holds the DestinationPolicy of each service that has one,
	// keyed by its service, whose name it bears (spec defaulted).
	Policies map[ServiceKey]*v1alpha1.DestinationPolicySpec
	// AccessPolicies holds the AccessPolicies of each service that has
	// any, keyed by the service they guard, sorted by name (specs
	// defaulted).
	AccessPolicies map[ServiceKey][]AccessPolicy
	// RateLimits holds the RateLimit of each service that has one, keyed by
	// its service, whose name it bears (spec defaulted).
	RateLimits map[ServiceKey]*v1alpha1.RateLimitSpec
	// RequestAuths holds the RequestAuth of each service that has one,
	// keyed by its service, whose name it bears (spec defaulted).
	RequestAuths map[ServiceKey]*v1alpha1.RequestAuthSpec
	// Gateways holds the Gateways by namespace and name (specs defaulted);
	// an ingress proxy serves those of its namespace that name its service
	// (gateway.go).
	Gateways map[ServiceKey]*v1alpha1.GatewaySpec
	// GatewayRoutes holds the Routes that attach to gateways, by the
	// Route's namespace and name (specs defaulted). They are not in Routes:
	// they leave their service's mesh traffic alone.
	GatewayRoutes map[ServiceKey]*v1alpha1.RouteSpec
	// ExternalServices holds the ExternalServices by namespace and name
	// (specs defaulted); every proxy sees those of every namespace
	// (egress.go).
	ExternalServices map[ServiceKey]*v1alpha1.ExternalServiceSpec
	// VIPs holds the virtual IP the control plane allocated to each
	// Service (controlplane/vip); a Service's own spec.vip wins over it.
	VIPs map[ServiceKey]netip.Addr
}

// ListWorkloads returns the registered workloads, filtered by namespace and
// by service name where they are not empty, sorted by namespace, service and
// ID: what the store's ListWorkloads returns, without reading the store.
// The workloads are in's own: the caller must not modify them.
func (in *Input) ListWorkloads(namespace, service string) []*meshv1.Workload {
	if namespace != "" && service != "" {
		return slices.Clone(in.Workloads[ServiceKey{Namespace: namespace, Name: service}])
	}
	var keys []ServiceKey
	n := 0
	for k, ws := range in.Workloads {
		if (namespace == "" || k.Namespace == namespace) && (service == "" || k.Name == service) {
			keys = append(keys, k)
			n += len(ws)
		}
	}
	slices.SortFunc(keys, func(a, b ServiceKey) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	out := make([]*meshv1.Workload, 0, n)
	for _, k := range keys {
		out = append(out, in.Workloads[k]...)
	}
	return out
}
