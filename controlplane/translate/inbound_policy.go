package translate

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
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

// jwtFilters authenticate end users with the RequestAuth of self.
func (t *translation) jwtFilters(ServiceKey) []*hcmv3.HttpFilter { return nil }

// rbacHTTPFilters enforce the AccessPolicies of self on HTTP requests.
func (t *translation) rbacHTTPFilters(ServiceKey) []*hcmv3.HttpFilter { return nil }

// rbacNetworkFilters enforce the AccessPolicies of self on TCP connections.
func (t *translation) rbacNetworkFilters(ServiceKey) []*listenerv3.Filter { return nil }

// rateLimitFilters apply the RateLimits of self.
func (t *translation) rateLimitFilters(ServiceKey) []*hcmv3.HttpFilter { return nil }

// inboundFilterChains wraps the inbound filters in the listener's filter
// chains: one that terminates the mesh's mutual TLS (STRICT).
func (t *translation) inboundFilterChains(_ ServiceKey, filters []*listenerv3.Filter, alpn []string) []*listenerv3.FilterChain {
	return []*listenerv3.FilterChain{{
		Filters:         filters,
		TransportSocket: t.downstreamTLS(t.in.TrustDomain, alpn),
	}}
}
