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
	"github.com/weftmesh/weft/proxy/xdswire"
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
		next.Listeners, err = decode(resp, "listener", (*listenerv3.Listener).GetName)
	case resource.RouteType:
		next.Routes, err = decode(resp, "route", (*routev3.RouteConfiguration).GetName)
	case resource.ClusterType:
		next.Clusters, err = decode(resp, "cluster", (*clusterv3.Cluster).GetName)
	case resource.EndpointType:
		next.Endpoints, err = decode(resp, "endpoints", (*endpointv3.ClusterLoadAssignment).GetClusterName)
	case resource.SecretType:
		next.Secrets, err = decode(resp, "secret", (*tlsv3.Secret).GetName)
	default:
		return nil, fmt.Errorf("unsupported resource type %s", typeURL)
	}
	return next, err
}

// decode decodes each resource of a response with the proxy's own decoder,
// which refuses fields the proxy does not honour. An error names the
// resource (kind "name"), as the runtime's checks do, when its name could
// be read.
func decode[T any, M interface {
	*T
	proto.Message
}](resp *discoveryv3.DiscoveryResponse, kind string, name func(M) string) (map[string]M, error) {
	out := make(map[string]M, len(resp.GetResources()))
	for i, a := range resp.GetResources() {
		m := M(new(T))
		if a.GetTypeUrl() != resp.GetTypeUrl() || !a.MessageIs(m) {
			return nil, fmt.Errorf("resources[%d]: type %s in a %s response", i, a.GetTypeUrl(), resp.GetTypeUrl())
		}
		if err := xdswire.Unmarshal(a.GetValue(), m); err != nil {
			if n := name(m); n != "" {
				return nil, fmt.Errorf("%s %q: %w", kind, n, err)
			}
			return nil, fmt.Errorf("resources[%d]: %s: %w", i, kind, err)
		}
		n := name(m)
		if n == "" {
			return nil, fmt.Errorf("resources[%d]: %w: no name", i, errNilResource)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("resources[%d]: duplicate resource name %q", i, n)
		}
		out[n] = m
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
				if f.GetTypedConfig().MessageIs(hcm) && xdswire.UnmarshalAny(f.GetTypedConfig(), hcm) == nil {
					if n := hcm.GetRds().GetRouteConfigName(); n != "" {
						set[n] = struct{}{}
					}
				}
			}
		}
	}
	return sortedKeys(set)
}
