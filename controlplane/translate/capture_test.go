package translate

import (
	"net/netip"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// captureInput: HTTP services with allocated VIPs, a TCP
// service that declares its own VIP, a service whose VIP is not allocated
// yet, and one declaring a VIP another already holds.
func captureInput() *Input {
	in := input([]service{
		{ns: "shop", name: "web", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
			workload("shop", "web", "v1", "10.200.0.2:8080", true),
		}},
		{ns: "shop", name: "catalog", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
			workload("shop", "catalog", "v1", "10.200.0.3:8080", true),
			workload("shop", "catalog", "v2", "10.200.0.4:8080", true),
		}},
		{ns: "data", name: "db", protocol: v1alpha1.ProtocolTCP, port: 5432, workloads: []*meshv1.Workload{
			workload("data", "db", "15", "10.200.0.5:5432", true),
		}},
		{ns: "data", name: "twin", protocol: v1alpha1.ProtocolTCP, port: 5432},
		{ns: "shop", name: "fresh", protocol: v1alpha1.ProtocolHTTP, port: 80},
	}, false)
	in.Services[ServiceKey{"data", "db"}].VIP = "10.96.0.10"
	in.Services[ServiceKey{"data", "twin"}].VIP = "10.96.0.10"
	in.VIPs = map[ServiceKey]netip.Addr{
		{"shop", "web"}:     netip.MustParseAddr("240.240.0.1"),
		{"shop", "catalog"}: netip.MustParseAddr("240.240.0.2"),
		// Allocated before db declared its own: the declared one wins.
		{"data", "db"}: netip.MustParseAddr("240.240.0.3"),
	}
	return in
}

func transparentNode() xdsmeta.Node {
	n := node("shop", "web", "10.200.0.2:8080")
	n.Mode = xdsmeta.ModeTransparent
	return n
}

func TestCaptureGolden(t *testing.T) {
	registryOnly := captureInput()
	registryOnly.Mesh.OutboundTrafficPolicy = &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundRegistryOnly}
	for file, in := range map[string]*Input{"capture.golden": captureInput(), "capture-registry-only.golden": registryOnly} {
		r, err := ForNode(in, transparentNode())
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, r, file)
	}
}

func TestCaptureListeners(t *testing.T) {
	r, err := ForNode(captureInput(), transparentNode())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*listenerv3.Listener{}
	for _, res := range r.Listeners {
		l := res.(*listenerv3.Listener)
		byName[l.GetName()] = l
	}
	in := byName[xdsmeta.InboundListener]
	if sa := in.GetAddress().GetSocketAddress(); sa.GetAddress() != "0.0.0.0" || sa.GetPortValue() != xdsmeta.InboundCapturePort {
		t.Errorf("inbound binds %s:%d, want the inbound capture port", sa.GetAddress(), sa.GetPortValue())
	}
	out := byName[xdsmeta.OutboundCaptureListener]
	if out == nil {
		t.Fatalf("no %s listener in %v", xdsmeta.OutboundCaptureListener, byName)
	}
	var matches []string
	for _, fc := range out.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		matches = append(matches, m.GetPrefixRanges()[0].GetAddressPrefix()+":"+m.GetDestinationPort().String())
	}
	// shop/fresh has no VIP yet; data/twin's VIP is db's, which keeps it.
	want := []string{"10.96.0.10:value:5432", "240.240.0.2:value:8080", "240.240.0.1:value:8080"}
	if diff := cmp.Diff(want, matches); diff != "" {
		t.Errorf("filter chain matches (-want +got):\n%s", diff)
	}
	if out.GetDefaultFilterChain() == nil {
		t.Error("no passthrough chain")
	}
	table, err := xdsmeta.VIPTableFromListener(out)
	if err != nil {
		t.Fatal(err)
	}
	if table["db.data"].String() != "10.96.0.10" || table["catalog.shop"].String() != "240.240.0.2" || len(table) != 3 {
		t.Errorf("VIP table %v", table)
	}
	// An explicit proxy of the same mesh gets no capture listener.
	r, err = ForNode(captureInput(), node("shop", "web", "127.0.0.1:15006"))
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Listeners {
		if res.(*listenerv3.Listener).GetName() == xdsmeta.OutboundCaptureListener {
			t.Error("explicit proxy got the capture listener")
		}
	}
}
