package translate

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/types/known/durationpb"
)

// outboundRoute is the RouteConfiguration behind an HTTP upstream's local
// port: everything goes to the service's cluster, whatever the Host.
// A Route of the service replaces that with its rules, then the catch-all.
func (t *translation) outboundRoute(key ServiceKey) *routev3.RouteConfiguration {
	name := xdsmeta.OutboundRoute(key.Name, key.Namespace)
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes:  t.serviceRoutes(key),
		}},
	}
}

// httpProxyRoute routes the explicit HTTP proxy by Host: one virtual host
// per HTTP service of the mesh, matching "<svc>.<ns>" and, in the proxy's
// own namespace, "<svc>". The port in the Host is ignored
// (ignore_port_in_host_matching): an app may address a service on any port,
// declared or not, and in explicit mode a workload serves one. It returns
// the services it routes to.
func (t *translation) httpProxyRoute() (*routev3.RouteConfiguration, []ServiceKey) {
	rc := &routev3.RouteConfiguration{Name: xdsmeta.HTTPProxyRoute, IgnorePortInHostMatching: true}
	var reachable []ServiceKey
	// Envoy refuses a domain that two virtual hosts share.
	seen := map[string]bool{}
	for _, key := range t.in.knownServices() {
		if !t.in.protocol(key).IsHTTP() {
			continue
		}
		names := []string{host(key)}
		if key.Namespace == t.node.Namespace {
			names = append(names, key.Name)
		}
		var domains []string
		for _, d := range names {
			if !seen[d] {
				seen[d] = true
				domains = append(domains, d)
			}
		}
		if len(domains) == 0 {
			continue
		}
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    host(key),
			Domains: domains,
			Routes:  t.serviceRoutes(key),
		})
		reachable = append(reachable, key)
	}
	return rc, reachable
}

// routeToCluster is a RouteConfiguration with one catch-all virtual host.
func routeToCluster(name, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes:  []*routev3.Route{routeAll(cluster)},
		}},
	}
}

// DefaultRouteName names the catch-all route of a service.
const DefaultRouteName = "default"

// routeAll sends every path to cluster. The timeout is disabled: Envoy's
// 15s default would cut long-lived gRPC streams. It is named "default":
// the route of a service without a Route, or after its rules.
func routeAll(cluster string) *routev3.Route {
	return &routev3.Route{
		Name:  DefaultRouteName,
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			Timeout:          durationpb.New(0),
		}},
	}
}
