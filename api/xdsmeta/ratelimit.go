package xdsmeta

// Rate limiting. A destination's proxies count its local limits themselves
// and ask the control plane's rate limit service about its global ones.
const (
	// ControlPlaneCluster is the cluster name of the control plane in a
	// grpc_service, such as the rate limit service's. No Cluster of that
	// name is ever sent: the proxy reaches it over its own connection to
	// the control plane, which its SVID authenticates.
	ControlPlaneCluster = "weft_control_plane"
	// RateLimitDomain is the domain of every global rate limit.
	RateLimitDomain = "weft"
	// LocalRateLimitStatPrefix and RateLimitStatPrefix are the stat
	// prefixes of the inbound rate limit filters.
	LocalRateLimitStatPrefix = "inbound_local_rate_limit"
	RateLimitStatPrefix      = "inbound_rate_limit"
)

// The keys of the entries of a rate limit descriptor, in the order a
// descriptor holds them: destination, limit, then source when the limit
// counts each calling service apart.
const (
	// DescriptorDestination's value is the ServiceHost of the limited service.
	DescriptorDestination = "destination"
	// DescriptorLimit's value is the limit's name in its RateLimit.
	DescriptorLimit = "limit"
	// DescriptorSource's value is the caller's SPIFFE ID.
	DescriptorSource = "source"
)

// PeerIdentityExpr is the expression (of Envoy's
// envoy.rate_limit_descriptors.expr) whose value is the downstream's SPIFFE
// ID: the first URI SAN of its verified certificate. It is the only
// expression the proxy evaluates.
const PeerIdentityExpr = "connection.uri_san_peer_certificate"
