package translate

import (
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// The destination's policies are enforced on its inbound listener. Each
// kind of policy contributes its filters from its own file; this one only
// fixes their order, which is Envoy's and Istio's: authenticate the end
// user (JWT), then authorise (RBAC, which may read the JWT's claims), then
// rate-limit what was allowed (local bucket, then the global service).

// inboundHTTPFilters are the HTTP filters of the inbound connection manager
// of service self, before the router.
func (t *translation) inboundHTTPFilters(self ServiceKey) []*hcmv3.HttpFilter {
	var fs []*hcmv3.HttpFilter
	fs = append(fs, t.jwtFilters(self)...)
	fs = append(fs, t.rbacHTTPFilters(self)...)
	fs = append(fs, t.rateLimitFilters(self)...)
	return fs
}

// inboundNetworkFilters are the network filters of a TCP service's inbound
// listener, before its TCP proxy.
func (t *translation) inboundNetworkFilters(self ServiceKey) []*listenerv3.Filter {
	return t.rbacNetworkFilters(self)
}

// inboundRoute is the route configuration of the inbound listener of self:
// the routes its policies configure per route (rate limits), then, unless
// the last of them takes every request, the catch-all to the app.
func (t *translation) inboundRoute(self ServiceKey, cluster string) *routev3.RouteConfiguration {
	rc := routeToCluster(cluster, cluster)
	if routes, catchAll := t.rateLimitRoutes(self, cluster); catchAll {
		rc.VirtualHosts[0].Routes = routes
	} else if len(routes) > 0 {
		rc.VirtualHosts[0].Routes = append(routes, rc.VirtualHosts[0].Routes...)
	}
	return rc
}

// inboundFilterChains wraps the inbound filters in the listener's filter
// chains. STRICT: one chain, which terminates the mesh's mutual TLS, so
// plaintext is refused. PERMISSIVE: as Istio does, a chain for connections
// that start with a TLS handshake (transport_protocol "tls", which the
// tls_inspector listener filter detects) and one for the others
// ("raw_buffer"), with the same filters; plaintext requests carry no peer
// identity, which is what AccessPolicies see of them.
func (t *translation) inboundFilterChains(self ServiceKey, filters []*listenerv3.Filter, alpn []string) []*listenerv3.FilterChain {
	mtls := t.downstreamTLS(t.in.TrustDomain, alpn)
	if t.in.mtlsMode(self) != v1alpha1.MTLSPermissive {
		return []*listenerv3.FilterChain{{Filters: filters, TransportSocket: mtls}}
	}
	return []*listenerv3.FilterChain{
		{
			Name:             chainMTLS,
			FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: transportTLS},
			Filters:          filters,
			TransportSocket:  mtls,
		},
		{
			Name:             chainPlaintext,
			FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: transportRawBuffer},
			Filters:          filters,
		},
	}
}

// inboundTLSInspection adds to a PERMISSIVE inbound listener the
// tls_inspector that tells its filter chains apart. A client that sends
// nothing within the timeout (a server-first protocol) is served as
// plaintext.
func (t *translation) inboundTLSInspection(self ServiceKey, l *listenerv3.Listener) {
	if t.in.mtlsMode(self) != v1alpha1.MTLSPermissive {
		return
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       listenerTLSInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: t.any(&tlsinspectorv3.TlsInspector{})},
	}}
	l.ListenerFiltersTimeout = durationpb.New(tlsInspectionTimeout)
	l.ContinueOnListenerFiltersTimeout = true
}

// Names of the PERMISSIVE filter chains and what they match.
const (
	listenerTLSInspector = "envoy.filters.listener.tls_inspector"
	chainMTLS            = "mtls"
	chainPlaintext       = "plaintext"
	transportTLS         = "tls"
	transportRawBuffer   = "raw_buffer"
	// tlsInspectionTimeout bounds the wait for a client's first bytes: a
	// mesh proxy sends its ClientHello at once.
	tlsInspectionTimeout = time.Second
)

// mtlsMode is a service's mTLS mode: its Service's override, else the Mesh's.
func (in *Input) mtlsMode(key ServiceKey) v1alpha1.MTLSMode {
	return in.Services[key].MTLSMode(in.Mesh.MTLS.Mode)
}
