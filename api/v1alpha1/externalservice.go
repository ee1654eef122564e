package v1alpha1

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

func init() {
	Register(Kind{
		Name:       "ExternalService",
		Plural:     "externalservices",
		Aliases:    []string{"extsvc", "se"},
		Namespaced: true,
		NewSpec:    func() Spec { return new(ExternalServiceSpec) },
	})
}

// ExternalServiceSpec declares hosts outside the mesh that workloads may
// call, as Istio's ServiceEntry does. With the Mesh's outbound traffic
// policy REGISTRY_ONLY, a host that is neither a mesh service nor listed by
// an ExternalService is refused.
type ExternalServiceSpec struct {
	// Hosts are the DNS names the apps call: "api.example.com", or a
	// wildcard "*.example.com" (one leading label).
	Hosts []string `json:"hosts"`
	// Ports are the ports the hosts are called on, with their protocol.
	Ports []ExternalPort `json:"ports"`
	// Resolution says where the proxy sends the traffic: STATIC (the
	// default) to Endpoints, DNS to the host name resolved by the proxy.
	Resolution ExternalResolution `json:"resolution,omitempty"`
	// Endpoints are the IP addresses the hosts are reached at; required
	// with STATIC resolution.
	Endpoints []ExternalEndpoint `json:"endpoints,omitempty"`
	// EgressGateway, if set, names the egress gateway (a mesh service in
	// this namespace run with `weft proxy --mode egress`) that the traffic
	// must leave through.
	EgressGateway string `json:"egressGateway,omitempty"`
	// TLS, if set, makes the mesh originate TLS to the hosts: the app
	// speaks plain HTTP and the proxy speaks HTTPS outside.
	TLS *ExternalTLS `json:"tls,omitempty"`
}

// ExternalPort is one port of an ExternalService.
type ExternalPort struct {
	Name     string           `json:"name,omitempty"`
	Port     int32            `json:"port"`
	Protocol ExternalProtocol `json:"protocol,omitempty"`
}

// ExternalProtocol is how an external port speaks.
type ExternalProtocol string

const (
	// ExternalHTTP is plain HTTP (the default).
	ExternalHTTP ExternalProtocol = "http"
	// ExternalHTTPS is HTTPS that the app originates itself (CONNECT).
	ExternalHTTPS ExternalProtocol = "https"
	// ExternalTLSProtocol is TLS of any kind that the app originates itself.
	ExternalTLSProtocol ExternalProtocol = "tls"
	// ExternalTCP is opaque bytes.
	ExternalTCP ExternalProtocol = "tcp"
)

var externalProtocols = []ExternalProtocol{ExternalHTTP, ExternalHTTPS, ExternalTLSProtocol, ExternalTCP}

// ExternalResolution says how a proxy finds the addresses of external hosts.
type ExternalResolution string

const (
	// ResolutionStatic sends traffic to the listed endpoints.
	ResolutionStatic ExternalResolution = "STATIC"
	// ResolutionDNS resolves the host name where the traffic leaves.
	ResolutionDNS ExternalResolution = "DNS"
)

var externalResolutions = []ExternalResolution{ResolutionStatic, ResolutionDNS}

// ExternalEndpoint is one address of an external service.
type ExternalEndpoint struct {
	// Address is an IP address.
	Address string `json:"address"`
	// Ports maps a port name of the spec to the port this endpoint
	// listens on, when it differs.
	Ports map[string]int32 `json:"ports,omitempty"`
}

// ExternalTLS configures TLS origination.
type ExternalTLS struct {
	// Mode is originate: the only mode for now.
	Mode ExternalTLSMode `json:"mode"`
	// SNI is the server name sent and verified; default: the first host.
	SNI string `json:"sni,omitempty"`
	// CABundle is the PEM of the CAs that sign the external server's
	// certificate; required (the proxy trusts no system roots).
	CABundle string `json:"caBundle"`
}

// ExternalTLSMode is what the mesh does with TLS to an external service.
type ExternalTLSMode string

// TLSOriginate makes the mesh open TLS to the external service.
const TLSOriginate ExternalTLSMode = "originate"

var externalTLSModes = []ExternalTLSMode{TLSOriginate}

// Default fills the port protocols (http), the resolution (STATIC) and the
// SNI of TLS origination (the first host).
func (s *ExternalServiceSpec) Default() {
	for i := range s.Ports {
		if s.Ports[i].Protocol == "" {
			s.Ports[i].Protocol = ExternalHTTP
		}
	}
	if s.Resolution == "" {
		s.Resolution = ResolutionStatic
	}
	if s.TLS != nil && s.TLS.SNI == "" && len(s.Hosts) > 0 && !strings.HasPrefix(s.Hosts[0], "*") {
		s.TLS.SNI = s.Hosts[0]
	}
}

