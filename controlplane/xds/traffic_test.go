package xds

import (
	"maps"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
)

// withRoute derives an input from in, copy-on-write, with a Route for
// payments whose one rule has the given timeout.
func withRoute(in *translate.Input, timeout time.Duration) *translate.Input {
	next := *in
	next.Routes = maps.Clone(in.Routes)
	if next.Routes == nil {
		next.Routes = map[translate.ServiceKey]*v1alpha1.RouteSpec{}
	}
	spec := &v1alpha1.RouteSpec{Service: "payments", Rules: []v1alpha1.RouteRule{{
		Match:    []v1alpha1.RouteMatch{{Path: &v1alpha1.PathMatch{Prefix: "/api"}}},
		Backends: []v1alpha1.Backend{{}},
		Timeout:  &v1alpha1.Duration{Duration: timeout},
	}}}
	spec.Default()
	next.Routes[payments] = spec
	return &next
}

// TestRecomputeRouteChange checks that a Route change reaches the proxies
// that call its service, as a new RouteConfiguration, and no other.
func TestRecomputeRouteChange(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	billing := translate.ServiceKey{Namespace: "default", Name: "billing"}
	in := meshInput(h.ca)
	in.Services[billing] = &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Port: 80, Protocol: v1alpha1.ProtocolHTTP}}}
	h.srv.Update(in)
	// Let the first recompute see this input: a later one counts only
	// the proxies that read the change.
	time.Sleep(quiet)

	web := h.svid("default", "web")
	a := h.open(&web, webNode())
	syncWeb(a)
	a.send(resource.RouteType, "", "", "outbound|payments.default")
	a.ack(a.recv())
	bill := h.svid("default", "billing")
	b := h.open(&bill, xdsmeta.Node{
		ID: xdsmeta.WorkloadID("billing", "default", "127.0.1.9:15006"), Service: "billing", Namespace: "default",
		Inbound: "127.0.1.9:15006", App: "127.0.0.1:8080",
	})
	b.send(resource.ListenerType, "", "")
	b.send(resource.ClusterType, "", "")
	for _, r := range b.recvTypes(2) {
		b.ack(r)
	}
	before := h.metric("weft_xds_recomputed_proxies_total")

	h.srv.Update(withRoute(in, 3*time.Second))
	r := a.recv()
	if r.GetTypeUrl() != resource.RouteType || len(r.GetResources()) != 1 {
		t.Fatalf("web got %s with %d resources, want one RouteConfiguration", r.GetTypeUrl(), len(r.GetResources()))
	}
	rc := new(routev3.RouteConfiguration)
	if err := r.GetResources()[0].UnmarshalTo(rc); err != nil {
		t.Fatal(err)
	}
	routes := rc.GetVirtualHosts()[0].GetRoutes()
	if len(routes) != 2 || routes[0].GetMatch().GetPathSeparatedPrefix() != "/api" || routes[0].GetRoute().GetTimeout().AsDuration() != 3*time.Second {
		t.Errorf("web's route after the Route: %v", rc)
	}
	a.ack(r)
	b.expectNothing(quiet)
	if got := h.metric("weft_xds_recomputed_proxies_total") - before; got != 1 {
		t.Errorf("recomputed %v proxies for a payments Route, want 1 (web)", got)
	}
}

// TestAffectFollowsRouteTargets checks who reads what a Route names: the
// callers of its service read the services and subsets it sends to, and
// the clusters it budgets retries on.
func TestAffectFollowsRouteTargets(t *testing.T) {
	pay := translate.ServiceKey{Namespace: "default", Name: "payments"}
	next := translate.ServiceKey{Namespace: "default", Name: "payments-next"}
	route := &v1alpha1.RouteSpec{Service: "payments", Rules: []v1alpha1.RouteRule{{
		Backends: []v1alpha1.Backend{{Service: "payments-next", Subset: "v2"}},
		Retries:  &v1alpha1.RetryPolicy{Attempts: 2},
	}}}
	route.Default()
	base := &translate.Input{
		TrustDomain: "weft.test", TrustBundlePEM: []byte("b"),
		Routes:    map[translate.ServiceKey]*v1alpha1.RouteSpec{pay: route},
		Workloads: map[translate.ServiceKey][]*meshv1.Workload{},
		Policies:  map[translate.ServiceKey]*v1alpha1.DestinationPolicySpec{},
	}
	caller := xdsmeta.Node{Service: "web", Namespace: "default", Upstreams: []xdsmeta.Upstream{{Service: "payments", Namespace: "default"}}}
	nextCaller := xdsmeta.Node{Service: "api", Namespace: "default", Upstreams: []xdsmeta.Upstream{{Service: "payments-next", Namespace: "default"}}}
	other := xdsmeta.Node{Service: "api", Namespace: "default", Upstreams: []xdsmeta.Upstream{{Service: "ledger", Namespace: "default"}}}

	for _, tc := range []struct {
		name   string
		change func(*translate.Input)
		want   map[string]bool // by node service
	}{
		{"a target's workloads", func(in *translate.Input) {
			in.Workloads = map[translate.ServiceKey][]*meshv1.Workload{next: {{Id: "x"}}}
		}, map[string]bool{"caller": true, "nextCaller": true, "other": false}},
		{"a target's policy", func(in *translate.Input) {
			in.Policies = map[translate.ServiceKey]*v1alpha1.DestinationPolicySpec{next: {}}
		}, map[string]bool{"caller": true, "nextCaller": true, "other": false}},
		{"the Route, which budgets the target's clusters", func(in *translate.Input) {
			r := *route
			in.Routes = map[translate.ServiceKey]*v1alpha1.RouteSpec{pay: &r}
		}, map[string]bool{"caller": true, "nextCaller": true, "other": false}},
		{"a Route of a service nobody here calls", func(in *translate.Input) {
			in.Routes = maps.Clone(in.Routes)
			in.Routes[translate.ServiceKey{Namespace: "default", Name: "search"}] = &v1alpha1.RouteSpec{Service: "search"}
		}, map[string]bool{"caller": false, "nextCaller": false, "other": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := *base
			tc.change(&in)
			c := diffInputs(base, &in)
			for name, n := range map[string]xdsmeta.Node{"caller": caller, "nextCaller": nextCaller, "other": other} {
				if got := c.affect(n); got != tc.want[name] {
					t.Errorf("%s affected = %v, want %v", name, got, tc.want[name])
				}
			}
		})
	}
}
