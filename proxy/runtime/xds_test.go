package runtime

import (
	"net"
	"strconv"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// The builders below produce exactly what docs/architecture.md ("The xDS
// contract between translator and proxy") specifies, by hand.

const trustDomain = "weft.test"

// service is a mesh service in the tests.
type service struct {
	name, namespace string
	// protocol is "http", "http2", "grpc" or "tcp".
	protocol string
}

func (s service) host() string { return xdsmeta.ServiceHost(s.name, s.namespace) }
func (s service) id() spiffe.ID {
	return spiffe.ID{TrustDomain: trustDomain, Namespace: s.namespace, Service: s.name}
}
func (s service) isTCP() bool { return s.protocol == "tcp" }

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func socketAddr(t testing.TB, hostport string) *corev3.Address {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
	}}}
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ads()}
}

func uriMatcher(m *matcherv3.StringMatcher) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: m}
}

func commonTLS(alpn []string, san *matcherv3.StringMatcher) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
			TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
		},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(xdsmeta.SecretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{uriMatcher(san)},
				},
				ValidationContextSdsSecretConfig: sdsSecret(xdsmeta.SecretRootCA),
			},
		},
		AlpnProtocols: alpn,
	}
}

func alpnFor(s service) []string {
	if s.isTCP() {
		return []string{xdsmeta.ALPNTCP}
	}
	return []string{"h2", "http/1.1"}
}

func routerFilter(t testing.TB) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
	}
}

func networkFilter(t testing.TB, name string, m proto.Message) *listenerv3.Filter {
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, m)}}
}

func hcmFilter(t testing.TB, h *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	h.HttpFilters = []*hcmv3.HttpFilter{routerFilter(t)}
	h.CodecType = hcmv3.HttpConnectionManager_AUTO
	return networkFilter(t, "envoy.filters.network.http_connection_manager", h)
}

func tcpFilter(t testing.TB, statPrefix, cluster string) *listenerv3.Filter {
	return networkFilter(t, "envoy.filters.network.tcp_proxy", &tcpproxyv3.TcpProxy{
		StatPrefix: statPrefix, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
	})
}

func routeToCluster(cluster string) *routev3.Route {
	return &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
	}
}

func websocket() []*hcmv3.HttpConnectionManager_UpgradeConfig {
	return []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
}

// inboundListener terminates mTLS from other proxies for s.
func inboundListener(t testing.TB, s service, addr string) *listenerv3.Listener {
	cluster := xdsmeta.InboundCluster(s.name, s.namespace)
	var filter *listenerv3.Filter
	if s.isTCP() {
		filter = tcpFilter(t, "inbound", cluster)
	} else {
		filter = hcmFilter(t, &hcmv3.HttpConnectionManager{
			StatPrefix: "inbound",
			RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
				Name: "inbound",
				VirtualHosts: []*routev3.VirtualHost{{
					Name: "inbound", Domains: []string{"*"}, Routes: []*routev3.Route{routeToCluster(cluster)},
				}},
			}},
			UpgradeConfigs: websocket(),
		})
	}
	tlsCtx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: commonTLS(alpnFor(s), &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + trustDomain + "/"},
		}),
	}
	return &listenerv3.Listener{
		Name:             xdsmeta.InboundListener,
		Address:          socketAddr(t, addr),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{filter},
			TransportSocket: &corev3.TransportSocket{
				Name:       "envoy.transport_sockets.tls",
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, tlsCtx)},
			},
		}},
	}
}

// outboundListener is the plaintext local port of one --upstream.
func outboundListener(t testing.TB, s service, addr string) *listenerv3.Listener {
	name := xdsmeta.OutboundCluster(s.name, s.namespace)
	var filter *listenerv3.Filter
	if s.isTCP() {
		filter = tcpFilter(t, name, name)
	} else {
		filter = hcmFilter(t, &hcmv3.HttpConnectionManager{
			StatPrefix: name,
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
				ConfigSource: ads(), RouteConfigName: xdsmeta.OutboundRoute(s.name, s.namespace),
			}},
			UpgradeConfigs: websocket(),
		})
	}
	return &listenerv3.Listener{
		Name:             xdsmeta.OutboundListener(xdsmeta.Upstream{Service: s.name, Namespace: s.namespace, Listen: addr}.String()),
		Address:          socketAddr(t, addr),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{filter}}},
	}
}

// httpProxyListener is the explicit HTTP proxy port.
func httpProxyListener(t testing.TB, addr string) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:             xdsmeta.HTTPProxyListener,
		Address:          socketAddr(t, addr),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcmFilter(t, &hcmv3.HttpConnectionManager{
			StatPrefix: xdsmeta.HTTPProxyListener,
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
				ConfigSource: ads(), RouteConfigName: xdsmeta.HTTPProxyRoute,
			}},
			UpgradeConfigs: websocket(),
		})}}},
	}
}

