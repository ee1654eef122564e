package translate

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// Egress: calls from apps to hosts outside the mesh.
//
// An ExternalService's hosts become virtual hosts of the explicit HTTP
// proxy's route (one per host, domains the host itself; the route ignores
// the port, so a host is routed to its first http port), each sending
// everything to the STATIC cluster "outbound|<host>:<port>" whose endpoints
// are the spec's addresses, plaintext HTTP/1.1. Under the Mesh's outbound
// traffic policy REGISTRY_ONLY, a last catch-all virtual host "*" answers
// every other host with 502 and `x-weft-error: egress_denied` (a
// direct_response; the proxy logs the refusal with the host). Under
// ALLOW_ANY an unregistered host is not routed (404 route_not_found): the
// HTTP proxy has no dynamic forward proxy yet.
//
// With `tls: {mode: originate}` the cluster speaks TLS to the endpoints
// (the app speaks plain HTTP to its sidecar): SNI and the DNS SAN checked
// are spec.tls.sni, the CA is the SDS validation context
// "external-ca|<ns>/<name>" sent beside ROOTCA.
//
// With `egressGateway: <name>` a sidecar sends the host to the mesh
// cluster of the service <name> in the ExternalService's namespace
// (`outbound|<name>.<ns>`: mTLS, EDS), keeping the Host, and gets no
// cluster of the external host. The gateway, a proxy run with
// `--mode egress` as that service, serves those hosts on its inbound
// (mTLS, AccessPolicies) listener: its inline route has their virtual
// hosts, to the external clusters (TLS originated there when asked), then
// a catch-all answering 502 egress_denied.
//
// What the proxy cannot do yet is refused on the request rather than
// silently weakened: an ExternalService with DNS resolution gets a virtual
// host answering 502 with `x-weft-error: egress_unsupported` and the
// reason in the body.
//
// The transparent-capture listener (15001) shares these rules through
// egressHosts: the route of its detected-HTTP passthrough chains
// (outbound_passthrough, capture.go) takes the same virtual hosts and
// clusters, then under ALLOW_ANY a catch-all to PassthroughCluster. There,
// too, TLS whose SNI is a host of an ExternalService with a tls or https
// port passes through (externalTLSHosts), TCP to the static endpoints of
// its tcp ports goes to its cluster (externalTCPChains, capture.go), and
// the sidecar's DNS answers its exact hosts with those endpoints
// (externalHostTable).

const (
	// EgressDeniedRoute names the route that refuses unregistered hosts.
	EgressDeniedRoute = "egress_denied"
	// EgressUnsupportedRoute names the routes that refuse ExternalServices
	// asking for what the proxy cannot do yet.
	EgressUnsupportedRoute = "egress_unsupported"
	// errorHeader carries a local reply's reason, as the proxy's own do.
	errorHeader = "x-weft-error"
)

// egressHosts returns what the ExternalServices of the mesh add to a
// sidecar's HTTP route whose virtual hosts already claim the domains in
// taken (a host a mesh service or an earlier ExternalService claims is left
// out: Envoy refuses a domain two virtual hosts share): their virtual
// hosts, and under REGISTRY_ONLY the final catch-all that refuses every
// other host; the clusters, CA secrets and egress gateways those need.
// taken is updated with the domains added. Virtual hosts come in the order
// of the ExternalServices (by namespace, then name), then of their hosts.
// This is the helper for any outbound HTTP route (the HTTP proxy port, the
// transparent outbound listener's HTTP chain).
func (t *translation) egressHosts(taken map[string]bool) egressConfig {
	return t.egressHostsAt(taken, nil, false)
}

// capturedEgressHosts is egressHosts for the transparent capture
// listener's HTTP chain, where each request has an original destination:
// the app resolved the host itself. An ExternalService with DNS resolution
// (and neither TLS origination nor an egress gateway, which would need the
// proxy to resolve it) is then sent there, through PassthroughCluster, as
// Istio sends a ServiceEntry with resolution NONE; it is allowed under
// REGISTRY_ONLY like any listed host.
func (t *translation) capturedEgressHosts(taken map[string]bool) egressConfig {
	return t.egressHostsAt(taken, nil, true)
}

