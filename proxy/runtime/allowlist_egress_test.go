package runtime

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// TestExternalTLSClusterFields: a cluster originating TLS to a server
// outside the mesh (SNI, no client certificate, its own CA over SDS, one
// exact DNS SAN) compiles; other DNS SAN matchers are NACKed with their
// path.
func TestExternalTLSClusterFields(t *testing.T) {
	dns := func(m *matcherv3.StringMatcher) *tlsv3.SubjectAltNameMatcher {
		return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: m}
	}
	exact := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
	}
	for _, tt := range []struct {
		name string
		sans []*tlsv3.SubjectAltNameMatcher
		want string
	}{
		{name: "exact server name", sans: []*tlsv3.SubjectAltNameMatcher{dns(exact("api.partner.example"))}},
		{name: "prefix", sans: []*tlsv3.SubjectAltNameMatcher{dns(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "api."}})},
			want: "match_typed_subject_alt_names[0].matcher: a DNS SAN matcher must be exact (the server name)"},
		{name: "two", sans: []*tlsv3.SubjectAltNameMatcher{dns(exact("a.example")), dns(exact("b.example"))},
			want: `match_typed_subject_alt_names[1].matcher: only one DNS SAN matcher is supported (have "a.example")`},
		{name: "ignore case", sans: []*tlsv3.SubjectAltNameMatcher{dns(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a.example"}, IgnoreCase: true})},
			want: "matcher.ignore_case: is not supported for DNS SANs"},
		{name: "email", sans: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_EMAIL, Matcher: exact("a@example")}},
			want: "san_type: SAN type EMAIL is not supported"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := fullConfig(t)
			r.Clusters["outbound|api.partner.example:80"] = &clusterv3.Cluster{
				Name:                 "outbound|api.partner.example:80",
				ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
				LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|api.partner.example:80", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
						SocketAddress: &corev3.SocketAddress{Address: "127.0.8.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 443}},
					}}}},
				}}}}},
				TransportSocket: &corev3.TransportSocket{
					Name: "envoy.transport_sockets.tls",
					ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, &tlsv3.UpstreamTlsContext{
						Sni: "api.partner.example",
						CommonTlsContext: &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
							CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
								DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: tt.sans},
								ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "external-ca|default/partner"},
							},
						}},
					})},
				},
			}
			rt := New(Options{})
			_, err := rt.build(r, rt.cur.Load())
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