// outboundRoute is the RouteConfiguration behind an upstream's local port.
func outboundRoute(s service) *routev3.RouteConfiguration {
	name := xdsmeta.OutboundRoute(s.name, s.namespace)
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name: s.host(), Domains: []string{"*"},
			Routes: []*routev3.Route{routeToCluster(xdsmeta.OutboundCluster(s.name, s.namespace))},
		}},
	}
}

// httpProxyRoute has one virtual host per HTTP service: "<svc>.<ns>" and,
// in the proxy's namespace, "<svc>", each also with ":<port>".
func httpProxyRoute(ownNamespace string, port int, services ...service) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: xdsmeta.HTTPProxyRoute}
	for _, s := range services {
		names := []string{s.host()}
		if s.namespace == ownNamespace {
			names = append(names, s.name)
		}
		var domains []string
		for _, n := range names {
			domains = append(domains, n, n+":"+strconv.Itoa(port))
		}
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name: s.host(), Domains: domains,
			Routes: []*routev3.Route{routeToCluster(xdsmeta.OutboundCluster(s.name, s.namespace))},
		})
	}
	return rc
}

// outboundCluster is the EDS cluster of a mesh service: round robin, mTLS
// with an exact URI SAN, HTTP/2 for HTTP services.
func outboundCluster(t testing.TB, s service) *clusterv3.Cluster {
	alpn := []string{"h2", "http/1.1"}
	if s.isTCP() {
		alpn = []string{xdsmeta.ALPNTCP}
	}
	tlsCtx := &tlsv3.UpstreamTlsContext{CommonTlsContext: commonTLS(alpn, &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s.id().String()},
	})}
	c := &clusterv3.Cluster{
		Name:                 xdsmeta.OutboundCluster(s.name, s.namespace),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
		ConnectTimeout:       durationpb.New(2e9),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		TransportSocket: &corev3.TransportSocket{
			Name:       "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, tlsCtx)},
		},
	}
	if !s.isTCP() {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t, downstreamOptions()),
		}
	}
	return c
}

// downstreamOptions sends each request upstream with its own protocol, as
// the translator configures the clusters of http services.
func downstreamOptions() *httpv3.HttpProtocolOptions {
	return &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
		UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
			HttpProtocolOptions: &corev3.Http1ProtocolOptions{}, Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		},
	}}
}

func http2Options() *httpv3.HttpProtocolOptions {
	return &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		},
	}}
}

func http1Options() *httpv3.HttpProtocolOptions {
	return &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
				HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
			},
		},
	}}
}

// inboundCluster is the static, plaintext cluster of the local app: h2c for
// http2 and grpc services, HTTP/1.1 for http.
func inboundCluster(t testing.TB, s service, app string) *clusterv3.Cluster {
	name := xdsmeta.InboundCluster(s.name, s.namespace)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(2e9),
		LoadAssignment:       loadAssignment(t, name, app),
	}
	switch s.protocol {
	case "http2", "grpc":
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t, http2Options()),
		}
	case "http":
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t, http1Options()),
		}
	}
	return c
}

// loadAssignment lists endpoints with the "weft" metadata of the contract.
func loadAssignment(t testing.TB, name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	var lbes []*endpointv3.LbEndpoint
	for i, a := range addrs {
		md, err := structpb.NewStruct(map[string]any{"workload": name + "@" + a, "version": "v" + strconv.Itoa(i+1)})
		if err != nil {
			t.Fatal(err)
		}
		lbes = append(lbes, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddr(t, a)}},
			HealthStatus:   corev3.HealthStatus_HEALTHY,
			Metadata:       &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{xdsmeta.MetadataNamespace: md}},
		})
	}
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbes}}
	return cla
}

func rootCA(pemBytes []byte) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: xdsmeta.SecretRootCA,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: pemBytes}},
		}},
	}
}

func emptyResources() *Resources {
	return &Resources{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets:   map[string]*tlsv3.Secret{},
	}
}

// serverResources is the config of a service's own proxy: inbound listener
// and the static cluster of its app.
func serverResources(t testing.TB, s service, inbound, app string, bundle []byte) *Resources {
	r := emptyResources()
	l := inboundListener(t, s, inbound)
	r.Listeners[l.Name] = l
	c := inboundCluster(t, s, app)
	r.Clusters[c.Name] = c
	r.Secrets[xdsmeta.SecretRootCA] = rootCA(bundle)
	return r
}

// addUpstream adds what a client proxy needs to reach s: the upstream's
// local listener, its route (HTTP), its EDS cluster and the endpoints.
func addUpstream(t testing.TB, r *Resources, s service, listen string, endpoints ...string) {
	l := outboundListener(t, s, listen)
	r.Listeners[l.Name] = l
	if !s.isTCP() {
		rc := outboundRoute(s)
		r.Routes[rc.Name] = rc
	}
	c := outboundCluster(t, s)
	r.Clusters[c.Name] = c
	r.Endpoints[c.Name] = loadAssignment(t, c.Name, endpoints...)
}
