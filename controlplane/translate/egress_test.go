package translate

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/decode"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// egressInput is catalog plus the ExternalServices of testdata/egress.yaml,
// under the given outbound traffic policy.
func egressInput(t *testing.T, mode v1alpha1.OutboundMode) *Input {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "egress.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode.Documents(data, "egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := input([]service{{ns: "shop", name: "catalog", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
		workload("shop", "catalog", "v1", "127.0.5.1:15006", true),
	}}}, false)
	in.Mesh.OutboundTrafficPolicy = &v1alpha1.OutboundTrafficPolicy{Mode: mode}
	in.ExternalServices = map[ServiceKey]*v1alpha1.ExternalServiceSpec{}
	for _, o := range objs {
		in.ExternalServices[ServiceKey{Namespace: o.Metadata.Namespace, Name: o.Metadata.Name}] = o.Spec.(*v1alpha1.ExternalServiceSpec)
	}
	// TLS origination, with a CA the validation accepts.
	ca, err := os.ReadFile(filepath.Join("testdata", "tracing-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	secure := &v1alpha1.ExternalServiceSpec{
		Hosts: []string{"secure.partner.example"}, Ports: []v1alpha1.ExternalPort{{Name: "web", Port: 80}},
		Endpoints: []v1alpha1.ExternalEndpoint{{Address: "127.0.8.4", Ports: map[string]int32{"web": 443}}},
		TLS:       &v1alpha1.ExternalTLS{Mode: v1alpha1.TLSOriginate, CABundle: string(ca)},
	}
	secure.Default()
	if errs := secure.Validate(v1alpha1.NewPath("spec")); len(errs) > 0 {
		t.Fatal(errs)
	}
	in.ExternalServices[ServiceKey{Namespace: "shop", Name: "secure"}] = secure
	return in
}

func egressNode() xdsmeta.Node {
	n := node("shop", "web", "127.0.5.2:15006")
	n.HTTPProxy = "127.0.5.2:15080"
	return n
}

// TestEgressGolden: under REGISTRY_ONLY the HTTP proxy's route holds the
// mesh services, then a virtual host per external host to its STATIC
// cluster, the unsupported ExternalService answering egress_unsupported,
// and the final catch-all answering egress_denied.
func TestEgressGolden(t *testing.T) {
	r, err := ForNode(egressInput(t, v1alpha1.OutboundRegistryOnly), egressNode())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, r, "egress.golden")
}

func httpProxyRouteOf(t *testing.T, r *Resources) *routev3.RouteConfiguration {
	t.Helper()
	for _, res := range r.Routes {
		if rc := res.(*routev3.RouteConfiguration); rc.Name == xdsmeta.HTTPProxyRoute {
			return rc
		}
	}
	t.Fatal("no http_proxy route")
	return nil
}

func TestEgressVirtualHosts(t *testing.T) {
	for _, tc := range []struct {
		mode v1alpha1.OutboundMode
		want []string // virtual host: its first route's cluster or direct status
	}{
		{v1alpha1.OutboundAllowAny, []string{
			"catalog.shop=outbound|catalog.shop",
			"external|billing.example=502 egress_unsupported",
			"external|gated.example=outbound|egress.shop",
			"external|api.payments.example=outbound|api.payments.example:80",
			"external|*.cdn.example=outbound|*.cdn.example:80",
			"external|secure.partner.example=outbound|secure.partner.example:80",
		}},
		{v1alpha1.OutboundRegistryOnly, []string{
			"catalog.shop=outbound|catalog.shop",
			"external|billing.example=502 egress_unsupported",
			"external|gated.example=outbound|egress.shop",
			"external|api.payments.example=outbound|api.payments.example:80",
			"external|*.cdn.example=outbound|*.cdn.example:80",
			"external|secure.partner.example=outbound|secure.partner.example:80",
			"egress_denied=502 egress_denied",
		}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			r, err := ForNode(egressInput(t, tc.mode), egressNode())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, vh := range httpProxyRouteOf(t, r).VirtualHosts {
				rt := vh.Routes[0]
				if d := rt.GetDirectResponse(); d != nil {
					got = append(got, vh.Name+"="+strconv.Itoa(int(d.Status))+" "+rt.ResponseHeadersToAdd[0].Header.Value)
					continue
				}
				got = append(got, vh.Name+"="+rt.GetRoute().GetCluster())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("virtual hosts (-want +got):\n%s", diff)
			}
			// The shadowed ExternalService (zz/shadowed) lost its host to
			// shop/payments: its endpoint is nowhere.
			for _, res := range r.Clusters {
				c := res.(*clusterv3.Cluster)
				if strings.Contains(c.String(), "127.0.8.9") {
					t.Errorf("cluster %s holds the shadowed ExternalService's endpoint", c.Name)
				}
			}
		})
	}
}

