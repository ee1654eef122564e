package runtime

import (
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
)

var grpcRoute = xdsmeta.OutboundRoute(svcGRPC.name, svcGRPC.namespace)

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRoutingValidation(t *testing.T) {
	const rcPath = `route "` + "outbound|greeter.default" + `": virtual_hosts[0].routes[0]`
	u32 := wrapperspb.UInt32
	abort := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14},
		Percentage: &typev3.FractionalPercent{Numerator: 5, Denominator: typev3.FractionalPercent_TEN_THOUSAND}}}
	tests := []struct {
		name string
		edit func(r *routev3.Route, a *routev3.RouteAction)
		want string
	}{
		{"header and query match", func(r *routev3.Route, _ *routev3.RouteAction) {
			r.Match.Headers = []*routev3.HeaderMatcher{
				{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "GET"}}}},
				{Name: "x-canary", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}},
			}
			r.Match.QueryParameters = []*routev3.QueryParameterMatcher{{Name: "v",
				QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}}
		}, ""},
		{"range match stays NACKed", func(r *routev3.Route, _ *routev3.RouteAction) {
			r.Match.Headers = []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{}}}
		}, rcPath + ".match.headers[0].range_match: field is not supported"},
		{"bad header regex", func(r *routev3.Route, _ *routev3.RouteAction) {
			r.Match.Headers = []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}}}}
		}, rcPath + ".match.headers[0].string_match.safe_regex.regex"},
		{"weighted clusters, retries, mirror, hash", func(_ *routev3.Route, a *routev3.RouteAction) {
			a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: grpcCluster, Weight: u32(90)}, {Name: echoCluster, Weight: u32(10)}}}}
			a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,reset,unavailable", NumRetries: u32(2),
				PerTryTimeout: durationpb.New(time.Second), RetriableStatusCodes: []uint32{409},
				RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(10 * time.Millisecond), MaxInterval: durationpb.New(time.Second)}}
			a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: echoCluster,
				RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 10}}}}
			a.HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
				Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}}
		}, ""},
		{"per-cluster header edits stay NACKed", func(_ *routev3.Route, a *routev3.RouteAction) {
			a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: grpcCluster, Weight: u32(1), RequestHeadersToRemove: []string{"x"}}}}}
		}, "weighted_clusters.clusters[0].request_headers_to_remove: field is not supported"},
		{"all weights zero", func(_ *routev3.Route, a *routev3.RouteAction) {
			a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: grpcCluster, Weight: u32(0)}}}}
		}, "weighted_clusters.clusters: at least one cluster"},
		{"unknown retry condition", func(_ *routev3.Route, a *routev3.RouteAction) {
			a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,retriable-4xx"}
		}, `retry_policy.retry_on: condition "retriable-4xx" is not supported`},
		{"retry host predicate stays NACKed", func(_ *routev3.Route, a *routev3.RouteAction) {
			a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", HostSelectionRetryMaxAttempts: 3}
		}, "retry_policy.host_selection_retry_max_attempts: field is not supported"},
		{"mirror runtime key stays NACKed", func(_ *routev3.Route, a *routev3.RouteAction) {
			a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: echoCluster,
				RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{}, RuntimeKey: "k"}}}
		}, "runtime_fraction.runtime_key: field is not supported"},
		{"header edits", func(r *routev3.Route, _ *routev3.RouteAction) {
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-a", Value: "1"},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}
			r.RequestHeadersToRemove = []string{"x-b"}
			r.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-c", Value: "2"}}}
			r.ResponseHeadersToRemove = []string{"server"}
		}, ""},
		{"header substitution", func(r *routev3.Route, _ *routev3.RouteAction) {
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-a", Value: "%DOWNSTREAM_REMOTE_ADDRESS%"}}}
		}, "request_headers_to_add[0].header.value: substitution"},
		{"editing :authority", func(r *routev3.Route, _ *routev3.RouteAction) {
			r.RequestHeadersToRemove = []string{":authority"}
		}, "request_headers_to_remove[0]: header \":authority\" cannot be edited"},
		{"fault per route", func(r *routev3.Route, _ *routev3.RouteAction) {
			a, _ := anypb.New(abort)
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": a}
		}, ""},
		{"fault header abort stays NACKed", func(r *routev3.Route, _ *routev3.RouteAction) {
			a, _ := anypb.New(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HeaderAbort_{}}})
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": a}
		}, "abort.header_abort: field is not supported"},
		{"fault bad status", func(r *routev3.Route, _ *routev3.RouteAction) {
			a, _ := anypb.New(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 99}}})
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": a}
		}, "abort.http_status: value must be greater than or equal to 200"},
		{"per-route config of another filter", func(r *routev3.Route, _ *routev3.RouteAction) {
			a, _ := anypb.New(&routerv3.Router{})
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.router": a}
		}, `typed_per_filter_config["envoy.filters.http.router"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullConfig(t)
			rt0 := r.Routes[grpcRoute].VirtualHosts[0].Routes[0]
			tt.edit(rt0, rt0.GetRoute())
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

func TestFaultFilterInConnectionManager(t *testing.T) {
	delay := &faultv3.HTTPFault{Delay: &commonfaultv3.FaultDelay{
		FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Millisecond)}}}
	tests := []struct {
		name    string
		filters func(t *testing.T) []*hcmv3.HttpFilter
		want    string
	}{
		{"fault before router", func(t *testing.T) []*hcmv3.HttpFilter {
			return []*hcmv3.HttpFilter{
				{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, delay)}},
				{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}},
			}
		}, ""},
		{"fault after router", func(t *testing.T) []*hcmv3.HttpFilter {
			return []*hcmv3.HttpFilter{
				{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}},
				{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, delay)}},
			}
		}, "the router must be the last HTTP filter"},
		{"max active faults stays NACKed", func(t *testing.T) []*hcmv3.HttpFilter {
			return []*hcmv3.HttpFilter{
				{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t,
					&faultv3.HTTPFault{MaxActiveFaults: wrapperspb.UInt32(1)})}},
				{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}},
			}
		}, "max_active_faults: field is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullConfig(t)
			inboundConnectionManager(t, r, func(h *hcmv3.HttpConnectionManager) { h.HttpFilters = tt.filters(t) })
			rt := New(Options{})
			_, err := rt.build(r, rt.cur.Load())
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestTCPWeightedClusters(t *testing.T) {
	echo := xdsmeta.OutboundListener(xdsmeta.Upstream{Service: svcEcho.name, Namespace: svcEcho.namespace, Listen: clientIP + ":0"}.String())
	edit := func(t *testing.T, r *Resources, clusters ...*tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight) {
		editAny(t, r.Listeners[echo].FilterChains[0].Filters[0].GetTypedConfig(), &tcpproxyv3.TcpProxy{}, func(p *tcpproxyv3.TcpProxy) {
			p.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpproxyv3.TcpProxy_WeightedCluster{Clusters: clusters}}
		})
	}
	r := fullConfig(t)
	edit(t, r, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: echoCluster, Weight: 3},
		&tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: "other", Weight: 1})
	rt := New(Options{})
	snap, err := rt.build(r, rt.cur.Load())
	if err != nil {
		t.Fatal(err)
	}
	if p := snap.listeners[echo].tcp; len(p.Weighted) != 2 || p.Weighted[1].Cluster != nil || p.Weighted[0].Weight != 3 {
		t.Errorf("weighted = %+v", p.Weighted)
	}
	r = fullConfig(t)
	edit(t, r, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: echoCluster})
	if _, err := rt.build(r, rt.cur.Load()); err == nil || !strings.Contains(err.Error(), "weighted_clusters.clusters[0].weight: value must be greater than or equal to 1") {
		t.Errorf("err = %v", err)
	}
}

// A client proxy whose web cluster has a dead endpoint beside the live one:
// with retry_on connect-failure every request still succeeds, and the
// retries are counted.
func TestMeshRetriesConnectFailure(t *testing.T) {
	m := newMesh(t)
	ln, err := net.Listen("tcp", serverIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	webCluster := xdsmeta.OutboundCluster(svcWeb.name, svcWeb.namespace)
	res := m.clientResources(t)
	cla := res.Endpoints[webCluster]
	live := cla.Endpoints[0].LbEndpoints[0]
	deadEp := proto.Clone(live).(*endpointv3.LbEndpoint)
	deadEp.GetEndpoint().Address = socketAddr(t, dead)
	cla.Endpoints[0].LbEndpoints = append(cla.Endpoints[0].LbEndpoints, deadEp)
	rc := res.Routes[xdsmeta.OutboundRoute(svcWeb.name, svcWeb.namespace)]
	rc.VirtualHosts[0].Routes[0].GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "connect-failure", NumRetries: wrapperspb.UInt32(2)}
	if err := m.client.Apply(res); err != nil {
		t.Fatal(err)
	}
	c := h1Client(t)
	for i := 0; i < 10; i++ {
		if res, body := get(t, c, "http://"+m.local[svcWeb]+"/"); res.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, res.StatusCode, body)
		}
	}
	if n := metric(t, m, "weft_retries_total", map[string]string{"cluster": webCluster}); n < 1 {
		t.Errorf("weft_retries_total = %v, want some", n)
	}
}
