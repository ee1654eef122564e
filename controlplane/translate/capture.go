package translate

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// Transparent mode (node metadata mode: transparent). iptables sends the
// pod's outbound TCP to the outbound capture listener and its inbound TCP to
// the inbound listener, bound on the capture ports.
//
// outbound_capture, on 127.0.0.1:15001 with use_original_dst, matches its
// chains on where the app was connecting, as Istio's virtualOutbound
// listener does:
//   - a chain per mesh service VIP and port: an HCM with the service's own
//     RDS route, or a TcpProxy, exactly what an --upstream port of that
//     service gets;
//   - a chain per static endpoint address and tcp port of an
//     ExternalService: a TcpProxy to the ExternalService's cluster;
//   - passthrough chains for every other destination. HTTP, which the
//     http_inspector detects, goes to an HCM with the RDS route
//     outbound_passthrough: the ExternalServices' virtual hosts (those of
//     the HTTP proxy port, egress.go), then a catch-all to
//     PassthroughCluster (ALLOW_ANY) or answering 502 egress_denied
//     (REGISTRY_ONLY). TLS whose SNI is a host of an ExternalService with a
//     tls or https port passes through to its original destination,
//     whatever the policy;
//   - the default_filter_chain, for everything else: a TcpProxy to
//     PassthroughCluster (ORIGINAL_DST), refused first by a network RBAC
//     under REGISTRY_ONLY. It is a default chain, not a match-all chain.
//
// Envoy matches destination_port before the destination address: a
// connection to an address outside the mesh, on a port some VIP or
// ExternalService chain names, only ever sees the chains of that port. So
// the passthrough chains are repeated for each such port (with prefix
// 0.0.0.0/0, which every VIP's /32 outranks), and once without a port for
// every other port. The listener's metadata carries the VIP table
// (xdsmeta/vip.go) and the ExternalService hosts the sidecar's DNS answers
// (xdsmeta/externalhosts.go).
//
// The inbound listener binds 0.0.0.0:15006 and is otherwise the explicit
// one (mTLS, the service's policies). Peers reach it at the workload's
// registered address, <pod IP>:<app port>, which the pod's iptables
// redirect.

// passthroughConnectTimeout bounds a connection to a destination outside the mesh.
const passthroughConnectTimeout = 10 * time.Second

// vipOf is a service's virtual IP: the one its spec declares, else the one
// the control plane allocated; ok is false when it has neither (yet).
func (in *Input) vipOf(key ServiceKey) (netip.Addr, bool) {
	if s := in.Services[key]; s != nil && s.VIP != "" {
		ip, err := netip.ParseAddr(s.VIP)
		return ip, err == nil && ip.Is4()
	}
	ip, ok := in.VIPs[key]
	return ip, ok
}

// transparent reports whether the proxy's traffic is captured by iptables.
func (t *translation) transparent() bool { return t.node.Mode == xdsmeta.ModeTransparent }

// inboundListenAddress is where the inbound listener binds: the inbound
// capture port in transparent mode, else the node's inbound address.
func (t *translation) inboundListenAddress() string {
	if t.transparent() {
		return xdsmeta.InboundCaptureAddress
	}
	return t.node.Inbound
}

// captureConfig is what the outbound capture listener brings to a
// proxy's resources.
type captureConfig struct {
	listener    *listenerv3.Listener
	passthrough *clusterv3.Cluster
	// route is the RouteConfiguration of detected HTTP to destinations
	// outside the mesh (xdsmeta.PassthroughRoute).
	route *routev3.RouteConfiguration
	// egress is what the passthrough route's ExternalService virtual hosts
	// and the ExternalServices' tcp chains send to.
	egress egressConfig
	// reachable lists the mesh services the listener has chains for,
	// routed those of them that are HTTP (they need their
	// RouteConfiguration).
	reachable, routed []ServiceKey
}

