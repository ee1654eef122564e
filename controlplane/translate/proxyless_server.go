package translate

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// proxylessServerListener is the Listener a proxyless gRPC server (grpc-go's
// xds.NewGRPCServer) asks for by its listening address (A36): one filter
// chain requiring mTLS with the workload's SVID, and an HttpConnectionManager
// whose HTTP filters are the service's AccessPolicies as RBAC (A41), its one
// route a non-forwarding action, as gRPC servers require.
//
// The chain is mTLS whatever the mTLS mode: gRPC cannot tell TLS from
// plaintext on one port (it matches transport_protocol "raw_buffer" only),
// so a proxyless server is always STRICT. Nor does a gRPC server check the
// client's SAN in the handshake (it refuses match_subject_alt_names there):
// any SVID of the trust bundle is accepted, and the peer's SPIFFE ID is
// for RBAC to judge.
func (t *translation) proxylessServerListener(self ServiceKey) (*listenerv3.Listener, error) {
	addr, err := socketAddress(t.node.Inbound)
	if err != nil {
		return nil, fmt.Errorf("proxyless server address: %w", err)
	}
	name := xdsmeta.InboundCluster(self.Name, self.Namespace)
	rc := &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:   DefaultRouteName,
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
			}},
		}},
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     xdsmeta.InboundListener,
		HttpFilters:    append(t.rbacHTTPFilters(self), t.routerFilter()),
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
	}
	tls := &corev3.TransportSocket{
		Name: transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: t.any(&tlsv3.DownstreamTlsContext{
			RequireClientCertificate: wrapperspb.Bool(true),
			CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateProviderInstance: certificateProvider(xdsmeta.SecretDefault),
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
					CaCertificateProviderInstance: certificateProvider(xdsmeta.SecretRootCA),
				}},
			},
		})},
	}
	return &listenerv3.Listener{
		Name:    xdsmeta.ServerListener(t.node.Inbound),
		Address: addr,
		FilterChains: []*listenerv3.FilterChain{{
			Name: xdsmeta.InboundListener,
			Filters: []*listenerv3.Filter{{
				Name:       filterHTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.any(hcm)},
			}},
			TransportSocket: tls,
		}},
	}, nil
}
