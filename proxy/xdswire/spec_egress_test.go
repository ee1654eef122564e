package xdswire

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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