// egressConfig is what egress adds to an HTTP route: virtual hosts, the
// clusters of the external hosts (sorted), the CAs those verify servers
// with, and the egress gateways they send through (mesh services whose
// clusters the proxy needs).
type egressConfig struct {
	vhosts   []*routev3.VirtualHost
	clusters []*clusterv3.Cluster
	secrets  []*tlsv3.Secret
	gateways []ServiceKey
}

// egressHostsAt is egressHosts for a sidecar (gateway nil) or for the
// egress gateway gateway, which serves only the ExternalServices that name
// it and refuses every other host whatever the outbound traffic policy.
func (t *translation) egressHostsAt(taken map[string]bool, gateway *ServiceKey, captured bool) egressConfig {
	var out egressConfig
	clusters := map[string]*clusterv3.Cluster{}
	gateways := map[ServiceKey]bool{}
	for _, key := range slices.SortedFunc(maps.Keys(t.in.ExternalServices), compareKeys) {
		es := t.in.ExternalServices[key]
		port, ok := firstHTTPPort(es)
		if !ok {
			continue
		}
		var via *ServiceKey
		if es.EgressGateway != "" {
			via = &ServiceKey{Namespace: key.Namespace, Name: es.EgressGateway}
		}
		switch {
		case gateway != nil && (via == nil || *via != *gateway):
			continue // another gateway's, or sent straight out by sidecars
		case gateway != nil:
			via = nil // this gateway sends it out
		}
		unsupported := unsupportedEgress(es)
		toOriginalDst := captured && es.Resolution == v1alpha1.ResolutionDNS && es.TLS == nil && via == nil
		if toOriginalDst {
			unsupported = ""
		}
		if es.TLS != nil && unsupported == "" && via == nil {
			out.secrets = append(out.secrets, externalCA(key, es.TLS))
		}
		for _, h := range es.Hosts {
			if taken[h] {
				continue
			}
			taken[h] = true
			name := "external|" + h
			if via != nil && unsupported == "" {
				// Through the gateway, over the mesh's mTLS; the Host
				// stays, and the gateway routes by it.
				gateways[*via] = true
				out.vhosts = append(out.vhosts, &routev3.VirtualHost{
					Name:    name,
					Domains: []string{h},
					Routes:  []*routev3.Route{routeAll(xdsmeta.OutboundCluster(via.Name, via.Namespace))},
				})
				continue
			}
			if unsupported != "" {
				out.vhosts = append(out.vhosts, &routev3.VirtualHost{
					Name:    name,
					Domains: []string{h},
					Routes: []*routev3.Route{directReply(EgressUnsupportedRoute, 502, "egress_unsupported",
						fmt.Sprintf("egress_unsupported: ExternalService %s/%s (host %s): %s\n", key.Namespace, key.Name, h, unsupported))},
				})
				continue
			}
			if toOriginalDst {
				out.vhosts = append(out.vhosts, &routev3.VirtualHost{
					Name:    name,
					Domains: []string{h},
					Routes:  []*routev3.Route{routeAll(xdsmeta.PassthroughCluster)},
				})
				continue
			}
			cluster := xdsmeta.ExternalCluster(h, port.Port)
			clusters[cluster] = t.externalCluster(cluster, key, es, port)
			out.vhosts = append(out.vhosts, &routev3.VirtualHost{
				Name:    name,
				Domains: []string{h},
				Routes:  []*routev3.Route{routeAll(cluster)},
			})
		}
	}
	if gateway != nil && !taken["*"] {
		taken["*"] = true
		out.vhosts = append(out.vhosts, &routev3.VirtualHost{
			Name:    EgressDeniedRoute,
			Domains: []string{"*"},
			Routes: []*routev3.Route{directReply(EgressDeniedRoute, 502, "egress_denied",
				fmt.Sprintf("egress_denied: the host is not an ExternalService sent through egress gateway %s.%s\n", gateway.Name, gateway.Namespace))},
		})
	}
	if t.in.Mesh.OutboundMode() == v1alpha1.OutboundRegistryOnly && !taken["*"] {
		taken["*"] = true
		out.vhosts = append(out.vhosts, &routev3.VirtualHost{
			Name:    EgressDeniedRoute,
			Domains: []string{"*"},
			Routes: []*routev3.Route{directReply(EgressDeniedRoute, 502, "egress_denied",
				"egress_denied: the host is neither a mesh service nor an ExternalService, and the mesh's outboundTrafficPolicy is REGISTRY_ONLY\n")},
		})
	}
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		out.clusters = append(out.clusters, clusters[name])
	}
	out.gateways = slices.SortedFunc(maps.Keys(gateways), compareKeys)
	return out
}