// Validate checks a defaulted ExternalServiceSpec.
func (s *ExternalServiceSpec) Validate(path *Path) ErrorList {
	var errs ErrorList
	hosts := path.Child("hosts")
	if len(s.Hosts) == 0 {
		errs = append(errs, Invalid(hosts, "at least one host is required"))
	}
	seen := map[string]int{}
	wildcard := false
	for i, h := range s.Hosts {
		at := hosts.Index(i)
		if first, dup := seen[h]; dup {
			errs = append(errs, Invalid(at, "duplicate host %s: %s has it too", quote(h), hosts.Index(first)))
			continue
		}
		seen[h] = i
		if !IsExternalHost(h) {
			errs = append(errs, Invalid(at, "%s is not a valid host: use a lowercase DNS name with at least two labels, or *.<name> for a wildcard", quote(h)))
		}
		wildcard = wildcard || strings.HasPrefix(h, "*.")
	}

	ports := path.Child("ports")
	if len(s.Ports) == 0 {
		errs = append(errs, Invalid(ports, "at least one port is required"))
	}
	numbers := map[int32]int{}
	names := map[string]int{}
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
			if first, dup := names[p.Name]; dup {
				errs = append(errs, Invalid(at.Child("name"), "duplicate port name %s: %s has it too", quote(p.Name), ports.Index(first)))
			} else if !isDNSLabel(p.Name) {
				errs = append(errs, Invalid(at.Child("name"), "%s is not a valid port name: use %s", quote(p.Name), dnsLabelRule))
			} else {
				names[p.Name] = i
			}
		}
		if !slices.Contains(externalProtocols, p.Protocol) {
			errs = append(errs, NotSupported(at.Child("protocol"), p.Protocol, externalProtocols))
		}
	}

	switch res := path.Child("resolution"); {
	case !slices.Contains(externalResolutions, s.Resolution):
		errs = append(errs, NotSupported(res, s.Resolution, externalResolutions))
	case s.Resolution == ResolutionStatic && len(s.Endpoints) == 0:
		errs = append(errs, Invalid(path.Child("endpoints"), "at least one endpoint is required with resolution STATIC"))
	case s.Resolution == ResolutionDNS && wildcard:
		errs = append(errs, Invalid(res, "DNS resolution needs exact hosts: a wildcard host has no name to resolve"))
	}
	eps := path.Child("endpoints")
	for i, ep := range s.Endpoints {
		at := eps.Index(i)
		if a, err := netip.ParseAddr(ep.Address); err != nil || a.Zone() != "" {
			errs = append(errs, Invalid(at.Child("address"), "%s is not an IP address", quote(ep.Address)))
		}
		for _, name := range slices.Sorted(maps.Keys(ep.Ports)) {
			if _, ok := names[name]; !ok {
				errs = append(errs, Invalid(at.Child("ports").Key(name), "no port of spec.ports is named %s", quote(name)))
			}
			if n := ep.Ports[name]; n < 1 || n > 65535 {
				errs = append(errs, Invalid(at.Child("ports").Key(name), "must be between 1 and 65535"))
			}
		}
	}

	if gw := s.EgressGateway; gw != "" && !isDNSLabel(gw) {
		errs = append(errs, Invalid(path.Child("egressGateway"), "%s is not a valid service name: use %s", quote(gw), dnsLabelRule))
	}
	if s.TLS != nil {
		tp := path.Child("tls")
		if !slices.Contains(externalTLSModes, s.TLS.Mode) {
			errs = append(errs, NotSupported(tp.Child("mode"), s.TLS.Mode, externalTLSModes))
		}
		if s.TLS.SNI == "" {
			errs = append(errs, Invalid(tp.Child("sni"), "required when the first host is a wildcard"))
		} else if !isDNSName(s.TLS.SNI, maxSubdomainLength) {
			errs = append(errs, Invalid(tp.Child("sni"), "%s is not a valid server name", quote(s.TLS.SNI)))
		}
		errs = append(errs, validateCA(tp.Child("caBundle"), s.TLS.CABundle)...)
		for i, p := range s.Ports {
			if p.Protocol != ExternalHTTP {
				errs = append(errs, Invalid(ports.Index(i).Child("protocol"),
					"TLS origination needs plain http from the app, got %s", p.Protocol))
			}
		}
	}
	return errs
}

// IsExternalHost reports whether h may be an ExternalService host: a
// lowercase DNS name of at least two labels, or "*." and such a name.
func IsExternalHost(h string) bool {
	name := strings.TrimPrefix(h, "*.")
	return isDNSName(name, maxSubdomainLength) && strings.Contains(name, ".")
}

// MatchesExternalHost reports whether the request host name (no port)
// matches pattern, an ExternalService host: exactly, or a wildcard's
// suffix with one or more leading labels.
func MatchesExternalHost(pattern, name string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return len(name) > len(suffix) && strings.HasSuffix(name, suffix)
	}
	return pattern == name
}

// EndpointPort is the port endpoint ep listens on for port p of the spec.
func (ep ExternalEndpoint) EndpointPort(p ExternalPort) int32 {
	if n, ok := ep.Ports[p.Name]; ok && p.Name != "" {
		return n
	}
	return p.Port
}

// String names the port as "<port>/<protocol>".
func (p ExternalPort) String() string { return fmt.Sprintf("%d/%s", p.Port, p.Protocol) }

var _ Spec = (*ExternalServiceSpec)(nil)

// OutboundTrafficPolicy is the Mesh's rule for calls to unregistered hosts.
type OutboundTrafficPolicy struct {
	// Mode is ALLOW_ANY (the default) or REGISTRY_ONLY.
	Mode OutboundMode `json:"mode,omitempty"`
}

// OutboundMode says whether unregistered hosts may be called.
type OutboundMode string

const (
	// OutboundAllowAny lets calls to any host through.
	OutboundAllowAny OutboundMode = "ALLOW_ANY"
	// OutboundRegistryOnly refuses calls to hosts that are neither mesh
	// services nor listed by an ExternalService.
	OutboundRegistryOnly OutboundMode = "REGISTRY_ONLY"
)

var outboundModes = []OutboundMode{OutboundAllowAny, OutboundRegistryOnly}

// OutboundMode is the Mesh's outbound traffic policy mode, ALLOW_ANY when
// unset.
func (s *MeshSpec) OutboundMode() OutboundMode {
	if s.OutboundTrafficPolicy == nil || s.OutboundTrafficPolicy.Mode == "" {
		return OutboundAllowAny
	}
	return s.OutboundTrafficPolicy.Mode
}