// inboundCapture makes a transparent proxy's inbound listener serve the
// workload's own port as a mesh port. iptables redirects every inbound TCP
// connection of the pod to it, whatever port it was for; the listener reads
// the original destination (use_original_dst) and its chains match the
// port peers dial, the node's inbound port. A connection to another port
// of the pod is, as with Istio's inbound passthrough, sent on to where it
// was going (PassthroughCluster) when the service is PERMISSIVE; under
// STRICT, which admits nothing but the mesh's mutual TLS, it matches no
// chain and is closed, and the proxy logs it with its destination. Ports
// that must stay open to plaintext clients under STRICT are excluded from
// capture (`weft proxy iptables --exclude-inbound-ports`, as Istio's
// excludeInboundPorts).
func (t *translation) inboundCapture(self ServiceKey, l *listenerv3.Listener) error {
	if !t.transparent() {
		return nil
	}
	ap, err := netip.ParseAddrPort(t.node.Inbound)
	if err != nil {
		return fmt.Errorf("inbound address %q: %w", t.node.Inbound, err)
	}
	for _, fc := range l.FilterChains {
		if fc.FilterChainMatch == nil {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{}
		}
		fc.FilterChainMatch.DestinationPort = wrapperspb.UInt32(uint32(ap.Port()))
	}
	l.UseOriginalDst = wrapperspb.Bool(true)
	if t.in.mtlsMode(self) == v1alpha1.MTLSPermissive {
		l.DefaultFilterChain = &listenerv3.FilterChain{
			Name: inboundPassthroughChain,
			Filters: []*listenerv3.Filter{{
				Name: filterTCPProxy,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(&tcpproxyv3.TcpProxy{
					StatPrefix:       inboundPassthroughChain,
					ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: xdsmeta.PassthroughCluster},
					AccessLog:        t.accessLogs(inboundPassthroughChain, false),
				})},
			}},
		}
	}
	return nil
}

// inboundPassthroughChain names the inbound chain of a PERMISSIVE
// transparent proxy that passes the pod's other ports through.
const inboundPassthroughChain = "inbound_passthrough"

// outboundCapture builds the outbound capture listener and what it sends
// to.
func (t *translation) outboundCapture() (*captureConfig, error) {
	addr, err := socketAddress(xdsmeta.OutboundCaptureAddress)
	if err != nil {
		return nil, fmt.Errorf("outbound capture address: %w", err)
	}
	out := &captureConfig{}
	taken := map[netip.AddrPort]bool{}
	chains, table := t.vipChains(taken, out)
	// The passthrough route takes the ExternalServices' hosts whatever a
	// mesh service is called: mesh services are reached by VIP here, not
	// by Host.
	out.egress = t.capturedEgressHosts(map[string]bool{})
	tcpChains, tcpClusters := t.externalTCPChains(taken, out.egress.clusters)
	chains = append(chains, tcpChains...)
	out.egress.clusters = append(out.egress.clusters, tcpClusters...)
	slices.SortFunc(out.egress.clusters, func(a, b *clusterv3.Cluster) int { return strings.Compare(a.GetName(), b.GetName()) })
	tlsHosts := t.in.externalTLSHosts()
	out.route = t.passthroughRoute(out.egress.vhosts)
	chains = append(chains, t.passthroughChains(capturePorts(chains, tlsHosts), tlsHosts)...)

	md := table.Metadata()
	t.in.externalHostTable().AddTo(md)
	l := &listenerv3.Listener{
		Name:             xdsmeta.OutboundCaptureListener,
		Address:          addr,
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		// As Istio's virtualOutbound: Envoy then restores the original
		// destination (the original_dst listener filter) before matching.
		UseOriginalDst:     wrapperspb.Bool(true),
		FilterChains:       chains,
		DefaultFilterChain: t.passthroughChain(),
		Metadata:           md,
	}
	t.captureInspectors(l, tlsHosts)
	out.listener = l
	out.passthrough = &clusterv3.Cluster{
		Name:                 xdsmeta.PassthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(passthroughConnectTimeout),
	}
	return out, nil
}