// TestEgressNeedsHTTPProxy: a proxy without an HTTP proxy port gets no
// external cluster, and a sidecar's output without ExternalServices under
// ALLOW_ANY is what it was.
func TestEgressNeedsHTTPProxy(t *testing.T) {
	in := egressInput(t, v1alpha1.OutboundRegistryOnly)
	r, err := ForNode(in, node("shop", "web", "127.0.5.2:15006", "catalog.shop=127.0.5.2:9000"))
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Clusters {
		if name := res.(*clusterv3.Cluster).Name; strings.Contains(name, "example") {
			t.Errorf("cluster %s sent to a proxy without an HTTP proxy port", name)
		}
	}
	plain := egressInput(t, v1alpha1.OutboundAllowAny)
	plain.ExternalServices, plain.Mesh.OutboundTrafficPolicy = nil, nil
	base := input([]service{{ns: "shop", name: "catalog", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
		workload("shop", "catalog", "v1", "127.0.5.1:15006", true),
	}}}, false)
	a, err := ForNode(plain, egressNode())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ForNode(base, egressNode())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(render(t, b)), string(render(t, a))); diff != "" {
		t.Errorf("output without ExternalServices changed:\n%s", diff)
	}
}

// TestEgressGateway: a sidecar sends an ExternalService naming a gateway to
// the gateway's mesh cluster (mTLS, EDS), keeping the Host, and has no
// cluster of the external host itself; the gateway (mode egress) routes
// that host, and only that host, from its mTLS inbound listener to the
// external endpoints.
func TestEgressGateway(t *testing.T) {
	in := egressInput(t, v1alpha1.OutboundAllowAny)
	r, err := ForNode(in, egressNode())
	if err != nil {
		t.Fatal(err)
	}
	clusters := map[string]bool{}
	for _, res := range r.Clusters {
		clusters[res.(*clusterv3.Cluster).Name] = true
	}
	if !clusters["outbound|egress.shop"] || clusters["outbound|gated.example:80"] {
		t.Errorf("sidecar clusters %v: want outbound|egress.shop and not outbound|gated.example:80", clusters)
	}

	gw := node("shop", "egress", "127.0.5.3:15006")
	gw.Mode = xdsmeta.ModeEgress
	r, err = ForNode(in, gw)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, r, "egress-gateway.golden")
	var vhosts []string
	for _, res := range r.Listeners {
		if !strings.Contains(string(mustJSON(t, res)), "external|gated.example") {
			continue
		}
		vhosts = append(vhosts, "inbound listener routes gated.example")
	}
	if len(vhosts) != 1 {
		t.Errorf("the gateway's inbound listener does not route gated.example")
	}
	if s := string(render(t, r)); !strings.Contains(s, "outbound|gated.example:80") || strings.Contains(s, "outbound|api.payments.example:80") ||
		!strings.Contains(s, "egress_denied: the host is not an ExternalService sent through egress gateway egress.shop") {
		t.Errorf("gateway output: want the gated cluster, no other external cluster, and the deny catch-all:\n%s", s)
	}
}

func mustJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
