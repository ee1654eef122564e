package translate

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Ingress gateways. A proxy in ingress mode serves the Gateways of its
// namespace whose spec.service is its own service: one listener per
// Gateway port, on the node's listen IP. HTTPS listeners terminate TLS
// with the Gateway's own certificates, sent as SDS secrets (one filter
// chain per certificate, chosen by SNI); every listener routes by Host
// through RDS to the mesh services the attached Routes name, over the
// mesh's mTLS with the gateway's SVID.

// gatewayInspectionTimeout bounds the wait for a client's ClientHello on
// an HTTPS gateway listener.
const gatewayInspectionTimeout = 10 * time.Second

// gatewayListener is one listener of one Gateway, as an ingress proxy serves it.
type gatewayListener struct {
	gateway ServiceKey // the Gateway's namespace and name
	spec    *v1alpha1.GatewayListener
}

// GatewaysOf lists, sorted by name, the Gateways an ingress proxy of the
// service key serves.
func (in *Input) GatewaysOf(key ServiceKey) []ServiceKey {
	var out []ServiceKey
	for gk, g := range in.Gateways {
		if gk.Namespace == key.Namespace && g.Service == key.Name {
			out = append(out, gk)
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// gatewayListeners lists the listeners an ingress proxy of key binds, by
// port. Should two Gateways claim one port, the first by name has it.
func (in *Input) gatewayListeners(key ServiceKey) []gatewayListener {
	byPort := map[int]gatewayListener{}
	for _, gk := range in.GatewaysOf(key) {
		g := in.Gateways[gk]
		for i := range g.Listeners {
			l := &g.Listeners[i]
			if _, taken := byPort[l.Port]; !taken {
				byPort[l.Port] = gatewayListener{gateway: gk, spec: l}
			}
		}
	}
	out := make([]gatewayListener, 0, len(byPort))
	for _, l := range byPort {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b gatewayListener) int { return cmp.Compare(a.spec.Port, b.spec.Port) })
	return out
}

// AttachedRoutes lists, sorted by name, the gateway Routes that name the
// Gateway gw (a Route attaches to Gateways of its own namespace).
func (in *Input) AttachedRoutes(gw ServiceKey) []ServiceKey {
	var out []ServiceKey
	for rk, r := range in.GatewayRoutes {
		if rk.Namespace == gw.Namespace && slices.Contains(r.Gateways, gw.Name) {
			out = append(out, rk)
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// GatewayHostAllowed reports whether a Route host is one a listener with
// the given hosts serves: "*" serves everything, "*.example.com" any name
// or narrower wildcard below example.com, an exact host only itself.
func GatewayHostAllowed(listenerHosts []string, routeHost string) bool {
	for _, l := range listenerHosts {
		switch {
		case l == routeHost, l == "*":
			return true
		case strings.HasPrefix(l, "*.") && routeHost != "*":
			if v1alpha1.GatewayHostMatches(l, strings.TrimPrefix(routeHost, "*.")) {
				return true
			}
		}
	}
	return false
}

// ingress adds an ingress proxy's listeners, route configurations and
// secrets to r, and returns the services its routes send to.
func (t *translation) ingress(r *Resources) ([]ServiceKey, error) {
	self := ServiceKey{Namespace: t.node.Namespace, Name: t.node.Service}
	ip := t.node.ListenIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	var targets []ServiceKey
	for _, gl := range t.in.gatewayListeners(self) {
		addr, err := socketAddress(net.JoinHostPort(ip, strconv.Itoa(gl.spec.Port)))
		if err != nil {
			return nil, fmt.Errorf("gateway %s/%s listener %q: %w", gl.gateway.Namespace, gl.gateway.Name, gl.spec.Name, err)
		}
		rc, dests := t.gatewayRoute(gl)
		for _, d := range dests {
			if !slices.Contains(targets, d) {
				targets = append(targets, d)
			}
		}
		fault := false
		for _, vh := range rc.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				fault = fault || rt.GetTypedPerFilterConfig()[filterFault] != nil
			}
		}
		name := xdsmeta.GatewayListener(gl.spec.Port)
		hcm := t.httpConnectionManager(name, t.rds(xdsmeta.GatewayRoute(gl.spec.Port)), t.outboundHTTPFilters(fault))
		l := &listenerv3.Listener{Name: name, Address: addr}
		if gl.spec.Protocol != v1alpha1.GatewayHTTPS {
			l.FilterChains = []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcm}}}
		} else {
			// The tls_inspector reads the SNI of the ClientHello, which
			// picks the chain and so the certificate. A client that sends
			// nothing is closed after the timeout: there is no plaintext
			// chain.
			l.ListenerFilters = []*listenerv3.ListenerFilter{{
				Name:       listenerTLSInspector,
				ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: t.any(&tlsinspectorv3.TlsInspector{})},
			}}
			l.ListenerFiltersTimeout = durationpb.New(gatewayInspectionTimeout)
			for i, c := range gl.spec.TLS.Certificates {
				secret := xdsmeta.GatewaySecret(gl.gateway.Namespace, gl.gateway.Name, gl.spec.Name, i)
				l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
					Name:             secret,
					FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: serverNames(c.Hosts, gl.spec.Hosts), TransportProtocol: transportTLS},
					TransportSocket:  t.gatewayTLS(secret),
					Filters:          []*listenerv3.Filter{hcm},
				})
				r.Secrets = append(r.Secrets, gatewaySecret(secret, &c))
			}
		}
		r.Listeners = append(r.Listeners, l)
		r.Routes = append(r.Routes, rc)
	}
	slices.SortFunc(targets, compareKeys)
	return targets, nil
}

