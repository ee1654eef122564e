package translate

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/weftmesh/weft/api/decode"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// gatewayInput is the mesh of testdata/gateway.yaml: its Gateways and
// gateway Routes, and the services they send to.
func gatewayInput(t testing.TB) *Input {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode.Documents(data, "gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := input([]service{
		{ns: "edge", name: "shop", protocol: v1alpha1.ProtocolHTTP, port: 80, workloads: []*meshv1.Workload{
			workload("edge", "shop", "v1", "127.0.5.1:15006", true),
		}},
		{ns: "edge", name: "shop-next", protocol: v1alpha1.ProtocolHTTP, port: 80, workloads: []*meshv1.Workload{
			workload("edge", "shop-next", "v2", "127.0.5.2:15006", true),
		}},
		{ns: "edge", name: "api", protocol: v1alpha1.ProtocolHTTP2, port: 80, workloads: []*meshv1.Workload{
			workload("edge", "api", "v1", "127.0.5.3:15006", true),
		}},
		{ns: "edge", name: "ledger", protocol: v1alpha1.ProtocolHTTP, port: 80, workloads: []*meshv1.Workload{
			workload("edge", "ledger", "v1", "127.0.5.4:15006", true),
		}},
	}, false)
	in.Gateways = map[ServiceKey]*v1alpha1.GatewaySpec{}
	in.GatewayRoutes = map[ServiceKey]*v1alpha1.RouteSpec{}
	for _, o := range objs {
		key := ServiceKey{Namespace: o.Metadata.Namespace, Name: o.Metadata.Name}
		switch spec := o.Spec.(type) {
		case *v1alpha1.GatewaySpec:
			in.Gateways[key] = spec
		case *v1alpha1.RouteSpec:
			in.GatewayRoutes[key] = spec
		}
	}
	return in
}

func ingressNode() xdsmeta.Node {
	return xdsmeta.Node{
		ID: xdsmeta.WorkloadID("ingress", "edge", "127.0.5.9:15000"), Service: "ingress", Namespace: "edge",
		Admin: "127.0.5.9:15000", Mode: xdsmeta.ModeIngress, ListenIP: "127.0.5.9",
	}
}

func TestGatewayGolden(t *testing.T) {
	r, err := ForNode(gatewayInput(t), ingressNode())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, r, "gateway.golden")
}

// TestGatewayShape checks the points of the golden that matter most, so a
// careless -update cannot hide them.
func TestGatewayShape(t *testing.T) {
	r, err := ForNode(gatewayInput(t), ingressNode())
	if err != nil {
		t.Fatal(err)
	}
	var listeners []string
	for _, l := range r.Listeners {
		listeners = append(listeners, resourceName(l))
	}
	if want := []string{"gateway|8080", "gateway|8443", "gateway|9080"}; !slices.Equal(listeners, want) {
		t.Errorf("listeners %q, want %q (8443 once: public has it)", listeners, want)
	}
	https := r.Listeners[1].(*listenerv3.Listener)
	if n := len(https.GetFilterChains()); n != 2 {
		t.Fatalf("HTTPS listener has %d filter chains, want one per certificate", n)
	}
	if sn := https.GetFilterChains()[0].GetFilterChainMatch().GetServerNames(); !slices.Equal(sn, []string{"shop.example.test"}) {
		t.Errorf("first chain matches SNI %q, want shop.example.test", sn)
	}
	if a := https.GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.5.9" || a.GetPortValue() != 8443 {
		t.Errorf("HTTPS listener binds %s:%d, want 127.0.5.9:8443", a.GetAddress(), a.GetPortValue())
	}
	var secrets []string
	for _, s := range r.Secrets {
		secrets = append(secrets, resourceName(s))
		if sec := s.(*tlsv3.Secret); sec.GetName() != xdsmeta.SecretRootCA && sec.GetTlsCertificate().GetPrivateKey().GetInlineString() == "" {
			t.Errorf("secret %q carries no private key", sec.GetName())
		}
	}
	if want := []string{xdsmeta.SecretRootCA, "gateway|edge/public|https|0", "gateway|edge/public|https|1"}; !slices.Equal(secrets, want) {
		t.Errorf("secrets %q, want %q", secrets, want)
	}
	var clusters []string
	for _, c := range r.Clusters {
		clusters = append(clusters, resourceName(c))
	}
	if want := []string{"outbound|api.edge", "outbound|shop-next.edge", "outbound|shop.edge"}; !slices.Equal(clusters, want) {
		t.Errorf("clusters %q, want %q (no ledger: no Route sends to it)", clusters, want)
	}
	routes := map[string]*routev3.RouteConfiguration{}
	for _, rc := range r.Routes {
		routes[resourceName(rc)] = rc.(*routev3.RouteConfiguration)
	}
	redirect := routes["gateway|8080"].GetVirtualHosts()[0].GetRoutes()[0].GetRedirect()
	if !redirect.GetHttpsRedirect() || redirect.GetPortRedirect() != 8443 {
		t.Errorf("8080 redirect = %v, want https on 8443", redirect)
	}
	var hosts []string
	for _, vh := range routes["gateway|8443"].GetVirtualHosts() {
		hosts = append(hosts, vh.GetDomains()...)
	}
	if want := []string{"shop.example.test", "v1.api.example.test"}; !slices.Equal(hosts, want) {
		t.Errorf("8443 virtual hosts %q, want %q (other.test is not public's)", hosts, want)
	}
	hosts = nil
	for _, vh := range routes["gateway|9080"].GetVirtualHosts() {
		hosts = append(hosts, vh.GetDomains()...)
	}
	if want := []string{"shop.internal.test"}; !slices.Equal(hosts, want) {
		t.Errorf("9080 virtual hosts %q, want %q", hosts, want)
	}
}

// TestGatewayLeavesMeshAlone checks that a gateway Route changes nothing
// for a sidecar calling its service, and that a sidecar gets no gateway
// listeners.
func TestGatewayLeavesMeshAlone(t *testing.T) {
	in := gatewayInput(t)
	caller := node("edge", "ledger", "127.0.5.4:15006", "shop=127.0.0.1:9001")
	with, err := ForNode(in, caller)
	if err != nil {
		t.Fatal(err)
	}
	in.Gateways, in.GatewayRoutes = nil, nil
	without, err := ForNode(in, caller)
	if err != nil {
		t.Fatal(err)
	}
	for typeURL := range with.ByType() {
		if with.Version(typeURL) != without.Version(typeURL) {
			t.Errorf("%s: a sidecar's config changed with gateways in the mesh", typeURL)
		}
	}
}

func TestGatewayHostAllowed(t *testing.T) {
	for _, c := range []struct {
		listener []string
		host     string
		want     bool
	}{
		{[]string{"*"}, "a.test", true},
		{[]string{"*.example.test"}, "shop.example.test", true},
		{[]string{"*.example.test"}, "*.api.example.test", true},
		{[]string{"*.example.test"}, "*", false},
		{[]string{"*.example.test"}, "example.test", false},
		{[]string{"shop.example.test"}, "api.example.test", false},
	} {
		if got := GatewayHostAllowed(c.listener, c.host); got != c.want {
			t.Errorf("GatewayHostAllowed(%q, %q) = %v, want %v", c.listener, c.host, got, c.want)
		}
	}
}
