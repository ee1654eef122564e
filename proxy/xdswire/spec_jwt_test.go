package xdswire

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/emptypb"
)

// End-user authentication: the JWT filter (envoy.filters.http.jwt_authn).
// proxy/filter/jwt checks the values; its rules' matches are RouteMatches,
// whose fields the routing allowlists name. The roots of a remote key set's
// server ride in the filter chain's metadata (api/xdsmeta.JWKSCAKey).
func init() {
	allow(&jwtv3.JwtAuthentication{}, "providers", "rules", "requirement_map")
	allow(&jwtv3.JwtProvider{}, "issuer", "audiences", "local_jwks", "remote_jwks", "forward",
		"from_headers", "from_params", "payload_in_metadata", "clock_skew_seconds")
	allow(&jwtv3.JwtHeader{}, "name", "value_prefix")
	allow(&jwtv3.RemoteJwks{}, "http_uri", "cache_duration")
	allow(&corev3.HttpUri{}, "uri", "cluster", "timeout")
	allow(&jwtv3.RequirementRule{}, "match", "requires", "requirement_name")
	allow(&jwtv3.JwtRequirement{}, "provider_name", "requires_any", "requires_all",
		"allow_missing", "allow_missing_or_failed")
	allow(&jwtv3.JwtRequirementOrList{}, "requirements")
	allow(&jwtv3.JwtRequirementAndList{}, "requirements")
	leaf(&emptypb.Empty{})
}
