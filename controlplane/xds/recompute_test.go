package xds

import (
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
)

var payments = translate.ServiceKey{Namespace: "default", Name: "payments"}

// withPayments derives an input from in as meshstate does, copy-on-write:
// only the payments workloads differ, and everything else is shared.
func withPayments(in *translate.Input, extra ...string) *translate.Input {
	next := *in
	next.Workloads = maps.Clone(in.Workloads)
	list := slices.Clone(in.Workloads[payments])
	for _, addr := range extra {
		list = append(list, ws("default", "payments", "v2", addr, true))
	}
	next.Workloads[payments] = list
	return &next
}

// syncWeb walks the web proxy through its first responses and ACKs them.
func syncWeb(a *adsStream) {
	a.t.Helper()
	a.send(resource.ListenerType, "", "")
	a.send(resource.ClusterType, "", "")
	for _, r := range a.recvTypes(2) {
		a.ack(r)
	}
	a.send(resource.EndpointType, "", "", "outbound|payments.default")
	a.ack(a.recv())
}

// TestRecomputeOnlyWhoReadsTheChange checks that an endpoint change
// recomputes the proxies that route to the service, and no other.
func TestRecomputeOnlyWhoReadsTheChange(t *testing.T) {
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

	h.srv.Update(withPayments(in, "127.0.1.3:15006"))
	if r := a.recv(); r.GetTypeUrl() != resource.EndpointType || endpoints(t, r) != 2 {
		t.Fatalf("web got %s with %d endpoints, want EDS with 2", r.GetTypeUrl(), endpoints(t, r))
	}
	b.expectNothing(quiet)
	if got := h.metric("weft_xds_recomputed_proxies_total") - before; got != 1 {
		t.Errorf("recomputed %v proxies for a payments endpoint, want 1 (web)", got)
	}
}

// TestRecomputeCatchesUp: a push reads the newest input, which may be newer
// than the one its recompute started from. When the mesh then returns to
// that older state, the proxy must be recomputed even though the input
// equals the last recompute's.
func TestRecomputeCatchesUp(t *testing.T) {
	// Run never fires: the test recomputes by hand.
	h := newHarness(t, harnessOptions{debounce: time.Hour})
	a0 := meshInput(h.ca)
	h.srv.Update(a0)
	last := h.srv.recompute(nil)
	web := h.svid("default", "web")
	a := h.open(&web, webNode())
	syncWeb(a)

	// A newer input reaches web's push before its recompute.
	h.srv.Update(withPayments(a0, "127.0.1.3:15006"))
	h.srv.mu.Lock()
	n := h.srv.nodes[webNode().ID]
	h.srv.mu.Unlock()
	if err := h.srv.push(n); err != nil {
		t.Fatal(err)
	}
	r := a.recv()
	if endpoints(t, r) != 2 {
		t.Fatalf("web has %d endpoints, want 2", endpoints(t, r))
	}
	a.ack(r)

	// The mesh goes back to what the last recompute saw.
	back := *a0
	h.srv.Update(&back)
	h.srv.recompute(last)
	if r := a.recv(); r.GetTypeUrl() != resource.EndpointType || endpoints(t, r) != 1 {
		t.Fatalf("web got %s with %d endpoints, want EDS back to 1", r.GetTypeUrl(), endpoints(t, r))
	}
}

// TestDiffInputsKnowsEveryField: diffInputs decides which proxies a change
// reaches by comparing Input field by field. A field it does not compare
// would change silently for every proxy: a new field needs a line there.
func TestDiffInputsKnowsEveryField(t *testing.T) {
	compared := map[string]bool{
		"TrustDomain": true, "TrustBundlePEM": true, "Mesh": true, "Services": true, "Workloads": true,
		"Routes": true, "Policies": true, "AccessPolicies": true,
		"RequestAuths": true,
		"RateLimits":   true,
		"Gateways":     true, "GatewayRoutes": true,
		"ExternalServices": true,
		"VIPs":             true,
	}
	for f := range reflect.TypeFor[translate.Input]().Fields() {
		if !compared[f.Name] {
			t.Errorf("translate.Input.%s is not compared by diffInputs: make it, then add it to this test", f.Name)
		}
	}
}
