package runtime

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
)

// fullConfig is a valid config holding every kind of resource the contract
// defines: inbound (HTTP), upstreams (HTTP and TCP), the HTTP proxy.
func fullConfig(t testing.TB) *Resources {
	ca := testpki.NewCA(t, "root")
	r := serverResources(t, svcWeb, serverIP+":0", backendIP+":8080", ca.PEM())
	addUpstream(t, r, svcGRPC, clientIP+":0", serverIP+":15006")
	addUpstream(t, r, svcEcho, clientIP+":0", serverIP+":15007")
	l := httpProxyListener(t, clientIP+":0")
	r.Listeners[l.Name] = l
	rc := httpProxyRoute("default", 80, svcWeb, svcGRPC)
	r.Routes[rc.Name] = rc
	return r
}

var (
	grpcCluster  = xdsmeta.OutboundCluster(svcGRPC.name, svcGRPC.namespace)
	echoCluster  = xdsmeta.OutboundCluster(svcEcho.name, svcEcho.namespace)
	grpcListener = xdsmeta.OutboundListener(xdsmeta.Upstream{Service: svcGRPC.name, Namespace: svcGRPC.namespace, Listen: clientIP + ":0"}.String())
)

func editAny[M proto.Message](t *testing.T, a *anypb.Any, m M, edit func(M)) {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	a.Value = b
}

func inboundTLS(t *testing.T, r *Resources, edit func(*tlsv3.DownstreamTlsContext)) {
	editAny(t, r.Listeners[xdsmeta.InboundListener].FilterChains[0].TransportSocket.GetTypedConfig(), &tlsv3.DownstreamTlsContext{}, edit)
}

