package v1alpha1

import (
	"reflect"
	"testing"
)

func TestServiceSpecDefault(t *testing.T) {
	s := ServiceSpec{Ports: []ServicePort{{Port: 80}, {Port: 81, Protocol: ProtocolTCP}}}
	s.Default()
	want := ServiceSpec{Ports: []ServicePort{{Port: 80, Protocol: ProtocolHTTP}, {Port: 81, Protocol: ProtocolTCP}}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("after Default: %+v, want %+v", s, want)
	}
}

func TestServiceSpecValidate(t *testing.T) {
	tests := []struct {
		name  string
		ports []ServicePort
		want  []string
	}{
		{name: "one port", ports: []ServicePort{{Port: 8080}}},
		{
			name: "every protocol, named ports",
			ports: []ServicePort{
				{Name: "web", Port: 1, Protocol: ProtocolHTTP},
				{Name: "h2", Port: 2, Protocol: ProtocolHTTP2},
				{Name: "rpc", Port: 3, Protocol: ProtocolGRPC},
				{Name: "db", Port: 65535, Protocol: ProtocolTCP},
			},
		},
		{name: "no ports", want: []string{`spec.ports: at least one port is required`}},
		{
			name:  "port range",
			ports: []ServicePort{{Port: 0}, {Port: 65536}, {Port: -1}},
			want: []string{
				`spec.ports[0].port: must be between 1 and 65535`,
				`spec.ports[1].port: must be between 1 and 65535`,
				`spec.ports[2].port: must be between 1 and 65535`,
			},
		},
		{
			name:  "duplicates",
			ports: []ServicePort{{Name: "web", Port: 80}, {Name: "web", Port: 80}, {Name: "other", Port: 80}},
			want: []string{
				`spec.ports[1].port: duplicate port 80: spec.ports[0] has it too`,
				`spec.ports[1].name: duplicate port name "web": spec.ports[0] has it too`,
				`spec.ports[2].port: duplicate port 80: spec.ports[0] has it too`,
			},
		},
		{
			name:  "bad name",
			ports: []ServicePort{{Name: "Web_1", Port: 80}},
			want:  []string{`spec.ports[0].name: "Web_1" is not a valid port name: use ` + dnsLabelRule},
		},
		{
			name:  "protocol",
			ports: []ServicePort{{Port: 53, Protocol: "udp"}, {Port: 80, Protocol: "HTTP"}},
			want: []string{
				`spec.ports[0].protocol: unsupported value "udp": must be one of http, http2, grpc, tcp`,
				`spec.ports[1].protocol: unsupported value "HTTP": must be one of http, http2, grpc, tcp`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ServiceSpec{Ports: tt.ports}
			s.Default()
			assertErrors(t, s.Validate(NewPath("spec")), tt.want)
		})
	}
}