// httpProxyEgress adds the egress virtual hosts to the HTTP proxy's route
// and returns what they need: the clusters they send to, the CA secrets
// those verify external servers with and the egress gateways whose mesh
// clusters the proxy needs.
func (t *translation) httpProxyEgress(rc *routev3.RouteConfiguration) egressConfig {
	taken := map[string]bool{}
	for _, vh := range rc.VirtualHosts {
		for _, d := range vh.Domains {
			taken[d] = true
		}
	}
	e := t.egressHosts(taken)
	rc.VirtualHosts = append(rc.VirtualHosts, e.vhosts...)
	return e
}

// addEgress adds to r the clusters and CA secrets e needs that r does not
// hold yet (the HTTP proxy port and the capture listener share them: the
// same ExternalService gives both the same resource), and marks e's egress
// gateways reachable in outbound.
func addEgress(r *Resources, outbound map[ServiceKey]bool, e egressConfig) {
	have := map[string]bool{}
	for _, res := range r.Clusters {
		have[resourceName(res)] = true
	}
	for _, res := range r.Secrets {
		have["secret/"+resourceName(res)] = true
	}
	for _, c := range e.clusters {
		if !have[c.GetName()] {
			have[c.GetName()] = true
			r.Clusters = append(r.Clusters, c)
		}
	}
	for _, s := range e.secrets {
		if !have["secret/"+s.GetName()] {
			have["secret/"+s.GetName()] = true
			r.Secrets = append(r.Secrets, s)
		}
	}
	for _, key := range e.gateways {
		outbound[key] = true
	}
}

// externalTLSHosts maps each port that an ExternalService declares tls or
// https to the hosts (sorted, each once) whose TLS a transparent proxy
// lets through to its original destination by SNI. ExternalServices sent
// through an egress gateway are left out: their traffic must leave through
// the gateway, which serves HTTP only.
func (in *Input) externalTLSHosts() map[uint32][]string {
	out := map[uint32][]string{}
	for _, es := range in.ExternalServices {
		if es.EgressGateway != "" {
			continue
		}
		for _, p := range es.Ports {
			if p.Protocol == v1alpha1.ExternalTLSProtocol || p.Protocol == v1alpha1.ExternalHTTPS {
				out[uint32(p.Port)] = append(out[uint32(p.Port)], es.Hosts...)
			}
		}
	}
	for port, hosts := range out {
		slices.Sort(hosts)
		out[port] = slices.Compact(hosts)
	}
	return out
}

// externalHostTable is what the sidecar's DNS answers for ExternalService
// hosts in a transparent pod: each exact host of a STATIC ExternalService,
// its endpoint addresses (in the spec's order), also when it leaves
// through an egress gateway (its HTTP is routed by Host, wherever the app
// connects). A host two ExternalServices list is the first's, by namespace
// then name, as for virtual hosts. Wildcard hosts have no name to answer,
// and DNS resolution is the pod's own resolver's job.
func (in *Input) externalHostTable() xdsmeta.ExternalHostTable {
	table := xdsmeta.ExternalHostTable{}
	for _, key := range slices.SortedFunc(maps.Keys(in.ExternalServices), compareKeys) {
		es := in.ExternalServices[key]
		if es.Resolution == v1alpha1.ResolutionDNS {
			continue
		}
		var addrs []netip.Addr
		for _, ep := range es.Endpoints {
			if a, err := netip.ParseAddr(ep.Address); err == nil && !slices.Contains(addrs, a.Unmap()) {
				addrs = append(addrs, a.Unmap())
			}
		}
		if len(addrs) == 0 {
			continue
		}
		for _, h := range es.Hosts {
			if _, dup := table[h]; dup || strings.HasPrefix(h, "*") {
				continue
			}
			table[h] = addrs
		}
	}
	return table
}

