package xdsmeta

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Proxyless gRPC: names shared by the translator and `weft bootstrap grpc`.
const (
	// ProxylessGRPC is the value of node.metadata["proxyless"] that marks a
	// proxyless gRPC node.
	ProxylessGRPC = "grpc"
	// ProxylessCertificateProvider is the certificate provider instance, in
	// the gRPC bootstrap's certificate_providers, that holds the workload's
	// SVID ("default") and the trust bundle ("ROOTCA").
	ProxylessCertificateProvider = "weft"
	// ServerListenerPrefix begins the name of the Listener a proxyless gRPC
	// server asks for: grpc-go replaces %s in the bootstrap's
	// server_listener_resource_name_template with its listening address.
	ServerListenerPrefix = "grpc/server?xds.resource.listening_address="
	// ServerListenerTemplate is that bootstrap template.
	ServerListenerTemplate = ServerListenerPrefix + "%s"
)

// ServerListener names the Listener of a proxyless gRPC server listening on addr (IP:port).
func ServerListener(addr string) string { return ServerListenerPrefix + addr }

// ProxylessNodeID is the node id of a proxyless gRPC workload: like a
// proxy's WorkloadID, prefixed by its service, so the control plane can tie
// it to the SVID's service. serving is the server's listening address, or a
// name of the client's choosing for a client.
func ProxylessNodeID(service, namespace, serving string) string {
	return ServiceHost(service, namespace) + "@grpc/" + strings.TrimPrefix(serving, "grpc/")
}

// IsProxyless reports whether an xDS node is a proxyless gRPC node, without
// decoding the rest of its metadata.
func IsProxyless(p *corev3.Node) bool {
	return p.GetMetadata().GetFields()[keyProxyless].GetStringValue() == ProxylessGRPC
}
