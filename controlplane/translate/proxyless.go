package translate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Proxyless gRPC (grpc-go's xds resolver and xds server) reads the same
// Routes, DestinationPolicies and AccessPolicies as sidecars, through the
// part of xDS gRPC implements (gRFCs A27, A28, A29, A31, A33, A36, A41,
// A42, A44). A proxyless node gets:
//
//   - an API listener per HTTP service, named as a channel's target asks
//     for it: "<svc>.<ns>" and, in the node's own namespace, "<svc>"
//     (xds:///catalog and xds:///catalog.default both work), each with an
//     HttpConnectionManager reading RDS "outbound|<svc>.<ns>";
//   - that RouteConfiguration: the sidecar's routes, rewritten to what gRPC
//     matches (proxylessRoutes);
//   - the EDS clusters and load assignments a sidecar with the service as
//     an upstream would get, with mTLS from the bootstrap's certificate
//     provider instead of SDS;
//   - with an inbound (serving) address, the server Listener grpc-go asks
//     for, with mTLS and the service's AccessPolicies as RBAC.
//
// It gets every HTTP service, as a sidecar with an HTTP proxy port does: a
// gRPC client asks for listeners by the names its application dials, which
// the control plane cannot know in advance; the snapshot cache answers
// only the names asked for.

// proxyless builds the resources of a proxyless gRPC node.
func (t *translation) proxyless() (*Resources, error) {
	r := &Resources{}
	self := ServiceKey{Namespace: t.node.Namespace, Name: t.node.Service}
	if t.node.Inbound != "" {
		l, err := t.proxylessServerListener(self)
		if err != nil {
			return nil, err
		}
		r.Listeners = append(r.Listeners, l)
	}
	reachable := map[ServiceKey]bool{}
	named := map[string]bool{}
	for _, key := range t.in.knownServices() {
		if !t.in.protocol(key).IsHTTP() {
			continue
		}
		names := []string{host(key)}
		if key.Namespace == t.node.Namespace {
			names = append(names, key.Name)
		}
		for _, name := range names {
			if !named[name] {
				named[name] = true
				r.Listeners = append(r.Listeners, t.proxylessAPIListener(name, key))
			}
		}
		r.Routes = append(r.Routes, t.proxylessRoute(key))
		reachable[key] = true
	}
	for _, key := range slices.Collect(maps.Keys(reachable)) {
		for _, target := range t.in.RouteTargets(key) {
			reachable[target] = true
		}
	}
	for _, key := range slices.SortedFunc(maps.Keys(reachable), compareKeys) {
		r.Clusters = append(r.Clusters, t.proxylessCluster(key, ""))
		r.Endpoints = append(r.Endpoints, proxylessLoadAssignment(t.loadAssignment(key, nil)))
		subsets := t.in.subsetsOf(key)
		for i := range subsets {
			r.Clusters = append(r.Clusters, t.proxylessCluster(key, subsets[i].Name))
			r.Endpoints = append(r.Endpoints, proxylessLoadAssignment(t.loadAssignment(key, &subsets[i])))
		}
	}
	if t.err != nil {
		return nil, t.err
	}
	return seal(r)
}

// seal sorts each type's resources by name and versions them.
func seal(r *Resources) (*Resources, error) {
	r.versions = make(map[resource.Type]string, 5)
	for typeURL, items := range r.ByType() {
		slices.SortFunc(items, func(a, b types.Resource) int { return cmp.Compare(resourceName(a), resourceName(b)) })
		v, err := version(items, nil)
		if err != nil {
			return nil, fmt.Errorf("version %s: %w", typeURL, err)
		}
		r.versions[typeURL] = v
	}
	return r, nil
}

// proxylessAPIListener is the client-side listener of one target name.
func (t *translation) proxylessAPIListener(name string, key ServiceKey) *listenerv3.Listener {
	filters := append(t.outboundHTTPFilters(t.in.hasFault(key)), t.routerFilter())
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:  name,
		HttpFilters: filters,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: t.adsConfig(), RouteConfigName: xdsmeta.OutboundRoute(key.Name, key.Namespace),
		}},
	}
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: t.any(hcm)},
	}
}

func (t *translation) routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       filterRouter,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: t.any(&routerv3.Router{})},
	}
}

// proxylessRoute is the RouteConfiguration of a service for gRPC clients.
// Its one virtual host matches any authority: the listener already chose
// the service.
func (t *translation) proxylessRoute(key ServiceKey) *routev3.RouteConfiguration {
	name := xdsmeta.OutboundRoute(key.Name, key.Namespace)
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes:  proxylessRoutes(t.serviceRoutes(key)),
		}},
	}
}

// proxylessCluster is the sidecar's cluster of a service (or subset) for a
// gRPC client: its TLS from the bootstrap's certificate provider, and
// nothing gRPC would refuse or silently ignore. gRPC has no random
// balancer: random becomes round robin, which spreads load alike.
func (t *translation) proxylessCluster(key ServiceKey, subset string) *clusterv3.Cluster {
	c := proto.Clone(t.outboundCluster(key, subset)).(*clusterv3.Cluster)
	c.TransportSocket = t.proxylessUpstreamTLS(t.spiffeID(key))
	c.TypedExtensionProtocolOptions = nil
	// gRPC does no active health checking (it has no such xDS field).
	c.HealthChecks = nil
	if c.LbPolicy == clusterv3.Cluster_RANDOM {
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	}
	for _, th := range c.GetCircuitBreakers().GetThresholds() {
		// gRPC reads max_requests only (A32).
		th.MaxConnections, th.MaxPendingRequests, th.MaxRetries, th.RetryBudget = nil, nil, nil, nil
	}
	return c
}

// proxylessLoadAssignment gives each locality the ID and weight gRPC
// requires (A27): it drops a locality without them.
func proxylessLoadAssignment(cla *endpointv3.ClusterLoadAssignment) *endpointv3.ClusterLoadAssignment {
	for _, l := range cla.Endpoints {
		l.Locality = &corev3.Locality{}
		l.LoadBalancingWeight = wrapperspb.UInt32(1)
	}
	return cla
}

// certificateProvider names a certificate of the bootstrap's certificate
// provider instance (file_watcher ignores the name; it is kept for tools).
func certificateProvider(name string) *tlsv3.CertificateProviderPluginInstance {
	return &tlsv3.CertificateProviderPluginInstance{
		InstanceName:    xdsmeta.ProxylessCertificateProvider,
		CertificateName: name,
	}
}

// proxylessUpstreamTLS is a gRPC client's mTLS to a mesh service: its SVID
// and the trust bundle from the certificate provider, and exactly the
// destination's SPIFFE ID as the server's URI SAN (A29).
func (t *translation) proxylessUpstreamTLS(spiffeID string) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name: transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: t.any(&tlsv3.UpstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateProviderInstance: certificateProvider(xdsmeta.SecretDefault),
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
					CaCertificateProviderInstance: certificateProvider(xdsmeta.SecretRootCA),
					MatchSubjectAltNames:          []*matcherv3.StringMatcher{exact(spiffeID)},
				}},
			},
		})},
	}
}
