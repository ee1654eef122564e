package xdswire

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	exprv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rate_limit_descriptors/expr/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Rate limits: the local filter (envoy.filters.http.local_ratelimit) and
// the global one (envoy.filters.http.ratelimit), in http_filters and per
// route. proxy/filter/localratelimit and proxy/filter/ratelimit check the
// values; the descriptor actions they evaluate are generic_key and the
// expression descriptor naming the caller's SPIFFE ID
// (proxy/filter/ratelimit/descriptor). Filter percentages honour only their
// default_value, as mirrors do.
func init() {
	allow(&localratelimitv3.LocalRateLimit{}, "stat_prefix", "status", "token_bucket",
		"filter_enabled", "filter_enforced", "descriptors", "rate_limits", "max_dynamic_descriptors",
		"always_consume_default_token_bucket", "enable_x_ratelimit_headers",
		"rate_limited_as_resource_exhausted", "enable_retry_after_header")
	allow(&typev3.TokenBucket{}, "max_tokens", "tokens_per_fill", "fill_interval")
	allow(&typev3.HttpStatus{}, "code")
	allow(&commonratelimitv3.LocalRateLimitDescriptor{}, "entries", "token_bucket")
	allow(&commonratelimitv3.RateLimitDescriptor_Entry{}, "key", "value")

	allow(&ratelimitv3.RateLimit{}, "domain", "stat_prefix", "timeout", "failure_mode_deny",
		"rate_limit_service", "rate_limits", "enable_x_ratelimit_headers", "enable_retry_after_header",
		"rate_limited_as_resource_exhausted", "disable_x_envoy_ratelimited_header",
		"rate_limited_status", "status_on_error")
	allow(&ratelimitconfv3.RateLimitServiceConfig{}, "grpc_service", "transport_api_version")
	allow(&corev3.GrpcService{}, "envoy_grpc")
	allow(&corev3.GrpcService_EnvoyGrpc{}, "cluster_name")
	allow(&ratelimitv3.RateLimitPerRoute{}, "rate_limits", "domain")

	// Descriptor actions.
	allow(&routev3.RateLimit{}, "actions")
	allow(&routev3.RateLimit_Action{}, "generic_key", "extension")
	allow(&routev3.RateLimit_Action_GenericKey{}, "descriptor_key", "descriptor_value")
	allow(&corev3.TypedExtensionConfig{}, "name", "typed_config")
	allow(&exprv3.Descriptor{}, "descriptor_key", "text", "skip_if_error")
}