// egressGatewayRoute is the inbound route of an egress gateway (a proxy
// run with --mode egress): the ExternalServices that name it, by Host, to
// their clusters (TLS originated here when they ask), and 502
// egress_denied for any other host. The inbound listener's mTLS and
// AccessPolicies stand before it, so only mesh identities get through. It
// keeps the clusters and secrets for resources() to add.
func (t *translation) egressGatewayRoute(self ServiceKey, name string) *routev3.RouteConfiguration {
	e := t.egressHostsAt(map[string]bool{}, &self, false)
	t.egressGateway = &e
	return &routev3.RouteConfiguration{Name: name, IgnorePortInHostMatching: true, VirtualHosts: e.vhosts}
}

// firstHTTPPort is the port the HTTP proxy routes an ExternalService's
// hosts to.
func firstHTTPPort(es *v1alpha1.ExternalServiceSpec) (v1alpha1.ExternalPort, bool) {
	for _, p := range es.Ports {
		if p.Protocol == v1alpha1.ExternalHTTP {
			return p, true
		}
	}
	return v1alpha1.ExternalPort{}, false
}

// unsupportedEgress says what of es the proxy cannot honour yet, or "".
func unsupportedEgress(es *v1alpha1.ExternalServiceSpec) string {
	var missing []string
	if es.Resolution == v1alpha1.ResolutionDNS {
		missing = append(missing, "DNS resolution")
	}
	if len(missing) == 0 {
		return ""
	}
	return strings.Join(missing, ", ") + " not supported by this mesh version yet"
}

// externalCluster is the STATIC HTTP/1.1 cluster of one ExternalService
// port; the endpoints are the spec's addresses, each on the port it maps the
// spec's port to. With TLS origination it speaks TLS: the SNI, no client
// certificate, the server's certificate verified against the
// ExternalService's CA (its own SDS secret) and valid for the SNI.
func (t *translation) externalCluster(name string, key ServiceKey, es *v1alpha1.ExternalServiceSpec, port v1alpha1.ExternalPort) *clusterv3.Cluster {
	c := externalStaticCluster(name, es, port)
	c.TypedExtensionProtocolOptions = t.httpProtocolOptions(false)
	if es.TLS != nil {
		c.TransportSocket = &corev3.TransportSocket{
			Name: transportSocketTLS,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: t.any(&tlsv3.UpstreamTlsContext{
				Sni: es.TLS.SNI,
				CommonTlsContext: &tlsv3.CommonTlsContext{
					ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
						CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
							DefaultValidationContext: &tlsv3.CertificateValidationContext{
								MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
									SanType: tlsv3.SubjectAltNameMatcher_DNS,
									Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: es.TLS.SNI}},
								}},
							},
							ValidationContextSdsSecretConfig: t.sdsSecret(xdsmeta.ExternalCASecret(key.Namespace, key.Name)),
						},
					},
					AlpnProtocols: []string{alpnHTTP11},
				},
			})},
		}
	}
	return c
}

// externalStaticCluster is a round-robin STATIC cluster over the spec's
// addresses, each on the port it maps port to. As it is, it is the cluster
// of a tcp port, which the capture listener sends plain bytes to (TLS
// origination is for http ports only).
func externalStaticCluster(name string, es *v1alpha1.ExternalServiceSpec, port v1alpha1.ExternalPort) *clusterv3.Cluster {
	var lbs []*endpointv3.LbEndpoint
	for _, ep := range es.Endpoints {
		addr, err := netip.ParseAddr(ep.Address)
		if err != nil {
			// Validation refuses it; one bad object must not cost every
			// proxy its configuration.
			continue
		}
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Protocol:      corev3.SocketAddress_TCP,
				Address:       addr.String(),
				PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ep.EndpointPort(port))},
			}}},
		}}})
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment:       &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}},
	}
}

// externalCA is the SDS validation context holding an ExternalService's CA.
func externalCA(key ServiceKey, tls *v1alpha1.ExternalTLS) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: xdsmeta.ExternalCASecret(key.Namespace, key.Name),
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte(tls.CABundle)}},
		}},
	}
}

// directReply is a catch-all route answering status with body and the
// reason in x-weft-error.
func directReply(name string, status uint32, reason, body string) *routev3.Route {
	return &routev3.Route{
		Name:  name,
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: status,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}},
		}},
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: errorHeader, Value: reason},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
	}
}
