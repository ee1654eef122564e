package xdswire

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Ingress gateway fields. An HTTPS gateway listener has a tls_inspector
// and one filter chain per certificate, chosen by server_names (the chain
// selector of detect_chains.go); each chain's DownstreamTlsContext names a
// TlsCertificate secret that the control plane sends (inline PEM, compiled
// in gateway_tls.go), asks no client certificate and may allow TLS 1.2. An
// HTTP gateway listener may redirect to https (route redirect with
// https_redirect, port_redirect and a response code; proxy/route/redirect.go).
func init() {
	allow(&listenerv3.FilterChain{}, "filter_chain_match")
	allow(&listenerv3.FilterChainMatch{}, "server_names", "transport_protocol")
	allow(&listenerv3.Listener{}, "listener_filters_timeout")
	allow(&tlsv3.Secret{}, "tls_certificate")
	allow(&tlsv3.TlsCertificate{}, "certificate_chain", "private_key")
	allow(&routev3.Route{}, "redirect")
	allow(&routev3.RedirectAction{}, "https_redirect", "port_redirect", "response_code")
}