// vipChains are the chains of the mesh services' VIPs and ports, in
// service order, and the VIP table of the services they serve; they claim
// their VIP:ports in taken and record the services in out.
func (t *translation) vipChains(taken map[netip.AddrPort]bool, out *captureConfig) ([]*listenerv3.FilterChain, xdsmeta.VIPTable) {
	table := xdsmeta.VIPTable{}
	var chains []*listenerv3.FilterChain
	for _, key := range t.in.knownServices() {
		ip, ok := t.in.vipOf(key)
		spec := t.in.Services[key]
		if !ok || spec == nil {
			continue
		}
		var filter *listenerv3.Filter
		name := xdsmeta.OutboundCluster(key.Name, key.Namespace)
		http := t.in.protocol(key).IsHTTP()
		if http {
			filter = t.httpConnectionManager(name, t.rds(xdsmeta.OutboundRoute(key.Name, key.Namespace)), t.outboundHTTPFilters(t.in.hasFault(key)))
		} else {
			proxy := t.tcpRouteProxy(name, key)
			proxy.AccessLog = t.accessLogs(name, false)
			filter = &listenerv3.Filter{Name: filterTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(proxy)}}
		}
		added := false
		for _, p := range spec.Ports {
			ap := netip.AddrPortFrom(ip, uint16(p.Port))
			if taken[ap] {
				// Two Services declaring one VIP: the first by name keeps it.
				continue
			}
			taken[ap], added = true, true
			chains = append(chains, addressChain(fmt.Sprintf("%s|%s", name, ap), ap, filter))
		}
		if !added {
			continue
		}
		table[xdsmeta.ServiceHost(key.Name, key.Namespace)] = ip
		out.reachable = append(out.reachable, key)
		if http {
			out.routed = append(out.routed, key)
		}
	}
	return chains, table
}

// externalTCPChains are the chains of the ExternalServices' tcp ports: one
// per static endpoint address and port, a TcpProxy to the ExternalService's
// cluster for that port (named after its first host), which they return
// too. An address:port a VIP or an earlier ExternalService claims in taken
// stays theirs, and so does a cluster name one of have (the HTTP
// clusters) or an earlier ExternalService has. ExternalServices sent
// through an egress gateway get none: the gateway serves HTTP only, and
// their traffic must not leave any other way (under REGISTRY_ONLY the
// default chain refuses it).
func (t *translation) externalTCPChains(taken map[netip.AddrPort]bool, have []*clusterv3.Cluster) ([]*listenerv3.FilterChain, []*clusterv3.Cluster) {
	var chains []*listenerv3.FilterChain
	var clusters []*clusterv3.Cluster
	named := map[string]bool{}
	for _, c := range have {
		named[c.GetName()] = true
	}
	for _, key := range slices.SortedFunc(maps.Keys(t.in.ExternalServices), compareKeys) {
		es := t.in.ExternalServices[key]
		if es.EgressGateway != "" || es.Resolution == v1alpha1.ResolutionDNS || len(es.Hosts) == 0 {
			continue
		}
		for _, port := range es.Ports {
			if port.Protocol != v1alpha1.ExternalTCP {
				continue
			}
			cluster := xdsmeta.ExternalCluster(es.Hosts[0], port.Port)
			if named[cluster] {
				continue
			}
			filter := t.tcpProxy(cluster, cluster)
			added := false
			for _, ep := range es.Endpoints {
				ip, err := netip.ParseAddr(ep.Address)
				if err != nil {
					continue // validation refuses it
				}
				ap := netip.AddrPortFrom(ip.Unmap(), uint16(port.Port))
				if taken[ap] {
					continue
				}
				taken[ap], added = true, true
				chains = append(chains, addressChain(fmt.Sprintf("%s|%s", cluster, ap), ap, filter))
			}
			if added {
				named[cluster] = true
				clusters = append(clusters, externalStaticCluster(cluster, es, port))
			}
		}
	}
	return chains, clusters
}

// addressChain is a chain for the connections to one address and port.
func addressChain(name string, ap netip.AddrPort, filter *listenerv3.Filter) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		Name: name,
		FilterChainMatch: &listenerv3.FilterChainMatch{
			PrefixRanges:    []*corev3.CidrRange{{AddressPrefix: ap.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(ap.Addr().BitLen()))}},
			DestinationPort: wrapperspb.UInt32(uint32(ap.Port())),
		},
		Filters: []*listenerv3.Filter{filter},
	}
}

