package xdswire

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Security fields: PERMISSIVE mTLS (filter chains told apart by the TLS
// inspector) and authorisation (RBAC, HTTP and network). The listener
// compiler and proxy/filter/rbac check their values.
func init() {
	// Two filter chains, one for TLS and one for plaintext, chosen by the
	// transport protocol the tls_inspector listener filter detects.
	allow(&listenerv3.Listener{}, "listener_filters_timeout", "continue_on_listener_filters_timeout")
	allow(&listenerv3.FilterChain{}, "filter_chain_match")
	allow(&listenerv3.FilterChainMatch{}, "transport_protocol")

	// RBAC, as an HTTP filter and as a network filter before a TCP proxy.
	allow(&rbachttpv3.RBAC{}, "rules")
	allow(&rbacnetworkv3.RBAC{}, "rules", "stat_prefix")
	allow(&rbacconfigv3.RBAC{}, "action", "policies")
	allow(&rbacconfigv3.Policy{}, "permissions", "principals")
	allow(&rbacconfigv3.Permission{}, "any", "and_rules", "or_rules", "not_rule", "header", "url_path")
	allow(&rbacconfigv3.Permission_Set{}, "rules")
	allow(&rbacconfigv3.Principal{}, "any", "and_ids", "or_ids", "not_id", "authenticated", "header", "metadata")
	allow(&rbacconfigv3.Principal_Set{}, "ids")
	allow(&rbacconfigv3.Principal_Authenticated{}, "principal_name")
	allow(&routev3.HeaderMatcher{}, "name", "string_match", "present_match", "invert_match")
	allow(&matcherv3.PathMatcher{}, "path")
	allow(&matcherv3.MetadataMatcher{}, "filter", "path", "value")
	allow(&matcherv3.MetadataMatcher_PathSegment{}, "key")
	allow(&matcherv3.ValueMatcher{}, "string_match", "list_match", "present_match")
	allow(&matcherv3.ListMatcher{}, "one_of")
}