func inboundConnectionManager(t *testing.T, r *Resources, edit func(*hcmv3.HttpConnectionManager)) {
	editAny(t, r.Listeners[xdsmeta.InboundListener].FilterChains[0].Filters[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{}, edit)
}

func TestValidation(t *testing.T) {
	const hcmPath = `listener "inbound": filter_chains[0].filters[0].typed_config(envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager)`
	const tlsPath = `listener "inbound": filter_chains[0].transport_socket.typed_config(envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext)`
	tests := []struct {
		name string
		edit func(t *testing.T, r *Resources)
		want string // "" means valid
	}{
		{"the contract is valid", func(*testing.T, *Resources) {}, ""},
		{"missing route configuration and cluster are not errors", func(t *testing.T, r *Resources) {
			delete(r.Routes, xdsmeta.OutboundRoute(svcGRPC.name, svcGRPC.namespace))
			delete(r.Clusters, echoCluster)
			delete(r.Endpoints, grpcCluster)
		}, ""},
		{"unknown http filter", func(t *testing.T, r *Resources) {
			inboundConnectionManager(t, r, func(h *hcmv3.HttpConnectionManager) {
				lua := &hcmv3.HttpFilter{Name: "envoy.filters.http.lua", ConfigType: &hcmv3.HttpFilter_TypedConfig{
					TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"},
				}}
				h.HttpFilters = append([]*hcmv3.HttpFilter{lua}, h.HttpFilters...)
			})
		}, hcmPath + `.http_filters[0]: envoy.filters.http.lua is not supported`},
		{"router not last", func(t *testing.T, r *Resources) {
			inboundConnectionManager(t, r, func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append(h.HttpFilters, h.HttpFilters[0])
			})
		}, hcmPath + `.http_filters[0]: the router must be the last HTTP filter`},
		{"unsupported field", func(t *testing.T, r *Resources) {
			r.Clusters[grpcCluster].UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{}
		}, `cluster "outbound|greeter.default": upstream_connection_options: field is not supported by this proxy`},
		{"unsupported nested field", func(t *testing.T, r *Resources) {
			inboundConnectionManager(t, r, func(h *hcmv3.HttpConnectionManager) {
				h.GetRouteConfig().VirtualHosts[0].Routes[0].GetRoute().PrefixRewrite = "/v2"
			})
		}, hcmPath + `.route_config.virtual_hosts[0].routes[0].route.prefix_rewrite: field is not supported by this proxy`},
		{"unsupported lb policy", func(t *testing.T, r *Resources) {
			r.Clusters[grpcCluster].LbPolicy = clusterv3.Cluster_MAGLEV
		}, `cluster "outbound|greeter.default": lb_policy: MAGLEV is not supported`},
		{"unsupported discovery type", func(t *testing.T, r *Resources) {
			r.Clusters[grpcCluster].ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		}, `cluster "outbound|greeter.default": type: STRICT_DNS is not supported`},
		{"bad route regex", func(t *testing.T, r *Resources) {
			rc := r.Routes[xdsmeta.OutboundRoute(svcGRPC.name, svcGRPC.namespace)]
			rc.VirtualHosts[0].Routes[0].Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/(unclosed"}}
		}, `route "outbound|greeter.default": virtual_hosts[0].routes[0].match.safe_regex.regex: error parsing regexp`},
		{"duplicate domain", func(t *testing.T, r *Resources) {
			rc := r.Routes[xdsmeta.HTTPProxyRoute]
			rc.VirtualHosts[1].Domains = append(rc.VirtualHosts[1].Domains, "web")
		}, `route "http_proxy": virtual_hosts[1].domains[4]: domain "web" is also served by virtual_hosts[0]`},
		{"malformed endpoint address", func(t *testing.T, r *Resources) {
			r.Endpoints[grpcCluster].Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().Address = "not-an-ip"
		}, `endpoints "outbound|greeter.default": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "not-an-ip" is not an IP address`},
		{"equal endpoint weights", func(t *testing.T, r *Resources) {
			for _, e := range r.Endpoints[grpcCluster].Endpoints[0].LbEndpoints {
				e.LoadBalancingWeight = wrapperspb.UInt32(1)
			}
		}, ""},
		{"unequal endpoint weights", func(t *testing.T, r *Resources) {
			lbes := r.Endpoints[grpcCluster].Endpoints[0].LbEndpoints
			lbes = append(lbes, proto.Clone(lbes[0]).(*endpointv3.LbEndpoint))
			lbes[0].LoadBalancingWeight, lbes[1].LoadBalancingWeight = wrapperspb.UInt32(1), wrapperspb.UInt32(3)
			r.Endpoints[grpcCluster].Endpoints[0].LbEndpoints = lbes
		}, `endpoints "outbound|greeter.default": endpoints[0].lb_endpoints[1].load_balancing_weight: unequal weights are not supported`},
		{"endpoint priority", func(t *testing.T, r *Resources) {
			r.Endpoints[grpcCluster].Endpoints[0].Priority = 1
		}, `endpoints "outbound|greeter.default": endpoints[0].priority: field is not supported`},
		{"endpoint port 0", func(t *testing.T, r *Resources) {
			r.Endpoints[grpcCluster].Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{}
		}, `endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: 0 is not a valid port`},
		{"malformed listener address", func(t *testing.T, r *Resources) {
			r.Listeners[grpcListener].Address.GetSocketAddress().Address = "localhost"
		}, `listener "` + grpcListener + `": address.socket_address.address: "localhost" is not an IP address`},
		{"UDP listener", func(t *testing.T, r *Resources) {
			r.Listeners[grpcListener].Address.GetSocketAddress().Protocol = corev3.SocketAddress_UDP
		}, `address.socket_address.protocol: UDP is not supported`},
		{"two filter chains", func(t *testing.T, r *Resources) {
			l := r.Listeners[grpcListener]
			l.FilterChains = append(l.FilterChains, l.FilterChains[0])
		}, `listener "` + grpcListener + `": filter_chains[0].filter_chain_match.transport_protocol: is required to tell two filter chains apart`},
		{"three filter chains", func(t *testing.T, r *Resources) {
			l := r.Listeners[grpcListener]
			l.FilterChains = append(l.FilterChains, l.FilterChains[0], l.FilterChains[0])
		}, `listener "` + grpcListener + `": filter_chains[1].filter_chain_match: matches the same connections as filter_chains[0]`},
		{"TLS 1.2", func(t *testing.T, r *Resources) {
			inboundTLS(t, r, func(c *tlsv3.DownstreamTlsContext) {
				c.CommonTlsContext.TlsParams.TlsMinimumProtocolVersion = tlsv3.TlsParameters_TLSv1_2
			})
		}, tlsPath + `.common_tls_context.tls_params.tls_minimum_protocol_version: TLSv1_2 is not supported`},
		{"certificate other than the SVID", func(t *testing.T, r *Resources) {
			inboundTLS(t, r, func(c *tlsv3.DownstreamTlsContext) {
				c.CommonTlsContext.TlsCertificateSdsSecretConfigs[0].Name = "other"
			})
		}, tlsPath + `.common_tls_context.tls_certificate_sds_secret_configs[0].name: certificate "other" is not available`},
		{"DNS SAN matcher", func(t *testing.T, r *Resources) {
			inboundTLS(t, r, func(c *tlsv3.DownstreamTlsContext) {
				c.CommonTlsContext.GetCombinedValidationContext().DefaultValidationContext.MatchTypedSubjectAltNames[0].SanType = tlsv3.SubjectAltNameMatcher_DNS
			})
		}, `match_typed_subject_alt_names[0].san_type: SAN type DNS is not supported`},
		{"client certificate required without validation", func(t *testing.T, r *Resources) {
			inboundTLS(t, r, func(c *tlsv3.DownstreamTlsContext) {
				c.CommonTlsContext.ValidationContextType = nil
				c.RequireClientCertificate = wrapperspb.Bool(true)
			})
		}, tlsPath + `.require_client_certificate: a client certificate cannot be required`},
		{"upstream without validation", func(t *testing.T, r *Resources) {
			editAny(t, r.Clusters[grpcCluster].TransportSocket.GetTypedConfig(), &tlsv3.UpstreamTlsContext{}, func(c *tlsv3.UpstreamTlsContext) {
				c.CommonTlsContext.ValidationContextType = nil
			})
		}, `cluster "outbound|greeter.default": transport_socket.typed_config(envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext).common_tls_context: a validation context is required`},
		{"downstream context in a cluster", func(t *testing.T, r *Resources) {
			r.Clusters[grpcCluster].TransportSocket = r.Listeners[xdsmeta.InboundListener].FilterChains[0].TransportSocket
		}, `cluster "outbound|greeter.default": transport_socket.typed_config: envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext is not valid here`},
		{"non-ADS config source", func(t *testing.T, r *Resources) {
			r.Clusters[grpcCluster].EdsClusterConfig.EdsConfig = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{
				ApiConfigSource: &corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_GRPC},
			}}
		}, `cluster "outbound|greeter.default": eds_cluster_config.eds_config.api_config_source: field is not supported`},
		{"codec", func(t *testing.T, r *Resources) {
			inboundConnectionManager(t, r, func(h *hcmv3.HttpConnectionManager) { h.CodecType = hcmv3.HttpConnectionManager_HTTP1 })
		}, hcmPath + `.codec_type: HTTP1 is not supported`},
		{"upgrade type", func(t *testing.T, r *Resources) {
			inboundConnectionManager(t, r, func(h *hcmv3.HttpConnectionManager) { h.UpgradeConfigs[0].UpgradeType = "CONNECT" })
		}, hcmPath + `.upgrade_configs[0].upgrade_type: upgrade "CONNECT" is not supported`},
		{"secret with a private key", func(t *testing.T, r *Resources) {
			r.Secrets[xdsmeta.SecretRootCA].Type = &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{}}
		}, `secret "ROOTCA": tls_certificate.certificate_chain: is required`},
		{"secret without certificates", func(t *testing.T, r *Resources) {
			r.Secrets[xdsmeta.SecretRootCA] = rootCA([]byte("not PEM"))
		}, `secret "ROOTCA": validation_context.trusted_ca: tlsx: trust bundle: no PEM certificate found`},
		{"Envoy's own constraints", func(t *testing.T, r *Resources) {
			r.Clusters[grpcCluster].ConnectTimeout = durationpb.New(-1)
		}, `cluster "outbound|greeter.default": connect_timeout: value must be greater than 0s`},
		{"name mismatch", func(t *testing.T, r *Resources) {
			r.Clusters["renamed"] = r.Clusters[grpcCluster]
		}, `cluster "renamed": resource is named "outbound|greeter.default"`},
		{"two listeners on one address", func(t *testing.T, r *Resources) {
			r.Listeners[grpcListener].Address = socketAddr(t, "127.0.0.1:15001")
			r.Listeners[xdsmeta.HTTPProxyListener].Address = socketAddr(t, "127.0.0.1:15001")
		}, `127.0.0.1:15001 is also the address of listener`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullConfig(t)
			tt.edit(t, r)
			rt := New(Options{})
			_, err := rt.build(r, rt.cur.Load())
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted; want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error:\n  %v\nwant it to contain:\n  %s", err, tt.want)
			}
		})
	}
}

