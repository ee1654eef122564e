package xdswire

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// supported lists, per message, the fields this proxy honours; a populated
// field missing here makes the whole update fail (NACK). The generated
// decoders, checkers and comparisons of zz_*.go are written from it
// and from leaves (TestGenerated). Fields whose value
// the proxy cannot honour in full (an enum value, a second filter chain) are
// checked again when the resource is compiled.
//
// Messages in leaves are accepted whole: well-known value types, and the
// metadata and locality the proxy only carries.
var supported = map[protoreflect.FullName]map[protoreflect.Name]bool{}

var leaves = map[protoreflect.FullName]bool{}

func init() {
	allow(&listenerv3.Listener{}, "name", "address", "filter_chains", "listener_filters",
		"traffic_direction", "stat_prefix", "metadata")
	allow(&listenerv3.FilterChain{}, "filters", "transport_socket", "name", "metadata")
	allow(&listenerv3.Filter{}, "name", "typed_config")
	allow(&listenerv3.ListenerFilter{}, "name", "typed_config")
	allow(&tlsinspectorv3.TlsInspector{})
	allow(&corev3.Address{}, "socket_address")
	allow(&corev3.SocketAddress{}, "address", "port_value", "protocol")
	allow(&corev3.TransportSocket{}, "name", "typed_config")
	allow(&corev3.ConfigSource{}, "ads", "resource_api_version", "initial_fetch_timeout")
	allow(&corev3.AggregatedConfigSource{})

	allow(&hcmv3.HttpConnectionManager{}, "stat_prefix", "codec_type", "rds", "route_config",
		"http_filters", "upgrade_configs", "generate_request_id")
	allow(&hcmv3.Rds{}, "config_source", "route_config_name")
	allow(&hcmv3.HttpFilter{}, "name", "typed_config")
	allow(&hcmv3.HttpConnectionManager_UpgradeConfig{}, "upgrade_type", "enabled")
	allow(&routerv3.Router{}, "dynamic_stats", "suppress_envoy_headers")
	allow(&tcpproxyv3.TcpProxy{}, "stat_prefix", "cluster")

	allow(&routev3.RouteConfiguration{}, "name", "virtual_hosts", "validate_clusters",
		"ignore_port_in_host_matching")
	allow(&routev3.VirtualHost{}, "name", "domains", "routes")
	allow(&routev3.Route{}, "name", "match", "route", "metadata")
	allow(&routev3.RouteMatch{}, "prefix", "path", "safe_regex", "path_separated_prefix", "case_sensitive")
	allow(&routev3.RouteAction{}, "cluster", "timeout", "upgrade_configs", "cluster_not_found_response_code")
	allow(&routev3.RouteAction_UpgradeConfig{}, "upgrade_type", "enabled")
	allow(&matcherv3.RegexMatcher{}, "regex", "google_re2")
	allow(&matcherv3.RegexMatcher_GoogleRE2{})

	allow(&clusterv3.Cluster{}, "name", "type", "eds_cluster_config", "connect_timeout", "lb_policy",
		"load_assignment", "transport_socket", "typed_extension_protocol_options", "metadata",
		"alt_stat_name", "dns_lookup_family")
	allow(&clusterv3.Cluster_EdsClusterConfig{}, "eds_config", "service_name")
	allow(&httpv3.HttpProtocolOptions{}, "explicit_http_config", "use_downstream_protocol_config", "common_http_protocol_options")
	allow(&httpv3.HttpProtocolOptions_ExplicitHttpConfig{}, "http_protocol_options", "http2_protocol_options")
	allow(&httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{}, "http_protocol_options", "http2_protocol_options")
	allow(&corev3.Http1ProtocolOptions{})
	allow(&corev3.Http2ProtocolOptions{})
	allow(&corev3.HttpProtocolOptions{}, "idle_timeout")

	allow(&endpointv3.ClusterLoadAssignment{}, "cluster_name", "endpoints")
	allow(&endpointv3.LocalityLbEndpoints{}, "locality", "lb_endpoints", "load_balancing_weight")
	allow(&endpointv3.LbEndpoint{}, "endpoint", "health_status", "metadata", "load_balancing_weight")
	allow(&endpointv3.Endpoint{}, "address", "hostname")

	allow(&tlsv3.DownstreamTlsContext{}, "common_tls_context", "require_client_certificate")
	allow(&tlsv3.UpstreamTlsContext{}, "common_tls_context", "sni")
	allow(&tlsv3.CommonTlsContext{}, "tls_params", "tls_certificate_sds_secret_configs",
		"combined_validation_context", "validation_context_sds_secret_config", "alpn_protocols")
	allow(&tlsv3.TlsParameters{}, "tls_minimum_protocol_version", "tls_maximum_protocol_version")
	allow(&tlsv3.SdsSecretConfig{}, "name", "sds_config")
	allow(&tlsv3.CommonTlsContext_CombinedCertificateValidationContext{},
		"default_validation_context", "validation_context_sds_secret_config")
	allow(&tlsv3.CertificateValidationContext{}, "trusted_ca", "match_typed_subject_alt_names")
	allow(&tlsv3.SubjectAltNameMatcher{}, "san_type", "matcher")
	allow(&matcherv3.StringMatcher{}, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case")
	allow(&corev3.DataSource{}, "inline_bytes", "inline_string")
	allow(&tlsv3.Secret{}, "name", "validation_context")

	leaf(&durationpb.Duration{}, &wrapperspb.BoolValue{}, &wrapperspb.UInt32Value{},
		&corev3.Metadata{}, &structpb.Struct{}, &corev3.Locality{})
}

// allow adds a message and its fields to what is already allowed, so each
// feature can list its own fields in its own file (spec_<feature>_test.go).
// The generator checks that each field exists.
func allow(m proto.Message, fields ...string) {
	d := m.ProtoReflect().Descriptor()
	set := supported[d.FullName()]
	if set == nil {
		set = map[protoreflect.Name]bool{}
	}
	for _, f := range fields {
		set[protoreflect.Name(f)] = true
	}
	supported[d.FullName()] = set
}

// leaf adds messages the proxy carries whole, without checking their fields.
func leaf(ms ...proto.Message) {
	for _, m := range ms {
		leaves[m.ProtoReflect().Descriptor().FullName()] = true
	}
}
