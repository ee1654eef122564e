package meshstate

import (
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/translate"
)

// batch derives the next Input from the last one handed out, copy-on-write:
// a map or a workload slice is cloned the first time the batch changes it,
// so the base Input, which consumers may still be reading, is never touched.
type batch struct {
	next translate.Input
	// routes holds every Route by namespace and name; next.Routes holds,
	// for each service, the one that governs it. Like the maps of next, it
	// is cloned on first change.
	routes map[objectName]*v1alpha1.RouteSpec

	ownServices     bool
	ownWorkloads    bool
	ownRoutes       bool
	ownPolicies     bool
	ownRequestAuths bool
	ownAccess       bool
	ownRateLimits   bool
	ownGateways     bool
	ownVIPs         bool
	ownExternal     bool
	// ownSlices marks the workload slices already cloned by this batch.
	ownSlices map[translate.ServiceKey]bool

	changed bool
}

// objectName is a namespaced resource's namespace and name.
type objectName struct{ namespace, name string }

// newBatch starts a batch from base and routes, the Routes by name that
// base was made from.
func newBatch(base *translate.Input, routes map[objectName]*v1alpha1.RouteSpec) *batch {
	return &batch{next: *base, routes: routes}
}

// emptyInput is the state of a store holding nothing: a defaulted Mesh and
// no services or workloads.
func emptyInput() *translate.Input {
	return &translate.Input{
		Mesh:      defaultMesh(),
		Services:  map[translate.ServiceKey]*v1alpha1.ServiceSpec{},
		Workloads: map[translate.ServiceKey][]*meshv1.Workload{},
		Routes:    map[translate.ServiceKey]*v1alpha1.RouteSpec{},
		Policies:  map[translate.ServiceKey]*v1alpha1.DestinationPolicySpec{},
	}
}

func defaultMesh() v1alpha1.MeshSpec {
	var m v1alpha1.MeshSpec
	m.Default()
	return m
}

func (b *batch) setMesh(m v1alpha1.MeshSpec) {
	b.next.Mesh = m
	b.changed = true
}

func (b *batch) putService(key translate.ServiceKey, spec *v1alpha1.ServiceSpec) {
	b.services()[key] = spec
	b.changed = true
}

func (b *batch) deleteService(key translate.ServiceKey) {
	if _, ok := b.next.Services[key]; !ok {
		return
	}
	delete(b.services(), key)
	b.changed = true
}

func (b *batch) putWorkload(key translate.ServiceKey, w *meshv1.Workload) {
	list := b.next.Workloads[key]
	i, found := slices.BinarySearchFunc(list, w.GetId(), compareID)
	if found && proto.Equal(list[i], w) {
		// A reconnecting proxy registers again with the same workload.
		return
	}
	list = b.ownSlice(key)
	if found {
		list[i] = w
	} else {
		list = slices.Insert(list, i, w)
	}
	b.workloads()[key] = list
	b.changed = true
}

func (b *batch) deleteWorkload(key translate.ServiceKey, id string) {
	i, found := slices.BinarySearchFunc(b.next.Workloads[key], id, compareID)
	if !found {
		return
	}
	list := slices.Delete(b.ownSlice(key), i, i+1)
	if len(list) == 0 {
		delete(b.workloads(), key)
	} else {
		b.workloads()[key] = list
	}
	b.changed = true
}

// putRoute stores the Route named rk. Should two Routes name one service,
// the first by name governs it; it is the one the proxies would keep.
func (b *batch) putRoute(rk objectName, spec *v1alpha1.RouteSpec) {
	old := b.routes[rk]
	b.ownRouteNames()[rk] = spec
	if old != nil && old.Service != spec.Service {
		b.resolveRoute(translate.ServiceKey{Namespace: rk.namespace, Name: old.Service})
	}
	b.resolveRoute(translate.ServiceKey{Namespace: rk.namespace, Name: spec.Service})
}

func (b *batch) deleteRoute(rk objectName) {
	old, ok := b.routes[rk]
	if !ok {
		return
	}
	delete(b.ownRouteNames(), rk)
	b.resolveRoute(translate.ServiceKey{Namespace: rk.namespace, Name: old.Service})
}

