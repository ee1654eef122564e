package xdsmeta

import (
	"fmt"
	"slices"
	"strings"
)

// ProxyMode is how a weft proxy is deployed, sent as node.metadata.mode.
type ProxyMode string

// The proxy modes. An explicit sidecar sends no mode.
const (
	// ModeExplicit is a sidecar with an inbound listener and explicit
	// upstream ports or an HTTP proxy port.
	ModeExplicit ProxyMode = "explicit"
	// ModeIngress is an ingress gateway: no app and no inbound listener;
	// it serves the Gateways naming its service to clients outside the
	// mesh and sends their requests over mTLS to mesh services.
	ModeIngress ProxyMode = "ingress"
	// ModeEgress is an egress gateway.
	ModeEgress ProxyMode = "egress"
)

// ProxyModes lists the modes a proxy accepts, in the order the flag's help shows them.
var ProxyModes = []ProxyMode{ModeExplicit, ModeIngress, ModeEgress, ModeTransparent}

// ParseProxyMode checks a mode name; "" is ModeExplicit.
func ParseProxyMode(s string) (ProxyMode, error) {
	if s == "" {
		return ModeExplicit, nil
	}
	if m := ProxyMode(s); slices.Contains(ProxyModes, m) {
		return m, nil
	}
	names := make([]string, len(ProxyModes))
	for i, m := range ProxyModes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("unknown proxy mode %q: want one of %s", s, strings.Join(names, ", "))
}

// GatewayListener names the listener of an ingress gateway on port.
func GatewayListener(port int) string { return fmt.Sprintf("gateway|%d", port) }

// GatewayRoute names the RouteConfiguration of the gateway listener on port.
func GatewayRoute(port int) string { return fmt.Sprintf("gateway|%d", port) }

// GatewaySecret names the SDS secret holding a Gateway's certificate: the
// index-th certificate of listener in Gateway namespace/name.
func GatewaySecret(namespace, name, listener string, index int) string {
	return fmt.Sprintf("gateway|%s/%s|%s|%d", namespace, name, listener, index)
}

// Ingress reports whether the node is an ingress gateway.
func (n Node) Ingress() bool { return n.Mode == ModeIngress }
