package v1alpha1

import (
	"net/netip"
	"slices"
)

func init() {
	Register(Kind{
		Name:       "Service",
		Plural:     "services",
		Aliases:    []string{"svc"},
		Namespaced: true,
		NewSpec:    func() Spec { return new(ServiceSpec) },
	})
}

// ServiceSpec declares a mesh service's ports and protocols. A service with
// registered workloads but no Service resource is served as HTTP.
type ServiceSpec struct {
	Ports []ServicePort `json:"ports"`
	// MTLS, if set, overrides the Mesh's mTLS mode for the service's
	// inbound listeners, as Istio's PeerAuthentication does.
	MTLS *MTLS `json:"mtls,omitempty"`
	// VIP, if set, is the service's virtual IPv4 address in transparent
	// mode; without it the control plane allocates one from its VIP range.
	VIP string `json:"vip,omitempty"`
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

// protocols are the protocols Validate accepts.
var protocols = []Protocol{ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolTCP}

// IsHTTP reports whether the protocol is HTTP of any version.
func (p Protocol) IsHTTP() bool { return p != ProtocolTCP }

// Default makes every port without a protocol speak HTTP.
func (s *ServiceSpec) Default() {
	for i := range s.Ports {
		if s.Ports[i].Protocol == "" {
			s.Ports[i].Protocol = ProtocolHTTP
		}
	}
}

// Validate checks a defaulted ServiceSpec.
func (s *ServiceSpec) Validate(path *Path) ErrorList {
	ports := path.Child("ports")
	if len(s.Ports) == 0 {
		return ErrorList{Invalid(ports, "at least one port is required")}
	}
	var errs ErrorList
	numbers := make(map[int32]int, len(s.Ports))
	names := make(map[string]int, len(s.Ports))
	for i, p := range s.Ports {
		at := ports.Index(i)
		switch first, dup := numbers[p.Port]; {
		case p.Port < 1 || p.Port > 65535:
			errs = append(errs, Invalid(at.Child("port"), "must be between 1 and 65535"))
		case dup:
			errs = append(errs, Invalid(at.Child("port"), "duplicate port %d: %s has it too", p.Port, ports.Index(first)))
		default:
			numbers[p.Port] = i
		}
		if p.Name != "" {
			switch first, dup := names[p.Name]; {
			case !isDNSLabel(p.Name):
				errs = append(errs, Invalid(at.Child("name"), "%s is not a valid port name: use %s", quote(p.Name), dnsLabelRule))
			case dup:
				errs = append(errs, Invalid(at.Child("name"), "duplicate port name %s: %s has it too", quote(p.Name), ports.Index(first)))
			default:
				names[p.Name] = i
			}
		}
		if !slices.Contains(protocols, p.Protocol) {
			errs = append(errs, NotSupported(at.Child("protocol"), p.Protocol, protocols))
		}
	}
	if s.MTLS != nil && !slices.Contains(mtlsModes, s.MTLS.Mode) {
		// An empty mode is refused too: leave mtls out to follow the Mesh.
		errs = append(errs, NotSupported(path.Child("mtls").Child("mode"), s.MTLS.Mode, mtlsModes))
	}
	if s.VIP != "" {
		ip, err := netip.ParseAddr(s.VIP)
		switch {
		case err != nil || !ip.Is4():
			errs = append(errs, Invalid(path.Child("vip"), "%s is not an IPv4 address", quote(s.VIP)))
		case ip.IsLoopback() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLinkLocalUnicast():
			errs = append(errs, Invalid(path.Child("vip"), "%s cannot be a virtual IP: use a unicast address outside loopback and link-local", s.VIP))
		}
	}
	return errs
}

// MTLSMode is the service's mTLS mode: its own if it sets one, else the
// Mesh's.
func (s *ServiceSpec) MTLSMode(mesh MTLSMode) MTLSMode {
	if s != nil && s.MTLS != nil && s.MTLS.Mode != "" {
		return s.MTLS.Mode
	}
	return mesh
}

var _ Spec = (*ServiceSpec)(nil)