// serverNames is the SNI match of a certificate's filter chain: its hosts,
// or the listener's. "*" matches any name, so it leaves the match empty.
func serverNames(certHosts, listenerHosts []string) []string {
	hosts := certHosts
	if len(hosts) == 0 {
		hosts = listenerHosts
	}
	if slices.Contains(hosts, "*") {
		return nil
	}
	return slices.Clone(hosts)
}

// gatewayTLS terminates the TLS of clients outside the mesh: the Gateway's
// certificate from SDS, no client certificate, TLS 1.2 or later, ALPN h2
// and http/1.1.
func (t *translation) gatewayTLS(secret string) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name: transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: t.any(&tlsv3.DownstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{t.sdsSecret(secret)},
				TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
				AlpnProtocols:                  []string{"h2", "http/1.1"},
			},
			RequireClientCertificate: wrapperspb.Bool(false),
		})},
	}
}

// gatewaySecret carries a Gateway certificate and its key. Unlike the
// mesh SVID, whose key never leaves its proxy, a Gateway's certificates
// are the user's and the control plane serves them.
func gatewaySecret(name string, c *v1alpha1.GatewayCertificate) types.Resource {
	return &tlsv3.Secret{
		Name: name,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: c.CertificatePEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: c.PrivateKeyPEM}},
		}},
	}
}

// gatewayRoute is the RouteConfiguration of one gateway listener and the
// services it sends to. An HTTPS redirect answers every request with a
// 301; otherwise each host an attached Route names gets a virtual host
// whose routes are those Routes' rules, Route by Route in name order, as
// for mesh traffic (traffic.go). A host no Route names has no virtual
// host: its requests get 404.
func (t *translation) gatewayRoute(gl gatewayListener) (*routev3.RouteConfiguration, []ServiceKey) {
	rc := &routev3.RouteConfiguration{Name: xdsmeta.GatewayRoute(gl.spec.Port), IgnorePortInHostMatching: true}
	if gl.spec.HTTPSRedirect {
		redirect := &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}}
		if gl.spec.HTTPSPort != 0 {
			redirect.PortRedirect = uint32(gl.spec.HTTPSPort)
		}
		rc.VirtualHosts = []*routev3.VirtualHost{{
			Name:    "https-redirect",
			Domains: slices.Clone(gl.spec.Hosts),
			Routes: []*routev3.Route{{
				Name:   "https-redirect",
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Redirect{Redirect: redirect},
			}},
		}}
		return rc, nil
	}
	byHost := map[string]*routev3.VirtualHost{}
	var dests []ServiceKey
	for _, rk := range t.in.AttachedRoutes(gl.gateway) {
		spec := t.in.GatewayRoutes[rk]
		svc := ServiceKey{Namespace: rk.Namespace, Name: spec.Service}
		if !t.in.protocol(svc).IsHTTP() {
			continue // a gateway listener speaks HTTP; status says so
		}
		var routes []*routev3.Route
		for i := range spec.Rules {
			name := spec.Rules[i].Name
			if name == "" {
				name = fmt.Sprintf("rule-%d", i)
			}
			for _, rt := range t.ruleRoutes(svc, &spec.Rules[i]) {
				rt.Name = rk.Name + "/" + name
				routes = append(routes, rt)
			}
		}
		attached := false
		for _, h := range spec.Hosts {
			if !GatewayHostAllowed(gl.spec.Hosts, h) {
				continue
			}
			attached = true
			vh := byHost[h]
			if vh == nil {
				vh = &routev3.VirtualHost{Name: h, Domains: []string{h}}
				byHost[h] = vh
			}
			vh.Routes = append(vh.Routes, routes...)
		}
		if !attached {
			continue
		}
		for _, d := range append([]ServiceKey{svc}, routeSpecTargets(svc, spec)...) {
			if !slices.Contains(dests, d) {
				dests = append(dests, d)
			}
		}
	}
	hosts := make([]string, 0, len(byHost))
	for h := range byHost {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	for _, h := range hosts {
		rc.VirtualHosts = append(rc.VirtualHosts, byHost[h])
	}
	return rc, dests
}
