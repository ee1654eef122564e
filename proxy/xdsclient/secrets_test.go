package xdsclient

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func tlsSocket(t *testing.T, m proto.Message) *corev3.TransportSocket {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

// TestSDSNames: ROOTCA always, and every secret the clusters and listeners
// name, sorted, once each; never the proxy's own certificate.
func TestSDSNames(t *testing.T) {
	combined := func(name string) *tlsv3.CommonTlsContext {
		return &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: name},
				},
			},
		}
	}
	r := emptyResources()
	if got := sdsNames(r); !slices.Equal(got, []string{"ROOTCA"}) {
		t.Errorf("nothing configured: %v, want [ROOTCA]", got)
	}
	r.Clusters["mesh"] = &clusterv3.Cluster{TransportSocket: tlsSocket(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: combined("ROOTCA")})}
	r.Clusters["partner"] = &clusterv3.Cluster{TransportSocket: tlsSocket(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: combined("external-ca|default/partner")})}
	r.Clusters["other"] = &clusterv3.Cluster{TransportSocket: tlsSocket(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "external-ca|a/other"}},
	}})}
	r.Clusters["plain"] = &clusterv3.Cluster{}
	r.Listeners["inbound"] = &listenerv3.Listener{FilterChains: []*listenerv3.FilterChain{
		{TransportSocket: tlsSocket(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: combined("ROOTCA")})},
		{TransportSocket: tlsSocket(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: combined("client-ca")})},
		{TransportSocket: tlsSocket(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "gateway|default/web|https|0"}},
		}})},
		{},
	}}
	want := []string{"ROOTCA", "client-ca", "external-ca|a/other", "external-ca|default/partner", "gateway|default/web|https|0"}
	if got := sdsNames(r); !slices.Equal(got, want) {
		t.Errorf("sdsNames = %v, want %v", got, want)
	}
}
