package translate

import (
	"fmt"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Extension names, as Envoy registers them.
const (
	filterHTTPConnectionManager = "envoy.filters.network.http_connection_manager"
	filterTCPProxy              = "envoy.filters.network.tcp_proxy"
	filterRouter                = "envoy.filters.http.router"
	transportSocketTLS          = "envoy.transport_sockets.tls"
	// httpProtocolOptionsKey is the typed_extension_protocol_options key of
	// envoy.extensions.upstreams.http.v3.HttpProtocolOptions.
	httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	upgradeWebSocket       = "websocket"
)

// ALPN protocol IDs of HTTP between proxies and from downstreams.
const (
	alpnH2     = "h2"
	alpnHTTP11 = "http/1.1"
)

// builder carries the first error of a translation, so that the many small
// constructors below stay expressions; only marshalling into Any can fail.
//
// It also hands out the messages that every cluster or listener of a proxy
// holds alike, built once: resources are read-only once built, so sharing
// sub-messages between them is safe and saves most of a large mesh's
// allocations.
type builder struct {
	err             error
	ads             *corev3.ConfigSource
	protocolOptions [3]map[string]*anypb.Any // by upstreamHTTP
}

// any packs m into an Any with deterministic bytes: a resource's version is
// the hash of its marshalled form, Any payloads included.
func (b *builder) any(m proto.Message) *anypb.Any {
	a := new(anypb.Any)
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil && b.err == nil {
		b.err = fmt.Errorf("marshal %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return a
}

// adsConfig is the ConfigSource of everything the proxy fetches over its one ADS stream.
func (b *builder) adsConfig() *corev3.ConfigSource {
	if b.ads == nil {
		b.ads = &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			ResourceApiVersion:    corev3.ApiVersion_V3,
		}
	}
	return b.ads
}

func (b *builder) sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: b.adsConfig()}
}

// commonTLS is the half of a mesh TLS context that both sides share: the SVID
// from SDS "default", the trust bundle from SDS "ROOTCA" and a check of the
// peer's URI SAN.
func (b *builder) commonTLS(san *matcherv3.StringMatcher, alpn []string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{b.sdsSecret(xdsmeta.SecretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
						SanType: tlsv3.SubjectAltNameMatcher_URI,
						Matcher: san,
					}},
				},
				ValidationContextSdsSecretConfig: b.sdsSecret(xdsmeta.SecretRootCA),
			},
		},
		AlpnProtocols: alpn,
	}
}

// downstreamTLS is the inbound listener's mTLS: TLS 1.3 only, a client
// certificate required, any SPIFFE ID of the trust domain accepted.
func (b *builder) downstreamTLS(trustDomain string, alpn []string) *corev3.TransportSocket {
	common := b.commonTLS(&matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + trustDomain + "/"},
	}, alpn)
	common.TlsParams = &tlsv3.TlsParameters{
		TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
		TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
	}
	return &corev3.TransportSocket{
		Name: transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: b.any(&tlsv3.DownstreamTlsContext{
			CommonTlsContext:         common,
			RequireClientCertificate: wrapperspb.Bool(true),
		})},
	}
}

// upstreamTLS is an outbound cluster's mTLS: the peer must present exactly
// the destination service's SPIFFE ID.
func (b *builder) upstreamTLS(spiffeID string, alpn []string) *corev3.TransportSocket {
	common := b.commonTLS(&matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_Exact{Exact: spiffeID},
	}, alpn)
	return &corev3.TransportSocket{
		Name: transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: b.any(&tlsv3.UpstreamTlsContext{
			CommonTlsContext: common,
		})},
	}
}

// upstreamHTTP is how a cluster speaks HTTP to its endpoints.
type upstreamHTTP int

const (
	upstreamHTTP1 upstreamHTTP = iota
	upstreamHTTP2
	// upstreamDownstream sends each request with its own protocol:
	// HTTP/1.x over HTTP/1.1, h2 and gRPC over HTTP/2.
	upstreamDownstream
)

// httpProtocolOptions sets the upstream HTTP version of a cluster.
func (b *builder) httpProtocolOptions(h2 bool) map[string]*anypb.Any {
	if h2 {
		return b.protocolOptionsFor(upstreamHTTP2)
	}
	return b.protocolOptionsFor(upstreamHTTP1)
}

func (b *builder) protocolOptionsFor(u upstreamHTTP) map[string]*anypb.Any {
	if b.protocolOptions[u] != nil {
		return b.protocolOptions[u]
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{}
	switch u {
	case upstreamDownstream:
		opts.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions: &corev3.Http1ProtocolOptions{}, Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		}
	case upstreamHTTP2:
		opts.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}}
	default:
		opts.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}}
	}
	b.protocolOptions[u] = map[string]*anypb.Any{httpProtocolOptionsKey: b.any(opts)}
	return b.protocolOptions[u]
}

// upgrades lets WebSocket upgrades through an HttpConnectionManager.
func upgrades() []*hcmv3.HttpConnectionManager_UpgradeConfig {
	return []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: upgradeWebSocket}}
}

// socketAddress parses an IP:port address. Envoy binds listeners and reaches
// STATIC and EDS endpoints by IP, so host names are refused here rather than
// by the proxy.
func socketAddress(hostport string) (*corev3.Address, error) {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("want IP:port: %w", err)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       ap.Addr().String(),
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())},
	}}}, nil
}