func TestValidationReportsEveryBadResource(t *testing.T) {
	r := fullConfig(t)
	r.Clusters[grpcCluster].LbPolicy = clusterv3.Cluster_MAGLEV
	r.Endpoints[echoCluster].Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().Address = "1.2.3"
	rt := New(Options{})
	_, err := rt.build(r, rt.cur.Load())
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`cluster "outbound|greeter.default": lb_policy`, `endpoints "outbound|echo.default"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// A response with one bad resource applies nothing, not even its good ones.
func TestApplyIsAllOrNothing(t *testing.T) {
	ca := testpki.NewCA(t, "root")
	app := startWebApp(t)
	rt := New(Options{Identity: newIdentity(t, ca, svcA)})
	defer rt.Close()
	good := emptyResources()
	good.Secrets[xdsmeta.SecretRootCA] = rootCA(ca.PEM())
	static := inboundCluster(t, svcWeb, app.addr)
	good.Clusters[static.Name] = static
	l := outboundListener(t, svcWeb, clientIP+":0")
	good.Listeners[l.Name] = l
	rc := outboundRoute(svcWeb)
	rc.VirtualHosts[0].Routes[0] = routeToCluster(static.Name)
	good.Routes[rc.Name] = rc
	if err := rt.Apply(good); err != nil {
		t.Fatal(err)
	}
	addr := rt.ListenerAddr(l.Name).String()
	before, _ := json.Marshal(rt.ConfigDump())

	bad := fullConfig(t)
	bad.Clusters[grpcCluster].LbPolicy = clusterv3.Cluster_MAGLEV
	for k, v := range good.Listeners {
		bad.Listeners[k] = v
	}
	if err := rt.Apply(bad); err == nil {
		t.Fatal("a config with a bad cluster was applied")
	}
	after, _ := json.Marshal(rt.ConfigDump())
	if string(before) != string(after) {
		t.Fatalf("config changed by a rejected update:\nbefore %s\nafter  %s", before, after)
	}
	if a := rt.ListenerAddr(xdsmeta.HTTPProxyListener); a != nil {
		t.Fatalf("a listener of the rejected update is bound at %v", a)
	}
	if _, body := get(t, h1Client(t), "http://"+addr+"/"); body != "GET " {
		t.Fatalf("the last good config stopped serving: %q", body)
	}
}

// An Apply that cannot bind a new address changes nothing, and closes what
// it bound for the same update.
func TestApplyBindFailure(t *testing.T) {
	rt := New(Options{})
	defer rt.Close()
	first := emptyResources()
	l := outboundListener(t, svcEcho, clientIP+":0")
	first.Listeners[l.Name] = l
	if err := rt.Apply(first); err != nil {
		t.Fatal(err)
	}
	before := rt.ListenerAddr(l.Name).String()

	taken := listen(t, clientIP)
	defer taken.Close()
	free := listen(t, clientIP)
	freeAddr := free.Addr().String()
	free.Close()

	next := emptyResources()
	next.Listeners[l.Name] = l
	a := outboundListener(t, svcWeb, freeAddr)
	b := outboundListener(t, svcGRPC, taken.Addr().String())
	next.Listeners[a.Name], next.Listeners[b.Name] = a, b
	err := rt.Apply(next)
	if err == nil || !strings.Contains(err.Error(), "bind "+taken.Addr().String()) {
		t.Fatalf("Apply = %v, want a bind error naming %s", err, taken.Addr())
	}
	if got := len(rt.ConfigDump().(*ConfigDump).Listeners); got != 1 {
		t.Fatalf("%d listeners after a failed bind, want 1", got)
	}
	if got := rt.ListenerAddr(l.Name).String(); got != before {
		t.Fatalf("listener moved from %s to %s", before, got)
	}
	if c, err := net.Dial("tcp", freeAddr); err == nil {
		c.Close()
		t.Fatalf("%s, bound by the failed update, still accepts", freeAddr)
	}
	if c, err := net.Dial("tcp", before); err != nil {
		t.Fatalf("the applied listener stopped accepting: %v", err)
	} else {
		c.Close()
	}
}
