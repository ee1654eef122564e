package v1alpha1

// ServiceSpec declares a mesh service's ports and protocols. A service with
// registered workloads but no Service resource is served as HTTP.
type ServiceSpec struct {
	Ports []ServicePort `json:"ports"`
}

// ServicePort is one port of a service. In explicit mode a workload fronts one
// app address, which serves the first port.
type ServicePort struct {
	Name     string   `json:"name,omitempty"`
	Port     int32    `json:"port"`
	Protocol Protocol `json:"protocol,omitempty"`
}

// Protocol is how a port speaks: http (HTTP/1.1, the default), http2 (h2c to
// the app), grpc (h2c, gRPC semantics) or tcp (opaque bytes).
type Protocol string

const (
	ProtocolHTTP  Protocol = "http"
	ProtocolHTTP2 Protocol = "http2"
	ProtocolGRPC  Protocol = "grpc"
	ProtocolTCP   Protocol = "tcp"
)

// IsHTTP reports whether the protocol is HTTP of any version.
func (p Protocol) IsHTTP() bool { return p != ProtocolTCP }
