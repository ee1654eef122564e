package xdswire

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Routing fields beyond path matching and a single cluster. The route
// compiler, the filters and the TcpProxy compiler check their values.
func init() {
	// Matching on headers (":method" included) and query parameters.
	allow(&routev3.RouteMatch{}, "headers", "query_parameters")
	allow(&routev3.HeaderMatcher{}, "name", "string_match", "present_match", "invert_match")
	allow(&routev3.QueryParameterMatcher{}, "name", "string_match", "present_match")

	// Weighted splits.
	allow(&routev3.RouteAction{}, "weighted_clusters")
	allow(&routev3.WeightedCluster{}, "clusters")
	allow(&routev3.WeightedCluster_ClusterWeight{}, "name", "weight")
	allow(&tcpproxyv3.TcpProxy{}, "weighted_clusters")
	allow(&tcpproxyv3.TcpProxy_WeightedCluster{}, "clusters")
	allow(&tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{}, "name", "weight")

	// Retries.
	allow(&routev3.RouteAction{}, "retry_policy")
	allow(&routev3.RetryPolicy{}, "retry_on", "num_retries", "per_try_timeout",
		"retriable_status_codes", "retry_back_off")
	allow(&routev3.RetryPolicy_RetryBackOff{}, "base_interval", "max_interval")

	// Mirrors. The proxy has no runtime layer: only default_value.
	allow(&routev3.RouteAction{}, "request_mirror_policies")
	allow(&routev3.RouteAction_RequestMirrorPolicy{}, "cluster", "runtime_fraction")
	allow(&corev3.RuntimeFractionalPercent{}, "default_value")
	allow(&typev3.FractionalPercent{}, "numerator", "denominator")

	// Header edits, per route and per virtual host.
	edits := []string{"request_headers_to_add", "request_headers_to_remove",
		"response_headers_to_add", "response_headers_to_remove"}
	allow(&routev3.Route{}, edits...)
	allow(&routev3.VirtualHost{}, edits...)
	allow(&corev3.HeaderValueOption{}, "header", "append_action")
	allow(&corev3.HeaderValue{}, "key", "value")

	// Hash keys for consistent-hash balancers.
	allow(&routev3.RouteAction{}, "hash_policy")
	allow(&routev3.RouteAction_HashPolicy{}, "header", "cookie", "connection_properties", "terminal")
	allow(&routev3.RouteAction_HashPolicy_Header{}, "header_name")
	allow(&routev3.RouteAction_HashPolicy_Cookie{}, "name", "ttl", "path")
	allow(&routev3.RouteAction_HashPolicy_ConnectionProperties{}, "source_ip")

	// The fault filter, in http_filters and per route.
	allow(&routev3.Route{}, "typed_per_filter_config")
	allow(&faultv3.HTTPFault{}, "delay", "abort")
	allow(&commonfaultv3.FaultDelay{}, "fixed_delay", "percentage")
	allow(&faultv3.FaultAbort{}, "http_status", "grpc_status", "percentage")
}
