package xdsmeta

// End-user authentication. A destination's RequestAuth becomes the
// envoy.filters.http.jwt_authn filter of its inbound listener.
const (
	// JWTFilter is the filter's name in http_filters and the key under
	// which it records a verified token's claims in the request's dynamic
	// metadata, for the filters after it (RBAC conditions on claims).
	JWTFilter = "envoy.filters.http.jwt_authn"
	// JWTPayloadKey is every provider's payload_in_metadata: the claims
	// are at metadata[JWTFilter][JWTPayloadKey].
	JWTPayloadKey = "payload"
	// JWKSCAKey is the entry of the inbound filter chains'
	// filter_metadata[JWTFilter] that holds, by provider name, the PEM
	// roots a provider's remote_jwks server must chain to. Envoy reaches a
	// JWKS server through the cluster named in http_uri (where it would
	// keep those roots); Weft's proxy fetches http_uri.uri itself and reads
	// its roots here. A provider without an entry trusts the system roots.
	JWKSCAKey = "jwks_ca"
)

// JWKSCluster is the cluster name in the http_uri of a remote key set
// served at host and port.
func JWKSCluster(host, port string) string { return "jwks|" + host + "|" + port }
