package xdsclient

import (
	"errors"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/proxy/runtime"
)

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestWithTypeRefusesMalformedResponses: a response the client cannot read
// is NACKed before the runtime sees it, and a good one replaces only its type.
func TestWithTypeRefusesMalformedResponses(t *testing.T) {
	cluster := func(name string) *clusterv3.Cluster { return &clusterv3.Cluster{Name: name} }
	for _, tc := range []struct {
		name      string
		typeURL   string
		resources []proto.Message
		garbage   bool   // replaces the encoded resources with bytes that do not decode
		extra     []byte // appended to each encoded resource
		want      string // error substring; "" for success
		wantIs    error
	}{
		{name: "clusters", typeURL: resource.ClusterType, resources: []proto.Message{cluster("a"), cluster("b")}},
		{name: "empty set", typeURL: resource.ClusterType},
		{name: "duplicate name", typeURL: resource.ClusterType, resources: []proto.Message{cluster("a"), cluster("a")},
			want: `resources[1]: duplicate resource name "a"`},
		{name: "no name", typeURL: resource.ClusterType, resources: []proto.Message{cluster("")},
			want: "resources[0]", wantIs: errNilResource},
		{name: "another type inside", typeURL: resource.ClusterType, resources: []proto.Message{&listenerv3.Listener{Name: "l"}},
			want: "resources[0]: type " + resource.ListenerType + " in a " + resource.ClusterType + " response"},
		{name: "undecodable", typeURL: resource.ClusterType, resources: []proto.Message{cluster("a")}, garbage: true,
			want: "resources[0]: cluster: malformed"},
		{name: "unknown fields", typeURL: resource.ClusterType, resources: []proto.Message{cluster("a")}, extra: []byte{0xf8, 0xff, 0x7f, 0x01},
			want: `cluster "a": holds fields unknown to this proxy`},
		{name: "a field the proxy does not honour", typeURL: resource.ClusterType,
			resources: []proto.Message{&clusterv3.Cluster{Name: "a", RespectDnsTtl: true}},
			want:      `cluster "a": respect_dns_ttl: field is not supported by this proxy`},
		{name: "unsupported type", typeURL: resource.RuntimeType, want: "unsupported resource type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &discoveryv3.DiscoveryResponse{TypeUrl: tc.typeURL}
			for _, m := range tc.resources {
				a := anyOf(t, m)
				if tc.garbage {
					a.Value = []byte{0xff}
				}
				a.Value = append(a.Value, tc.extra...)
				resp.Resources = append(resp.Resources, a)
			}
			cur := emptyResources()
			cur.Listeners["kept"] = &listenerv3.Listener{Name: "kept"}
			cur.Clusters["old"] = cluster("old")
			next, err := withType(cur, tc.typeURL, resp)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want one containing %q", err, tc.want)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("err = %v, want one wrapping %v", err, tc.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sortedKeys(next.Clusters); len(got) != len(tc.resources) {
				t.Errorf("clusters %q, want those of the response", got)
			}
			if next.Listeners["kept"] == nil {
				t.Error("a response of one type dropped the resources of another")
			}
			if cur.Clusters["old"] == nil || len(cur.Clusters) != 1 {
				t.Error("withType modified the state it started from")
			}
		})
	}
}

// TestFollowedNames: endpoints are named by the EDS clusters (service_name
// when set), routes by the HTTP connection managers that use RDS.
func TestFollowedNames(t *testing.T) {
	r := emptyResources()
	r.Clusters["static"] = &clusterv3.Cluster{Name: "static", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "static"}}
	r.Clusters["b"] = &clusterv3.Cluster{Name: "b", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
	r.Clusters["a"] = &clusterv3.Cluster{Name: "a", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: "a-endpoints"}}
	if got, want := edsNames(r), []string{"a-endpoints", "b"}; !slices.Equal(got, want) {
		t.Errorf("edsNames = %q, want %q", got, want)
	}

	hcm := func(m *hcmv3.HttpConnectionManager) *listenerv3.Filter {
		return &listenerv3.Filter{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, m)}}
	}
	rdsHCM := func(name string) *listenerv3.Filter {
		return hcm(&hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{
			Rds: &hcmv3.Rds{RouteConfigName: name}}})
	}
	r.Listeners["one"] = &listenerv3.Listener{Name: "one", FilterChains: []*listenerv3.FilterChain{
		{Filters: []*listenerv3.Filter{rdsHCM("r2")}},
		{Filters: []*listenerv3.Filter{rdsHCM("r1")}},
	}}
	r.Listeners["inline"] = &listenerv3.Listener{Name: "inline", FilterChains: []*listenerv3.FilterChain{
		{Filters: []*listenerv3.Filter{hcm(&hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{
			RouteConfig: &routev3.RouteConfiguration{Name: "not-rds"}}})}},
	}}
	r.Listeners["again"] = &listenerv3.Listener{Name: "again", FilterChains: []*listenerv3.FilterChain{
		{Filters: []*listenerv3.Filter{rdsHCM("r1")}},
	}}
	if got, want := rdsNames(r), []string{"r1", "r2"}; !slices.Equal(got, want) {
		t.Errorf("rdsNames = %q, want %q", got, want)
	}
	if got := rdsNames(&runtime.Resources{}); len(got) != 0 {
		t.Errorf("rdsNames of nothing = %q", got)
	}
}
