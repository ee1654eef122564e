package xds

import (
	"slices"
	"testing"

	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/weftmesh/weft/api/xdsmeta"
)

func proxylessWeb(serving string) xdsmeta.Node {
	return xdsmeta.Node{
		ID: xdsmeta.ProxylessNodeID("web", "default", serving), Service: "web", Namespace: "default", Proxyless: true,
	}
}

// ask sends a request for names, the node on the first request only, as
// grpc-go does, acknowledging last if set.
func (a *adsStream) ask(typeURL string, last *discoverypb.DiscoveryResponse, names ...string) *discoverypb.DiscoveryResponse {
	a.t.Helper()
	a.send(typeURL, last.GetVersionInfo(), last.GetNonce(), names...)
	a.node = nil
	return a.recv()
}

// TestProxylessServesRequestedNames: a proxyless node gets exactly the
// resources it names, the set follows its requests, and two processes of
// one bootstrap (one node id) each get their own.
func TestProxylessServesRequestedNames(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.srv.Update(meshInput(h.ca))
	web := h.svid("default", "web")

	a := h.open(&web, proxylessWeb("client"))
	lds := a.ask(resource.ListenerType, nil, "payments")
	if diff := cmp.Diff([]string{"payments"}, names(t, lds)); diff != "" {
		t.Fatalf("listeners (-want +got):\n%s", diff)
	}
	rds := a.ask(resource.RouteType, nil, "outbound|payments.default")
	if diff := cmp.Diff([]string{"outbound|payments.default"}, names(t, rds)); diff != "" {
		t.Fatalf("routes (-want +got):\n%s", diff)
	}
	cds := a.ask(resource.ClusterType, nil, "outbound|payments.default")
	if diff := cmp.Diff([]string{"outbound|payments.default"}, names(t, cds)); diff != "" {
		t.Fatalf("clusters (-want +got):\n%s", diff)
	}
	// A second target on the same channel: the listener set grows.
	lds2 := a.ask(resource.ListenerType, lds, "payments", "web.default")
	if diff := cmp.Diff([]string{"payments", "web.default"}, names(t, lds2)); diff != "" {
		t.Fatalf("listeners after a second target (-want +got):\n%s", diff)
	}
	if lds2.GetVersionInfo() == lds.GetVersionInfo() {
		t.Error("the grown listener set kept its version")
	}

	// Another process from the same bootstrap asks for other names.
	b := h.open(&web, proxylessWeb("client"))
	if diff := cmp.Diff([]string{"web"}, names(t, b.ask(resource.ListenerType, nil, "web"))); diff != "" {
		t.Fatalf("second process's listeners (-want +got):\n%s", diff)
	}
	// The first stream still answers to its own names.
	a.send(resource.ListenerType, lds2.GetVersionInfo(), lds2.GetNonce(), "payments")
	if diff := cmp.Diff([]string{"payments"}, names(t, a.recv())); diff != "" {
		t.Fatalf("first process after the second joined (-want +got):\n%s", diff)
	}
	var ids []string
	for _, n := range h.srv.Nodes() {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Errorf("nodes %v: want one per proxyless stream", ids)
	}
}

// TestProxylessNodeMustMatchItsSVID: a proxyless node is authenticated
// like a proxy: its service must be its certificate's.
func TestProxylessNodeMustMatchItsSVID(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.srv.Update(meshInput(h.ca))
	pay := h.svid("default", "payments")
	a := h.open(&pay, proxylessWeb("client"))
	a.send(resource.ListenerType, "", "", "payments")
	if st := a.err(); st.Code().String() != "PermissionDenied" {
		t.Fatalf("got %v, want PermissionDenied", st)
	}
}
