package translate

import (
	"fmt"
	"net"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// inbound builds the listener that terminates mTLS from other proxies and
// the static cluster of the local app behind it.
func (t *translation) inbound(self ServiceKey) (*listenerv3.Listener, *clusterv3.Cluster, error) {
	addr, err := socketAddress(t.inboundListenAddress())
	if err != nil {
		return nil, nil, fmt.Errorf("inbound address: %w", err)
	}
	if t.node.App == "" {
		return nil, nil, fmt.Errorf("inbound %s: app address is empty", t.node.Inbound)
	}
	app, err := socketAddress(t.node.App)
	if err != nil {
		return nil, nil, fmt.Errorf("app address: %w", err)
	}
	proto := t.in.protocol(self)
	cluster := xdsmeta.InboundCluster(self.Name, self.Namespace)

	// The inbound side is where the destination's policies are enforced:
	// its HTTP filters (authentication, authorisation, rate limits) or,
	// for TCP, its network filters before the TCP proxy.
	var filters []*listenerv3.Filter
	var alpn []string
	if proto.IsHTTP() {
		alpn = []string{alpnH2, alpnHTTP11}
		route := t.inboundRoute(self, cluster)
		if t.node.Mode == xdsmeta.ModeEgress {
			route = t.egressGatewayRoute(self, route.Name)
		}
		filters = []*listenerv3.Filter{t.httpConnectionManager(xdsmeta.InboundListener,
			inline(route), t.inboundHTTPFilters(self))}
	} else {
		alpn = []string{xdsmeta.ALPNTCP}
		filters = append(t.inboundNetworkFilters(self), t.tcpProxy(xdsmeta.InboundListener, cluster))
	}
	l := &listenerv3.Listener{
		Name:         xdsmeta.InboundListener,
		Address:      addr,
		FilterChains: t.inboundFilterChains(self, filters, alpn),
	}
	t.inboundTLSInspection(self, l)
	t.inboundAuthnMetadata(self, l)
	if err := t.inboundCapture(self, l); err != nil {
		return nil, nil, err
	}

	c := &clusterv3.Cluster{
		Name:                 cluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: cluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: app}},
				}},
			}},
		},
	}
	if proto.IsHTTP() {
		// The app speaks h2c for http2 and grpc services, HTTP/1.1 otherwise.
		h2 := proto == v1alpha1.ProtocolHTTP2 || proto == v1alpha1.ProtocolGRPC
		c.TypedExtensionProtocolOptions = t.httpProtocolOptions(h2)
	}
	return l, c, nil
}

// outboundListener builds the plaintext listener of one --upstream local port.
func (t *translation) outboundListener(u xdsmeta.Upstream, key ServiceKey) (*listenerv3.Listener, error) {
	name := xdsmeta.OutboundListener(u.String())
	addr, err := socketAddress(u.Listen)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", u, err)
	}
	var filter *listenerv3.Filter
	if t.in.protocol(key).IsHTTP() {
		filter = t.httpConnectionManager(name, t.rds(xdsmeta.OutboundRoute(key.Name, key.Namespace)), t.outboundHTTPFilters(t.in.hasFault(key)))
	} else {
		proxy := t.tcpRouteProxy(name, key)
		proxy.AccessLog = t.accessLogs(name, false)
		filter = &listenerv3.Filter{
			Name:       filterTCPProxy,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(proxy)},
		}
	}
	return &listenerv3.Listener{
		Name:         name,
		Address:      addr,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{filter}}},
	}, nil
}

// httpProxy builds the explicit HTTP proxy listener, its route by Host to
// every HTTP service of the mesh, and the list of those services.
func (t *translation) httpProxy() (*listenerv3.Listener, *routev3.RouteConfiguration, []ServiceKey, error) {
	addr, err := socketAddress(t.node.HTTPProxy)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("http proxy address: %w", err)
	}
	rc, reachable := t.httpProxyRoute()
	fault := false
	for _, key := range reachable {
		fault = fault || t.in.hasFault(key)
	}
	l := &listenerv3.Listener{
		Name:    xdsmeta.HTTPProxyListener,
		Address: addr,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
			t.httpConnectionManager(xdsmeta.HTTPProxyListener, t.rds(xdsmeta.HTTPProxyRoute), t.outboundHTTPFilters(fault)),
		}}},
	}
	return l, rc, reachable, nil
}

// httpConnectionManager is a network filter that routes HTTP with the
// router filter, after filters; routes sets where its routes come from.
// Upgrades to WebSocket are allowed on every listener: an upgrade has to
// pass the outbound proxy before it reaches the inbound one.
func (t *translation) httpConnectionManager(statPrefix string, routes func(*hcmv3.HttpConnectionManager), filters []*hcmv3.HttpFilter) *listenerv3.Filter {
	filters = append(filters, &hcmv3.HttpFilter{
		Name:       filterRouter,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: t.any(&routerv3.Router{})},
	})
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		StatPrefix:     statPrefix,
		HttpFilters:    filters,
		UpgradeConfigs: upgrades(),
	}
	routes(hcm)
	t.tracing(hcm, statPrefix)
	hcm.AccessLog = t.accessLogs(statPrefix, true)
	return &listenerv3.Filter{
		Name:       filterHTTPConnectionManager,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(hcm)},
	}
}

// outboundHTTPFilters are the HTTP filters of a listener that sends to the
// mesh: the fault filter, for routes that inject faults.
func (t *translation) outboundHTTPFilters(fault bool) []*hcmv3.HttpFilter {
	if !fault {
		return nil
	}
	return []*hcmv3.HttpFilter{{
		Name:       filterFault,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: t.any(&faultv3.HTTPFault{})},
	}}
}

// tcpProxy is a network filter that forwards bytes to a cluster.
func (t *translation) tcpProxy(statPrefix, cluster string) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: filterTCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(&tcpproxyv3.TcpProxy{
			StatPrefix:       statPrefix,
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
			AccessLog:        t.accessLogs(statPrefix, false),
		})},
	}
}

// rds points an HttpConnectionManager at a RouteConfiguration on the ADS stream.
func (t *translation) rds(name string) func(*hcmv3.HttpConnectionManager) {
	return func(hcm *hcmv3.HttpConnectionManager) {
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: t.adsConfig(), RouteConfigName: name}}
	}
}

// inline embeds a RouteConfiguration in an HttpConnectionManager.
func inline(rc *routev3.RouteConfiguration) func(*hcmv3.HttpConnectionManager) {
	return func(hcm *hcmv3.HttpConnectionManager) {
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
	}
}

// checkListenAddresses refuses two listeners on one address, such as an
// upstream given twice: the proxy could bind only one of them.
func checkListenAddresses(listeners []types.Resource) error {
	seen := make(map[string]string, len(listeners))
	for _, r := range listeners {
		l := r.(*listenerv3.Listener)
		sa := l.GetAddress().GetSocketAddress()
		addr := net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
		if other, ok := seen[addr]; ok {
			return fmt.Errorf("listeners %q and %q both listen on %s", other, l.GetName(), addr)
		}
		seen[addr] = l.GetName()
	}
	return nil
}
