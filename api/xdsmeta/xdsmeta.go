// Package xdsmeta holds the names and node metadata shared by the control
// plane's translator and the proxy: the whole contract between them that is
// not Envoy's own xDS vocabulary.
package xdsmeta

import (
	"fmt"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Resource names.
const (
	// InboundListener terminates mTLS from other proxies and forwards to the app.
	InboundListener = "inbound"
	// HTTPProxyListener is the explicit HTTP proxy port; it routes by Host.
	HTTPProxyListener = "http_proxy"
	// HTTPProxyRoute is the RouteConfiguration of the HTTP proxy listener.
	HTTPProxyRoute = "http_proxy"
	// SecretRootCA is the trust bundle, served by the control plane over SDS.
	// Its first certificate is the root that signs SVIDs now: during a root
	// rotation a proxy whose SVID does not chain to it re-issues at once.
	SecretRootCA = "ROOTCA"
	// SecretDefault is the proxy's own SVID. It is never sent by the control
	// plane: the private key never leaves the proxy, which resolves this name
	// from its local identity.
	SecretDefault = "default"
	// ALPNTCP marks an opaque TCP connection between proxies.
	ALPNTCP = "weft-tcp"
	// MetadataNamespace is the filter_metadata key the control plane uses
	// on endpoints (keys: "workload", "version").
	MetadataNamespace = "weft"
)

// ServiceHost is the canonical mesh name of a service: "<service>.<namespace>".
func ServiceHost(service, namespace string) string { return service + "." + namespace }

// OutboundCluster names the EDS cluster, and its ClusterLoadAssignment, of a mesh service.
func OutboundCluster(service, namespace string) string {
	return "outbound|" + ServiceHost(service, namespace)
}

// SubsetCluster names the EDS cluster, and its ClusterLoadAssignment, of
// one subset of a mesh service, as its DestinationPolicy defines it.
func SubsetCluster(service, namespace, subset string) string {
	return OutboundCluster(service, namespace) + "|" + subset
}

// OutboundRoute names the RouteConfiguration behind an upstream's local port.
func OutboundRoute(service, namespace string) string { return OutboundCluster(service, namespace) }

// OutboundListener names the listener of one --upstream local port.
func OutboundListener(upstream string) string { return "outbound|" + upstream }

// InboundCluster names the static cluster that points at the local app.
func InboundCluster(service, namespace string) string {
	return "inbound|" + ServiceHost(service, namespace)
}

// WorkloadID is the stable id of a workload: one per service instance, kept
// across restarts so a re-registration replaces the old endpoint.
func WorkloadID(service, namespace, inboundAddr string) string {
	return ServiceHost(service, namespace) + "@" + inboundAddr
}

// Upstream is one --upstream NAME=LOCALADDR of a proxy.
type Upstream struct {
	// Service and Namespace name the mesh service; Namespace defaults to the proxy's.
	Service   string
	Namespace string
	// Listen is the local address the app connects to.
	Listen string
}

// ParseUpstream reads NAME=LOCALADDR where NAME is "service" or "service.namespace".
func ParseUpstream(s, defaultNamespace string) (Upstream, error) {
	name, addr, ok := strings.Cut(s, "=")
	if !ok || name == "" || addr == "" {
		return Upstream{}, fmt.Errorf("upstream %q: want NAME=LOCALADDR (for example payments=127.0.0.1:9001)", s)
	}
	svc, ns, _ := strings.Cut(name, ".")
	if ns == "" {
		ns = defaultNamespace
	}
	if svc == "" || strings.Contains(ns, ".") {
		return Upstream{}, fmt.Errorf("upstream %q: NAME must be SERVICE or SERVICE.NAMESPACE", s)
	}
	return Upstream{Service: svc, Namespace: ns, Listen: addr}, nil
}

// String formats the upstream back to NAME=LOCALADDR with the namespace spelled out.
func (u Upstream) String() string { return ServiceHost(u.Service, u.Namespace) + "=" + u.Listen }

// Node is what a proxy tells the control plane about itself in the xDS
// node: node.id is the WorkloadID, node.cluster the ServiceHost, and the
// rest travels in node.metadata under the keys below.
type Node struct {
	ID        string
	Service   string
	Namespace string
	Version   string
	// Inbound, App and Admin are host:port addresses.
	Inbound string
	App     string
	Admin   string
	// HTTPProxy is the explicit HTTP proxy listener address, if any.
	HTTPProxy string
	Upstreams []Upstream
	// Proxyless marks a gRPC application that reads xDS itself (grpc-go's
	// xds resolver and server) instead of a weft proxy; see proxyless.go.
	Proxyless bool
	// Mode is how the proxy is deployed (mode.go); "" is ModeExplicit.
	Mode ProxyMode
	// ListenIP is the IP an ingress gateway binds its Gateway listeners on.
	ListenIP string
}

const (
	keyService   = "service"
	keyNamespace = "namespace"
	keyVersion   = "version"
	keyInbound   = "inbound"
	keyApp       = "app"
	keyAdmin     = "admin"
	keyHTTPProxy = "http_proxy"
	keyUpstreams = "upstreams"
	keyProxyless = "proxyless"
	keyMode      = "mode"
	keyListenIP  = "listen_ip"
)

// ToProto encodes the node for the xDS stream.
func (n Node) ToProto() *corev3.Node {
	ups := make([]any, 0, len(n.Upstreams))
	for _, u := range n.Upstreams {
		ups = append(ups, u.String())
	}
	md, err := structpb.NewStruct(map[string]any{
		keyService: n.Service, keyNamespace: n.Namespace, keyVersion: n.Version,
		keyInbound: n.Inbound, keyApp: n.App, keyAdmin: n.Admin,
		keyHTTPProxy: n.HTTPProxy, keyUpstreams: ups,
	})
	if err != nil {
		// Only strings go in: NewStruct cannot fail on them.
		panic(fmt.Sprintf("xdsmeta: encode node metadata: %v", err))
	}
	if n.Proxyless {
		md.Fields[keyProxyless] = structpb.NewStringValue(ProxylessGRPC)
	}
	// An explicit sidecar's metadata stays as it was before modes existed.
	if n.Mode != "" && n.Mode != ModeExplicit {
		md.Fields[keyMode] = structpb.NewStringValue(string(n.Mode))
	}
	if n.ListenIP != "" {
		md.Fields[keyListenIP] = structpb.NewStringValue(n.ListenIP)
	}
	return &corev3.Node{Id: n.ID, Cluster: ServiceHost(n.Service, n.Namespace), Metadata: md}
}

// NodeFromProto decodes what ToProto encoded, and says what is missing or malformed.
func NodeFromProto(p *corev3.Node) (Node, error) {
	if p == nil {
		return Node{}, fmt.Errorf("xds node: missing")
	}
	f := p.GetMetadata().GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	n := Node{
		ID: p.GetId(), Service: str(keyService), Namespace: str(keyNamespace), Version: str(keyVersion),
		Inbound: str(keyInbound), App: str(keyApp), Admin: str(keyAdmin), HTTPProxy: str(keyHTTPProxy),
		Proxyless: str(keyProxyless) == ProxylessGRPC,
		ListenIP:  str(keyListenIP),
	}
	if m := str(keyMode); m != "" {
		mode, err := ParseProxyMode(m)
		if err != nil {
			return Node{}, fmt.Errorf("xds node %q: metadata.mode: %w", n.ID, err)
		}
		n.Mode = mode
	}
	switch {
	case n.ID == "":
		return Node{}, fmt.Errorf("xds node: id is empty")
	case n.Service == "" || n.Namespace == "":
		return Node{}, fmt.Errorf("xds node %q: metadata.service and metadata.namespace are required", n.ID)
	}
	for i, v := range f[keyUpstreams].GetListValue().GetValues() {
		u, err := ParseUpstream(v.GetStringValue(), n.Namespace)
		if err != nil {
			return Node{}, fmt.Errorf("xds node %q: metadata.upstreams[%d]: %w", n.ID, i, err)
		}
		n.Upstreams = append(n.Upstreams, u)
	}
	sort.Slice(n.Upstreams, func(i, j int) bool { return n.Upstreams[i].Listen < n.Upstreams[j].Listen })
	return n, nil
}