// resolveRoute sets the Route of a service: that of the first Route by name
// that governs it, if any.
func (b *batch) resolveRoute(key translate.ServiceKey) {
	var best *objectName
	for rk, spec := range b.routes {
		if rk.namespace == key.Namespace && spec.Service == key.Name && (best == nil || rk.name < best.name) {
			best = &rk
		}
	}
	old, had := b.next.Routes[key]
	switch {
	case best == nil && !had:
	case best == nil:
		delete(b.routeSpecs(), key)
		b.changed = true
	case !had || old != b.routes[*best]:
		b.routeSpecs()[key] = b.routes[*best]
		b.changed = true
	}
}

func (b *batch) putPolicy(key translate.ServiceKey, spec *v1alpha1.DestinationPolicySpec) {
	b.policies()[key] = spec
	b.changed = true
}

func (b *batch) deletePolicy(key translate.ServiceKey) {
	if _, ok := b.next.Policies[key]; !ok {
		return
	}
	delete(b.policies(), key)
	b.changed = true
}

func (b *batch) ownRouteNames() map[objectName]*v1alpha1.RouteSpec {
	if !b.ownRoutes {
		b.routes = maps.Clone(b.routes)
		if b.routes == nil {
			b.routes = make(map[objectName]*v1alpha1.RouteSpec)
		}
		b.ownRoutes = true
		b.next.Routes = maps.Clone(b.next.Routes)
		if b.next.Routes == nil {
			b.next.Routes = make(map[translate.ServiceKey]*v1alpha1.RouteSpec)
		}
	}
	return b.routes
}

// routeSpecs returns the batch's own Routes map; ownRouteNames clones it.
func (b *batch) routeSpecs() map[translate.ServiceKey]*v1alpha1.RouteSpec {
	b.ownRouteNames()
	return b.next.Routes
}

// policies returns the batch's own Policies map, cloning it on first use.
func (b *batch) policies() map[translate.ServiceKey]*v1alpha1.DestinationPolicySpec {
	if !b.ownPolicies {
		b.next.Policies = maps.Clone(b.next.Policies)
		if b.next.Policies == nil {
			b.next.Policies = make(map[translate.ServiceKey]*v1alpha1.DestinationPolicySpec)
		}
		b.ownPolicies = true
	}
	return b.next.Policies
}

func compareID(w *meshv1.Workload, id string) int { return strings.Compare(w.GetId(), id) }

// services returns the batch's own Services map, cloning it on first use.
func (b *batch) services() map[translate.ServiceKey]*v1alpha1.ServiceSpec {
	if !b.ownServices {
		b.next.Services = maps.Clone(b.next.Services)
		if b.next.Services == nil {
			b.next.Services = make(map[translate.ServiceKey]*v1alpha1.ServiceSpec)
		}
		b.ownServices = true
	}
	return b.next.Services
}

// workloads returns the batch's own Workloads map, cloning it on first use.
func (b *batch) workloads() map[translate.ServiceKey][]*meshv1.Workload {
	if !b.ownWorkloads {
		b.next.Workloads = maps.Clone(b.next.Workloads)
		if b.next.Workloads == nil {
			b.next.Workloads = make(map[translate.ServiceKey][]*meshv1.Workload)
		}
		b.ownWorkloads = true
	}
	return b.next.Workloads
}

// ownSlice returns the batch's own copy of one service's workloads, cloning
// the shared slice on first use.
func (b *batch) ownSlice(key translate.ServiceKey) []*meshv1.Workload {
	list := b.next.Workloads[key]
	if b.ownSlices[key] {
		return list
	}
	if b.ownSlices == nil {
		b.ownSlices = make(map[translate.ServiceKey]bool)
	}
	b.ownSlices[key] = true
	// One spare slot: most changes add a single workload.
	own := make([]*meshv1.Workload, len(list), len(list)+1)
	copy(own, list)
	b.workloads()[key] = own
	return own
}
