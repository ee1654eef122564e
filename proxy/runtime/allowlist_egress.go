package runtime

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/proxy/tlsx"
)

// Egress: what the translator sends for ExternalServices and the Mesh's
// outbound traffic policy. A route may answer itself (direct_response: a
// status and an inline body, with response header edits), as the HTTP
// proxy's catch-all does under REGISTRY_ONLY with 502 and
// `x-weft-error: egress_denied`. External clusters are STATIC clusters of
// the base contract, HTTP/1.1; with TLS origination their
// UpstreamTlsContext has an sni, no client certificate, the external CA as
// an SDS validation context of its own and one exact DNS SAN matcher (the
// server name the certificate must be valid for), all checked by the TLS
// compiler (tls.go). DNS clusters (STRICT_DNS, LOGICAL_DNS) are NACKed by
// the cluster compiler.
func init() {
	allow(&routev3.Route{}, "direct_response")
	allow(&routev3.DirectResponseAction{}, "status", "body")
}

// dnsSANMatcher sets the host name an external server's certificate must
// be valid for: one exact, case-sensitive DNS matcher, checked with x509's
// hostname rules (a certificate's wildcard covers one label).
func dnsSANMatcher(v *tlsx.PeerValidator, m *matcherv3.StringMatcher, path string) error {
	exact, ok := m.GetMatchPattern().(*matcherv3.StringMatcher_Exact)
	switch {
	case !ok:
		return pathErr(path, "a DNS SAN matcher must be exact (the server name)")
	case m.GetIgnoreCase():
		return pathErr(join(path, "ignore_case"), "is not supported for DNS SANs: host names compare without case anyway")
	case exact.Exact == "":
		return pathErr(join(path, "exact"), "a server name is required")
	case v.DNSName != "":
		return pathErr(path, "only one DNS SAN matcher is supported (have %q)", v.DNSName)
	}
	v.DNSName = exact.Exact
	return nil
}
