package xdsclient

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/proxy/runtime"
)

func emptyResources() *runtime.Resources {
	return &runtime.Resources{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Secrets:   map[string]*tlsv3.Secret{},
	}
}

// withType returns a copy of cur whose resources of the response's type are
// replaced by the response's (state of the world: the response is the whole
// set of that type). The maps are shallow-copied; messages are never mutated.
func withType(cur *runtime.Resources, typeURL string, resp *discoveryv3.DiscoveryResponse) (*runtime.Resources, error) {
	next := &runtime.Resources{
		Listeners: cur.Listeners, Routes: cur.Routes, Clusters: cur.Clusters,
		Endpoints: cur.Endpoints, Secrets: cur.Secrets,
	}
	var err error
	switch typeURL {
	case resource.ListenerType:
		next.Listeners, err = decode[*listenerv3.Listener](resp, func(m *listenerv3.Listener) string { return m.GetName() })
	case resource.RouteType:
		next.Routes, err = decode[*routev3.RouteConfiguration](resp, func(m *routev3.RouteConfiguration) string { return m.GetName() })
	case resource.ClusterType:
		next.Clusters, err = decode[*clusterv3.Cluster](resp, func(m *clusterv3.Cluster) string { return m.GetName() })
	case resource.EndpointType:
		next.Endpoints, err = decode[*endpointv3.ClusterLoadAssignment](resp, func(m *endpointv3.ClusterLoadAssignment) string { return m.GetClusterName() })
	case resource.SecretType:
		next.Secrets, err = decode[*tlsv3.Secret](resp, func(m *tlsv3.Secret) string { return m.GetName() })
	default:
		return nil, fmt.Errorf("unsupported resource type %s", typeURL)
	}
	return next, err
}

func decode[M proto.Message](resp *discoveryv3.DiscoveryResponse, name func(M) string) (map[string]M, error) {
	out := make(map[string]M, len(resp.GetResources()))
	for i, a := range resp.GetResources() {
		if a.GetTypeUrl() != resp.GetTypeUrl() {
			return nil, fmt.Errorf("resources[%d]: type %s in a %s response", i, a.GetTypeUrl(), resp.GetTypeUrl())
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("resources[%d]: decode %s: %w", i, a.GetTypeUrl(), err)
		}
		typed, ok := m.(M)
		if !ok {
			return nil, fmt.Errorf("resources[%d]: unexpected message %T", i, m)
		}
		n := name(typed)
		if n == "" {
			return nil, fmt.Errorf("resources[%d]: %w: no name", i, errNilResource)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("resources[%d]: duplicate resource name %q", i, n)
		}
		out[n] = typed
	}
	return out, nil
}

// edsNames are the ClusterLoadAssignments the EDS clusters need.
func edsNames(r *runtime.Resources) []string {
	set := map[string]struct{}{}
	for name, c := range r.Clusters {
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		if sn := c.GetEdsClusterConfig().GetServiceName(); sn != "" {
			name = sn
		}
		set[name] = struct{}{}
	}
	return sortedKeys(set)
}

// rdsNames are the RouteConfigurations the listeners' HTTP connection managers name.
func rdsNames(r *runtime.Resources) []string {
	set := map[string]struct{}{}
	for _, l := range r.Listeners {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().MessageIs(hcm) && f.GetTypedConfig().UnmarshalTo(hcm) == nil {
					if n := hcm.GetRds().GetRouteConfigName(); n != "" {
						set[n] = struct{}{}
					}
				}
			}
		}
	}
	return sortedKeys(set)
}