// capturePorts are the destination ports, sorted, that the address chains
// and the TLS passthrough chains name: each needs its own passthrough
// chains.
func capturePorts(chains []*listenerv3.FilterChain, tlsHosts map[uint32][]string) []uint32 {
	var ports []uint32
	for _, fc := range chains {
		if p := fc.GetFilterChainMatch().GetDestinationPort(); p != nil {
			ports = append(ports, p.GetValue())
		}
	}
	ports = append(ports, slices.Collect(maps.Keys(tlsHosts))...)
	slices.Sort(ports)
	return slices.Compact(ports)
}

// passthroughChains are the chains of destinations that no address chain
// matches: for each of ports, detected HTTP (except on a port declared
// tcp, where the http_inspector never runs) and, where ExternalServices
// declare the port tls or https, TLS to their hosts; then detected HTTP on
// any other port. Every HTTP chain shares one connection manager, with
// the outbound HTTP filters and observers and the RDS route
// outbound_passthrough.
func (t *translation) passthroughChains(ports []uint32, tlsHosts map[uint32][]string) []*listenerv3.FilterChain {
	hcm := t.httpConnectionManager(xdsmeta.PassthroughRoute, t.rds(xdsmeta.PassthroughRoute), t.outboundHTTPFilters(false))
	tcp := t.in.tcpPorts()
	var chains []*listenerv3.FilterChain
	for _, port := range ports {
		if !slices.Contains(tcp, port) {
			chains = append(chains, passthroughHTTPChain(hcm, port))
		}
		if names := tlsHosts[port]; len(names) > 0 {
			chains = append(chains, t.passthroughTLSChain(port, names))
		}
	}
	return append(chains, passthroughHTTPChain(hcm, 0))
}

// anyIPv4 is the prefix of the per-port passthrough chains: it matches
// every destination, and a VIP's /32 outranks it.
var anyIPv4 = []*corev3.CidrRange{{AddressPrefix: "0.0.0.0", PrefixLen: wrapperspb.UInt32(0)}}

// passthroughHTTPChain serves HTTP detected on a connection to a
// destination that no other chain matches, on port (0: on any port no
// chain names). It matches raw_buffer too: a TLS ClientHello offering ALPN
// http/1.1 is not plaintext HTTP.
func passthroughHTTPChain(filter *listenerv3.Filter, port uint32) *listenerv3.FilterChain {
	m := HTTPDetectedMatch()
	m.TransportProtocol = transportRawBuffer
	name := xdsmeta.PassthroughRoute
	if port != 0 {
		m.DestinationPort = wrapperspb.UInt32(port)
		m.PrefixRanges = anyIPv4
		name = fmt.Sprintf("%s|%d", name, port)
	}
	return &listenerv3.FilterChain{Name: name, FilterChainMatch: m, Filters: []*listenerv3.Filter{filter}}
}

// passthroughRoute is the route of detected HTTP to destinations outside
// the mesh, which every detected-HTTP chain's connection manager (with the
// filters and observers of any outbound one) fetches over RDS: the
// ExternalServices' virtual hosts (vhosts, from egressHosts: under
// REGISTRY_ONLY they end with the catch-all answering 502 egress_denied),
// then under ALLOW_ANY a catch-all to PassthroughCluster, which sends the
// request to the connection's original destination in the protocol it came
// in (HTTP/1.1 or h2c).
func (t *translation) passthroughRoute(vhosts []*routev3.VirtualHost) *routev3.RouteConfiguration {
	vhosts = slices.Clone(vhosts)
	if t.in.Mesh.OutboundMode() == v1alpha1.OutboundAllowAny {
		allow := routeAll(xdsmeta.PassthroughCluster)
		allow.Name = allowAnyRoute
		vhosts = append(vhosts, &routev3.VirtualHost{Name: allowAnyRoute, Domains: []string{"*"}, Routes: []*routev3.Route{allow}})
	}
	return &routev3.RouteConfiguration{
		Name:                     xdsmeta.PassthroughRoute,
		IgnorePortInHostMatching: true,
		VirtualHosts:             vhosts,
	}
}

