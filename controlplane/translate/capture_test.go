package translate

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
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
	// shop/fresh has no VIP yet; data/twin's VIP is db's, which keeps it.
	// Each VIP port gets the passthrough HTTP chain too (but tcp ones,
	// where no HTTP is detected), and other ports the port-less one.
	want := []string{
		"outbound|db.data|10.96.0.10:5432 port=5432 prefix=10.96.0.10/32",
		"outbound|catalog.shop|240.240.0.2:8080 port=8080 prefix=240.240.0.2/32",
		"outbound|web.shop|240.240.0.1:8080 port=8080 prefix=240.240.0.1/32",
		"outbound_passthrough|8080 port=8080 prefix=0.0.0.0/0 transport=raw_buffer alpn=http/1.0,http/1.1,h2c",
		"outbound_passthrough transport=raw_buffer alpn=http/1.0,http/1.1,h2c",
	}
	if diff := cmp.Diff(want, chainMatches(out)); diff != "" {
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

// TestCaptureInbound: a transparent proxy's inbound listener matches the
// workload's own port; under PERMISSIVE the pod's other ports pass through
// to where they were going, under STRICT they match nothing.
func TestCaptureInbound(t *testing.T) {
	for _, mode := range []v1alpha1.MTLSMode{v1alpha1.MTLSStrict, v1alpha1.MTLSPermissive} {
		in := captureInput()
		in.Mesh.MTLS.Mode = mode
		r, err := ForNode(in, transparentNode())
		if err != nil {
			t.Fatal(err)
		}
		var inbound *listenerv3.Listener
		for _, res := range r.Listeners {
			if l := res.(*listenerv3.Listener); l.GetName() == xdsmeta.InboundListener {
				inbound = l
			}
		}
		if !inbound.GetUseOriginalDst().GetValue() {
			t.Errorf("%s: the inbound listener does not read the original destination", mode)
		}
		for _, m := range chainMatches(inbound) {
			if !strings.Contains(m, "port=8080") {
				t.Errorf("%s: inbound chain %q does not match the workload's port 8080", mode, m)
			}
		}
		dfc := inbound.GetDefaultFilterChain()
		switch {
		case mode == v1alpha1.MTLSStrict && dfc != nil:
			t.Errorf("STRICT: the pod's other ports have a default chain %q", dfc.GetName())
		case mode == v1alpha1.MTLSPermissive && dfc == nil:
			t.Errorf("PERMISSIVE: the pod's other ports do not pass through")
		case mode == v1alpha1.MTLSPermissive:
			tp := &tcpproxyv3.TcpProxy{}
			if err := dfc.GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil || tp.GetCluster() != xdsmeta.PassthroughCluster {
				t.Errorf("PERMISSIVE: the default chain goes to %q (%v), want %s", tp.GetCluster(), err, xdsmeta.PassthroughCluster)
			}
		}
	}
}

// chainMatches describes each filter chain of l by its name and match.
func chainMatches(l *listenerv3.Listener) []string {
	var out []string
	for _, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		parts := []string{fc.GetName()}
		if p := m.GetDestinationPort(); p != nil {
			parts = append(parts, fmt.Sprintf("port=%d", p.GetValue()))
		}
		for _, r := range m.GetPrefixRanges() {
			parts = append(parts, fmt.Sprintf("prefix=%s/%d", r.GetAddressPrefix(), r.GetPrefixLen().GetValue()))
		}
		if m.GetTransportProtocol() != "" {
			parts = append(parts, "transport="+m.GetTransportProtocol())
		}
		if len(m.GetServerNames()) > 0 {
			parts = append(parts, "sni="+strings.Join(m.GetServerNames(), ","))
		}
		if len(m.GetApplicationProtocols()) > 0 {
			parts = append(parts, "alpn="+strings.Join(m.GetApplicationProtocols(), ","))
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

// captureEgressInput is captureInput plus ExternalServices of every kind:
// HTTP with a static endpoint, TLS by SNI (exact and wildcard hosts), TCP
// with two endpoints, HTTP and TLS through an egress gateway, and DNS
// resolution.
func captureEgressInput(mode v1alpha1.OutboundMode) *Input {
	in := captureInput()
	in.Mesh.OutboundTrafficPolicy = &v1alpha1.OutboundTrafficPolicy{Mode: mode}
	in.ExternalServices = map[ServiceKey]*v1alpha1.ExternalServiceSpec{
		{"shop", "partner"}: {Hosts: []string{"api.partner.example"}, Ports: []v1alpha1.ExternalPort{{Name: "web", Port: 80}},
			Endpoints: []v1alpha1.ExternalEndpoint{{Address: "192.0.2.10"}}},
		{"shop", "secure"}: {Hosts: []string{"secure.partner.example", "*.secure.example"},
			Ports:     []v1alpha1.ExternalPort{{Port: 443, Protocol: v1alpha1.ExternalTLSProtocol}},
			Endpoints: []v1alpha1.ExternalEndpoint{{Address: "192.0.2.11"}}},
		{"shop", "mysql"}: {Hosts: []string{"db.partner.example"},
			Ports:     []v1alpha1.ExternalPort{{Name: "sql", Port: 3306, Protocol: v1alpha1.ExternalTCP}},
			Endpoints: []v1alpha1.ExternalEndpoint{{Address: "192.0.2.12"}, {Address: "192.0.2.13", Ports: map[string]int32{"sql": 13306}}}},
		{"shop", "gated"}: {Hosts: []string{"gated.partner.example"}, Ports: []v1alpha1.ExternalPort{{Port: 80}, {Port: 8443, Protocol: v1alpha1.ExternalHTTPS}, {Port: 5000, Protocol: v1alpha1.ExternalTCP}},
			Endpoints: []v1alpha1.ExternalEndpoint{{Address: "192.0.2.14"}}, EgressGateway: "egress"},
		{"shop", "dynamic"}: {Hosts: []string{"dyn.partner.example"}, Resolution: v1alpha1.ResolutionDNS,
			Ports: []v1alpha1.ExternalPort{{Port: 80}, {Port: 9443, Protocol: v1alpha1.ExternalHTTPS}}},
	}
	for _, es := range in.ExternalServices {
		es.Default()
		if errs := es.Validate(v1alpha1.NewPath("spec")); len(errs) > 0 {
			panic(errs)
		}
	}
	return in
}

func captureListenerOf(t *testing.T, r *Resources) *listenerv3.Listener {
	t.Helper()
	for _, res := range r.Listeners {
		if l := res.(*listenerv3.Listener); l.GetName() == xdsmeta.OutboundCaptureListener {
			return l
		}
	}
	t.Fatal("no outbound capture listener")
	return nil
}

func TestCaptureEgressGolden(t *testing.T) {
	r, err := ForNode(captureEgressInput(v1alpha1.OutboundRegistryOnly), transparentNode())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, r, "capture-egress.golden")
}

// TestCapturePassthroughChains: the capture listener's chains for
// destinations that are no VIP, under both outbound traffic policies.
func TestCapturePassthroughChains(t *testing.T) {
	for _, mode := range []v1alpha1.OutboundMode{v1alpha1.OutboundAllowAny, v1alpha1.OutboundRegistryOnly} {
		t.Run(string(mode), func(t *testing.T) {
			r, err := ForNode(captureEgressInput(mode), transparentNode())
			if err != nil {
				t.Fatal(err)
			}
			l := captureListenerOf(t, r)
			http := "transport=raw_buffer alpn=http/1.0,http/1.1,h2c"
			want := []string{
				"outbound|db.data|10.96.0.10:5432 port=5432 prefix=10.96.0.10/32",
				"outbound|catalog.shop|240.240.0.2:8080 port=8080 prefix=240.240.0.2/32",
				"outbound|web.shop|240.240.0.1:8080 port=8080 prefix=240.240.0.1/32",
				// The tcp port's endpoints, to the ExternalService's
				// cluster; the gated one leaves through its gateway only.
				"outbound|db.partner.example:3306|192.0.2.12:3306 port=3306 prefix=192.0.2.12/32",
				"outbound|db.partner.example:3306|192.0.2.13:3306 port=3306 prefix=192.0.2.13/32",
				// Per port that a chain names: HTTP (not on tcp ports:
				// the http_inspector is off there), and TLS by SNI where
				// an ExternalService (not gated) declares tls or https.
				"outbound_passthrough|443 port=443 prefix=0.0.0.0/0 " + http,
				"PassthroughCluster|tls|443 port=443 prefix=0.0.0.0/0 transport=tls sni=*.secure.example,secure.partner.example",
				"outbound_passthrough|8080 port=8080 prefix=0.0.0.0/0 " + http,
				"outbound_passthrough|9443 port=9443 prefix=0.0.0.0/0 " + http,
				"PassthroughCluster|tls|9443 port=9443 prefix=0.0.0.0/0 transport=tls sni=dyn.partner.example",
				"outbound_passthrough " + http,
			}
			if diff := cmp.Diff(want, chainMatches(l)); diff != "" {
				t.Errorf("filter chains (-want +got):\n%s", diff)
			}
			if err := l.ValidateAll(); err != nil {
				t.Fatalf("Envoy's constraints: %v", err)
			}

			// The TLS chains pass through whatever the policy; the default
			// chain is refused first under REGISTRY_ONLY.
			for _, fc := range l.GetFilterChains() {
				if strings.HasPrefix(fc.GetName(), "PassthroughCluster|tls|") {
					if len(fc.GetFilters()) != 1 || fc.GetFilters()[0].GetName() != filterTCPProxy {
						t.Errorf("%s: filters %v, want one TcpProxy", fc.GetName(), fc.GetFilters())
					}
				}
			}
			dfc := l.GetDefaultFilterChain()
			denies := dfc.GetFilters()[0].GetTypedConfig().MessageIs(&rbacnetworkv3.RBAC{})
			if denies != (mode == v1alpha1.OutboundRegistryOnly) {
				t.Errorf("default chain RBAC: %v under %s", denies, mode)
			}

			// Inspectors: neither waits on a tcp port (db's 5432, the
			// ExternalService's 3306, the gated one's 5000); then the
			// 100 ms fallback to TCP.
			var disabled []string
			for _, f := range l.GetListenerFilters() {
				var ranges []string
				for _, r := range f.GetFilterDisabled().GetOrMatch().GetRules() {
					ranges = append(ranges, fmt.Sprint(r.GetDestinationPortRange().GetStart()))
				}
				disabled = append(disabled, f.GetName()+" off "+strings.Join(ranges, ","))
			}
			wantFilters := []string{
				"envoy.filters.listener.tls_inspector off 3306,5000,5432",
				"envoy.filters.listener.http_inspector off 3306,5000,5432",
			}
			if diff := cmp.Diff(wantFilters, disabled); diff != "" {
				t.Errorf("listener filters (-want +got):\n%s", diff)
			}
			if l.GetListenerFiltersTimeout().AsDuration() != ProtocolDetectionTimeout || !l.GetContinueOnListenerFiltersTimeout() {
				t.Errorf("listener_filters_timeout %v, continue %v", l.GetListenerFiltersTimeout().AsDuration(), l.GetContinueOnListenerFiltersTimeout())
			}

			// The detected-HTTP route: ExternalService hosts as on the HTTP
			// proxy port, then the policy's catch-all.
			var vhosts []string
			for _, vh := range passthroughRoute(t, r, l).GetVirtualHosts() {
				rt := vh.GetRoutes()[0]
				if d := rt.GetDirectResponse(); d != nil {
					vhosts = append(vhosts, fmt.Sprintf("%s=%d %s", vh.GetName(), d.GetStatus(), rt.GetResponseHeadersToAdd()[0].GetHeader().GetValue()))
					continue
				}
				vhosts = append(vhosts, vh.GetName()+"="+rt.GetRoute().GetCluster())
			}
			wantVhosts := []string{
				"external|dyn.partner.example=PassthroughCluster",
				"external|gated.partner.example=outbound|egress.shop",
				"external|api.partner.example=outbound|api.partner.example:80",
			}
			if mode == v1alpha1.OutboundRegistryOnly {
				wantVhosts = append(wantVhosts, "egress_denied=502 egress_denied")
			} else {
				wantVhosts = append(wantVhosts, "allow_any=PassthroughCluster")
			}
			if diff := cmp.Diff(wantVhosts, vhosts); diff != "" {
				t.Errorf("passthrough virtual hosts (-want +got):\n%s", diff)
			}

			// What the DNS resolver answers: exact hosts with static
			// endpoints, the gated one too (its HTTP goes by Host).
			hosts, err := xdsmeta.ExternalHostTableFromListener(l)
			if err != nil {
				t.Fatal(err)
			}
			wantHosts := map[string]string{
				"api.partner.example": "[192.0.2.10]", "secure.partner.example": "[192.0.2.11]",
				"db.partner.example": "[192.0.2.12 192.0.2.13]", "gated.partner.example": "[192.0.2.14]",
			}
			gotHosts := map[string]string{}
			for h, a := range hosts {
				gotHosts[h] = fmt.Sprint(a)
			}
			if diff := cmp.Diff(wantHosts, gotHosts); diff != "" {
				t.Errorf("external hosts (-want +got):\n%s", diff)
			}
			if vips, err := xdsmeta.VIPTableFromListener(l); err != nil || len(vips) != 3 {
				t.Errorf("VIP table %v %v", vips, err)
			}

			// The clusters those chains and routes need, and no other.
			clusters := map[string]*clusterv3.Cluster{}
			for _, res := range r.Clusters {
				c := res.(*clusterv3.Cluster)
				clusters[c.GetName()] = c
			}
			for _, name := range []string{"outbound|api.partner.example:80", "outbound|db.partner.example:3306", "outbound|egress.shop", xdsmeta.PassthroughCluster} {
				if clusters[name] == nil {
					t.Errorf("no cluster %s", name)
				}
			}
			for _, name := range []string{"outbound|gated.partner.example:80", "outbound|gated.partner.example:5000", "outbound|dyn.partner.example:80"} {
				if clusters[name] != nil {
					t.Errorf("cluster %s: sent through its gateway or unsupported", name)
				}
			}
			tcp := clusters["outbound|db.partner.example:3306"]
			if tcp.GetTypedExtensionProtocolOptions() != nil || tcp.GetTransportSocket() != nil {
				t.Errorf("the tcp cluster speaks HTTP or TLS: %v", tcp)
			}
			var eps []string
			for _, lb := range tcp.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				eps = append(eps, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
			}
			if diff := cmp.Diff([]string{"192.0.2.12:3306", "192.0.2.13:13306"}, eps); diff != "" {
				t.Errorf("tcp cluster endpoints (-want +got):\n%s", diff)
			}
		})
	}
}

// passthroughRoute is the route of the capture listener's detected-HTTP
// chains: every one of them fetches it, over RDS.
func passthroughRoute(t *testing.T, r *Resources, l *listenerv3.Listener) *routev3.RouteConfiguration {
	t.Helper()
	n := 0
	for _, fc := range l.GetFilterChains() {
		if !strings.HasPrefix(fc.GetName(), xdsmeta.PassthroughRoute) {
			continue
		}
		h := &hcmv3.HttpConnectionManager{}
		if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(h); err != nil {
			t.Fatal(err)
		}
		if name := h.GetRds().GetRouteConfigName(); name != xdsmeta.PassthroughRoute {
			t.Fatalf("%s: route %q", fc.GetName(), name)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no detected-HTTP chain")
	}
	for _, res := range r.Routes {
		if rc := res.(*routev3.RouteConfiguration); rc.GetName() == xdsmeta.PassthroughRoute {
			if !rc.GetIgnorePortInHostMatching() {
				t.Error("the passthrough route matches the port in Host")
			}
			return rc
		}
	}
	t.Fatalf("no RouteConfiguration %s", xdsmeta.PassthroughRoute)
	return nil
}

// TestCaptureAndHTTPProxyShareEgress: a transparent proxy with an HTTP
// proxy port gets each external cluster and CA once, and a capture
// listener without ExternalServices has no external cluster.
func TestCaptureAndHTTPProxyShareEgress(t *testing.T) {
	in := captureEgressInput(v1alpha1.OutboundAllowAny)
	ca, err := os.ReadFile(filepath.Join("testdata", "tracing-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	in.ExternalServices[ServiceKey{"shop", "originate"}] = &v1alpha1.ExternalServiceSpec{
		Hosts: []string{"tls.partner.example"}, Ports: []v1alpha1.ExternalPort{{Port: 80}},
		Endpoints: []v1alpha1.ExternalEndpoint{{Address: "192.0.2.15"}},
		TLS:       &v1alpha1.ExternalTLS{Mode: v1alpha1.TLSOriginate, CABundle: string(ca)},
	}
	in.ExternalServices[ServiceKey{"shop", "originate"}].Default()
	n := transparentNode()
	n.HTTPProxy = "127.0.0.1:15080"
	r, err := ForNode(in, n)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, res := range r.Clusters {
		names = append(names, res.(*clusterv3.Cluster).GetName())
	}
	for _, res := range r.Secrets {
		names = append(names, "secret "+resourceName(res))
	}
	for _, want := range []string{"outbound|api.partner.example:80", "outbound|tls.partner.example:80", "secret external-ca|shop/originate"} {
		if n := len(slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s != want })); n != 1 {
			t.Errorf("%s: %d times in %v, want once", want, n, names)
		}
	}

	r, err = ForNode(captureInput(), transparentNode())
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Clusters {
		if name := res.(*clusterv3.Cluster).GetName(); strings.Contains(name, "example") {
			t.Errorf("cluster %s without ExternalServices", name)
		}
	}
	if hosts, err := xdsmeta.ExternalHostTableFromListener(captureListenerOf(t, r)); hosts != nil || err != nil {
		t.Errorf("external hosts without ExternalServices: %v %v", hosts, err)
	}
}
