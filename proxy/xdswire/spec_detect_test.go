package xdswire

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Protocol detection fields: the http_inspector and the tls_inspector
// (each disabled on the ports of server-first protocols) and the
// filter_chain_match criteria the chain selector honours (detect_chains.go
// checks their values).
func init() {
	allow(&httpinspectorv3.HttpInspector{})
	allow(&listenerv3.ListenerFilter{}, "filter_disabled")
	allow(&listenerv3.ListenerFilterChainMatchPredicate{}, "or_match", "destination_port_range")
	allow(&listenerv3.ListenerFilterChainMatchPredicate_MatchSet{}, "rules")
	allow(&typev3.Int32Range{}, "start", "end")
	allow(&listenerv3.FilterChainMatch{}, "transport_protocol", "application_protocols", "server_names",
		"destination_port", "prefix_ranges")
	allow(&corev3.CidrRange{}, "address_prefix", "prefix_len")
}