// allowAnyRoute names the catch-all of the passthrough route under
// ALLOW_ANY, as Istio names it.
const allowAnyRoute = "allow_any"

// passthroughTLSChain lets TLS to the given ExternalService hosts (exact
// or *.suffix) on port through to its original destination, also under
// REGISTRY_ONLY: the app originates the TLS, and the SNI is all the proxy
// can check.
func (t *translation) passthroughTLSChain(port uint32, names []string) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		Name: fmt.Sprintf("%s|tls|%d", xdsmeta.PassthroughCluster, port),
		FilterChainMatch: &listenerv3.FilterChainMatch{
			DestinationPort:   wrapperspb.UInt32(port),
			PrefixRanges:      anyIPv4,
			TransportProtocol: transportTLS,
			ServerNames:       names,
		},
		Filters: []*listenerv3.Filter{t.tcpProxy(xdsmeta.PassthroughCluster, xdsmeta.PassthroughCluster)},
	}
}

// captureInspectors adds the listener filters that choose the capture
// listener's chains: a tls_inspector, then the http_inspector
// (addProtocolDetection), each disabled where a server-first protocol
// would wait for them: on every port a Service or ExternalService declares
// tcp. The tls_inspector still runs on such a port when an
// ExternalService declares it tls or https, so that its SNI chain matches.
func (t *translation) captureInspectors(l *listenerv3.Listener, tlsHosts map[uint32][]string) {
	tcp := t.in.tcpPorts()
	tlsOff := slices.DeleteFunc(slices.Clone(tcp), func(p uint32) bool { return len(tlsHosts[p]) > 0 })
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{
		Name:           listenerTLSInspector,
		ConfigType:     &listenerv3.ListenerFilter_TypedConfig{TypedConfig: t.any(&tlsinspectorv3.TlsInspector{})},
		FilterDisabled: portsPredicate(tlsOff),
	})
	t.addProtocolDetection(l, tcp)
}

// passthroughChain serves connections to destinations outside the mesh:
// they go where the app was sending them (outbound policy ALLOW_ANY).
func (t *translation) passthroughChain() *listenerv3.FilterChain {
	var filters []*listenerv3.Filter
	if t.in.Mesh.OutboundMode() == v1alpha1.OutboundRegistryOnly {
		// REGISTRY_ONLY: a destination that is no mesh service is refused
		// before the TCP proxy, by the same network RBAC that enforces
		// AccessPolicies, so the refusal is logged and access-logged with
		// its reason. (Detected HTTP gets the 502 egress_denied of the
		// passthrough route instead, as on the HTTP proxy port.)
		filters = append(filters, &listenerv3.Filter{
			Name: filterRBACNetwork,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(&rbacnetworkv3.RBAC{
				StatPrefix: xdsmeta.PassthroughCluster + ".",
				Rules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_DENY, Policies: map[string]*rbacconfigv3.Policy{
					egressDeniedPolicy: {
						Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}},
						Principals:  []*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_Any{Any: true}}},
					},
				}},
			})},
		})
	}
	filters = append(filters, &listenerv3.Filter{
		Name: filterTCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(&tcpproxyv3.TcpProxy{
			StatPrefix:       xdsmeta.PassthroughCluster,
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: xdsmeta.PassthroughCluster},
			AccessLog:        t.accessLogs(xdsmeta.PassthroughCluster, false),
		})},
	})
	return &listenerv3.FilterChain{Name: xdsmeta.PassthroughCluster, Filters: filters}
}

// egressDeniedPolicy names the refusal of a captured connection to a
// destination outside the registry (REGISTRY_ONLY) in logs.
const egressDeniedPolicy = "egress_denied: not a mesh service or ExternalService (outboundTrafficPolicy REGISTRY_ONLY)"
