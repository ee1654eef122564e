package v1alpha1

import "testing"

func TestExternalServiceSpecDefault(t *testing.T) {
	s := ExternalServiceSpec{
		Hosts: []string{"api.example.com"}, Ports: []ExternalPort{{Port: 80}},
		Endpoints: []ExternalEndpoint{{Address: "127.0.0.9"}}, TLS: &ExternalTLS{Mode: TLSOriginate},
	}
	s.Default()
	if s.Ports[0].Protocol != ExternalHTTP || s.Resolution != ResolutionStatic || s.TLS.SNI != "api.example.com" {
		t.Errorf("after Default: %+v (tls %+v)", s, *s.TLS)
	}
}

func TestExternalServiceSpecValidate(t *testing.T) {
	ok := func() ExternalServiceSpec {
		return ExternalServiceSpec{
			Hosts:     []string{"api.example.com", "*.example.org"},
			Ports:     []ExternalPort{{Name: "web", Port: 80}, {Port: 443, Protocol: ExternalHTTPS}},
			Endpoints: []ExternalEndpoint{{Address: "127.0.0.9", Ports: map[string]int32{"web": 8080}}},
		}
	}
	tests := []struct {
		name string
		edit func(*ExternalServiceSpec)
		want []string
	}{
		{name: "valid", edit: func(*ExternalServiceSpec) {}},
		{name: "dns", edit: func(s *ExternalServiceSpec) {
			s.Hosts, s.Resolution, s.Endpoints = []string{"api.example.com"}, ResolutionDNS, nil
		}},
		{name: "empty", edit: func(s *ExternalServiceSpec) { *s = ExternalServiceSpec{} }, want: []string{
			`spec.hosts: at least one host is required`,
			`spec.ports: at least one port is required`,
			`spec.endpoints: at least one endpoint is required with resolution STATIC`,
		}},
		{name: "hosts", edit: func(s *ExternalServiceSpec) {
			s.Hosts = []string{"localhost", "API.example.com", "a.*.com", "x.example.com", "x.example.com"}
		}, want: []string{
			`spec.hosts[0]: "localhost" is not a valid host: use a lowercase DNS name with at least two labels, or *.<name> for a wildcard`,
			`spec.hosts[1]: "API.example.com" is not a valid host: use a lowercase DNS name with at least two labels, or *.<name> for a wildcard`,
			`spec.hosts[2]: "a.*.com" is not a valid host: use a lowercase DNS name with at least two labels, or *.<name> for a wildcard`,
			`spec.hosts[4]: duplicate host "x.example.com": spec.hosts[3] has it too`,
		}},
		{name: "ports", edit: func(s *ExternalServiceSpec) {
			s.Ports = []ExternalPort{{Port: 0}, {Port: 80, Protocol: "udp"}, {Port: 80}}
		}, want: []string{
			`spec.ports[0].port: must be between 1 and 65535`,
			`spec.ports[1].protocol: unsupported value "udp": must be one of http, https, tls, tcp`,
			`spec.ports[2].port: duplicate port 80: spec.ports[1] has it too`,
			`spec.endpoints[0].ports["web"]: no port of spec.ports is named "web"`,
		}},
		{name: "endpoints", edit: func(s *ExternalServiceSpec) {
			s.Endpoints = []ExternalEndpoint{{Address: "api.example.com"}, {Address: "::1", Ports: map[string]int32{"web": 0}}}
		}, want: []string{
			`spec.endpoints[0].address: "api.example.com" is not an IP address`,
			`spec.endpoints[1].ports["web"]: must be between 1 and 65535`,
		}},
		{name: "dns wildcard", edit: func(s *ExternalServiceSpec) { s.Resolution = ResolutionDNS }, want: []string{
			`spec.resolution: DNS resolution needs exact hosts: a wildcard host has no name to resolve`,
		}},
		{name: "gateway", edit: func(s *ExternalServiceSpec) { s.EgressGateway = "Egress_GW" }, want: []string{
			`spec.egressGateway: "Egress_GW" is not a valid service name: use ` + dnsLabelRule,
		}},
		{name: "tls", edit: func(s *ExternalServiceSpec) {
			s.Hosts = []string{"*.example.org"}
			s.TLS = &ExternalTLS{Mode: "passthrough", CABundle: "not pem"}
		}, want: []string{
			`spec.tls.mode: unsupported value "passthrough": must be one of originate`,
			`spec.tls.sni: required when the first host is a wildcard`,
			`spec.tls.caBundle: holds something other than PEM certificates`,
			`spec.ports[1].protocol: TLS origination needs plain http from the app, got https`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok()
			tt.edit(&s)
			s.Default()
			assertErrors(t, s.Validate(NewPath("spec")), tt.want)
		})
	}
}

func TestMatchesExternalHost(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "x.api.example.com", false},
		{"*.example.com", "api.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", ".example.com", false},
	} {
		if got := MatchesExternalHost(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchesExternalHost(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestMeshOutboundTrafficPolicy(t *testing.T) {
	var s MeshSpec
	s.Default()
	if s.OutboundMode() != OutboundAllowAny || s.OutboundTrafficPolicy != nil {
		t.Errorf("default: mode %s, policy %+v", s.OutboundMode(), s.OutboundTrafficPolicy)
	}
	s.OutboundTrafficPolicy = &OutboundTrafficPolicy{Mode: "DENY"}
	assertErrors(t, s.Validate(NewPath("spec")), []string{
		`spec.outboundTrafficPolicy.mode: unsupported value "DENY": must be one of ALLOW_ANY, REGISTRY_ONLY`,
	})
}
