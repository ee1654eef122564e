package translate

import (
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/weftmesh/weft/api/xdsmeta"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func proxylessNode(ns, svc, serve string) xdsmeta.Node {
	return xdsmeta.Node{
		ID: xdsmeta.ProxylessNodeID(svc, ns, serve), Service: svc, Namespace: ns, Inbound: serve, Proxyless: true,
	}
}

// TestProxylessGolden: a proxyless client of the traffic case (every Route
// and DestinationPolicy feature) and a proxyless server with the authz
// case's AccessPolicies.
func TestProxylessGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *Input
		node xdsmeta.Node
	}{
		{"proxyless-client", input(trafficServices(), false), proxylessNode("shop", "web", "")},
		{"proxyless-server", authzInput(t), proxylessNode("shop", "catalog", "127.0.6.1:50051")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ForNode(tc.in, tc.node)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, r, tc.name+".golden")
		})
	}
}

// TestProxylessOnlyWhatGRPCSupports: nothing a proxyless node receives uses
// a field gRPC refuses or silently ignores (gRFCs A27-A44).
func TestProxylessOnlyWhatGRPCSupports(t *testing.T) {
	forbidden := []string{
		`"tlsCertificateSdsSecretConfigs"`, `"validationContextSdsSecretConfig"`, `"matchTypedSubjectAltNames"`,
		`"pathSeparatedPrefix"`, `"queryParameters"`, `"requestMirrorPolicies"`, `"healthChecks"`,
		`"RANDOM"`, `"typedExtensionProtocolOptions"`, `"cookie"`, `"connectionProperties"`,
		`"perTryTimeout"`, `"retriableStatusCodes"`, `"requestHeadersToAdd"`, `"responseHeadersToAdd"`,
		`"upgradeConfigs"`, `"accessLog"`, `"tracing"`, `"5xx"`, `"gateway-error"`,
	}
	for _, tc := range []struct {
		name string
		in   *Input
		node xdsmeta.Node
	}{
		{"traffic client", input(trafficServices(), false), proxylessNode("shop", "web", "")},
		{"authz server", authzInput(t), proxylessNode("shop", "catalog", "127.0.6.1:50051")},
	} {
		r, err := ForNode(tc.in, tc.node)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Secrets) != 0 {
			t.Errorf("%s: got %d secrets; a proxyless node reads certificates from files", tc.name, len(r.Secrets))
		}
		for _, items := range r.ByType() {
			for _, res := range items {
				js := string(canonicalJSON(t, res))
				check := forbidden
				if _, ok := res.(*routev3.RouteConfiguration); ok {
					// gRPC routes do not match pseudo-headers; its RBAC reads
					// :method as POST (A41), so policies may name it.
					check = append(check, `":method"`)
				}
				for _, f := range check {
					if strings.Contains(js, f) {
						t.Errorf("%s: %s %q holds %s", tc.name, strings.TrimPrefix(string(res.ProtoReflect().Descriptor().FullName()), "envoy.config."), resourceName(res), f)
					}
				}
			}
		}
	}
}

// TestProxylessListenerNames: a target names a service as "svc.ns" or, in
// the node's namespace, "svc"; a server's listener is named by its address.
func TestProxylessListenerNames(t *testing.T) {
	r, err := ForNode(input(trafficServices(), false), proxylessNode("shop", "web", "127.0.4.9:50051"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range r.Listeners {
		got = append(got, resourceName(l))
	}
	want := []string{
		"catalog", "catalog-next", "catalog-next.shop", "catalog.shop", "grpc/server?xds.resource.listening_address=127.0.4.9:50051",
		"search", "search.shop", "web", "web.shop",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	other, err := ForNode(input(trafficServices(), false), proxylessNode("other", "web", ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range other.Listeners {
		if !strings.HasSuffix(resourceName(l), ".shop") {
			t.Errorf("a node of namespace other got listener %q; want only qualified names", resourceName(l))
		}
	}
}

func TestProxylessRoutes(t *testing.T) {
	exactMethod := func(m string) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact(m)}}
	}
	idempotent := &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: regex(idempotentMethodRegex)}}
	header := &routev3.HeaderMatcher{Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("yes")}}
	toCluster := func(a *routev3.RouteAction) *routev3.Route_Route {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "c"}
		return &routev3.Route_Route{Route: a}
	}
	for _, tc := range []struct {
		name     string
		in, want []*routev3.Route
	}{{
		name: "segment prefix becomes exact path and prefix with slash",
		in: []*routev3.Route{{Name: "r", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/pkg.Svc"}},
			Action: toCluster(&routev3.RouteAction{})}},
		want: []*routev3.Route{
			{Name: "r", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/pkg.Svc"}}, Action: toCluster(&routev3.RouteAction{})},
			{Name: "r", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/pkg.Svc/"}}, Action: toCluster(&routev3.RouteAction{})},
		},
	}, {
		name: "methods are decided against POST",
		in: []*routev3.Route{
			{Name: "get", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{exactMethod("GET")}}, Action: toCluster(&routev3.RouteAction{})},
			{Name: "retry", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{header, idempotent}}, Action: toCluster(&routev3.RouteAction{})},
			{Name: "post", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{exactMethod("POST"), header}}, Action: toCluster(&routev3.RouteAction{})},
		},
		want: []*routev3.Route{
			{Name: "post", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{header}}, Action: toCluster(&routev3.RouteAction{})},
		},
	}, {
		name: "query matches never match a call",
		in: []*routev3.Route{{Name: "q", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			QueryParameters: []*routev3.QueryParameterMatcher{{Name: "debug"}}}, Action: toCluster(&routev3.RouteAction{})}},
		want: []*routev3.Route{},
	}, {
		name: "timeout, retries, hash and mirror",
		in: []*routev3.Route{{Name: "t", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: toCluster(&routev3.RouteAction{
				Timeout: durationpb.New(3 * time.Second),
				RetryPolicy: &routev3.RetryPolicy{
					RetryOn: "gateway-error,unavailable,retriable-status-codes", NumRetries: wrapperspb.UInt32(2),
					PerTryTimeout: durationpb.New(time.Second), RetriableStatusCodes: []uint32{409},
					RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(50 * time.Millisecond), MaxInterval: durationpb.New(0)},
				},
				HashPolicy: []*routev3.RouteAction_HashPolicy{
					{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "s"}}},
					{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}},
				},
				RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "m"}},
			}),
			RequestHeadersToRemove: []string{"x-debug"},
		}},
		want: []*routev3.Route{{Name: "t", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: toCluster(&routev3.RouteAction{
				MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(3 * time.Second)},
				RetryPolicy: &routev3.RetryPolicy{
					RetryOn: "unavailable", NumRetries: wrapperspb.UInt32(2),
					RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(50 * time.Millisecond)},
				},
				HashPolicy: []*routev3.RouteAction_HashPolicy{
					{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}},
				},
			}),
		}},
	}, {
		name: "a disabled timeout and HTTP-only retries disappear",
		in: []*routev3.Route{{Name: "d", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: toCluster(&routev3.RouteAction{Timeout: durationpb.New(0), RetryPolicy: &routev3.RetryPolicy{RetryOn: "connect-failure", NumRetries: wrapperspb.UInt32(1)}})}},
		want: []*routev3.Route{{Name: "d", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: toCluster(&routev3.RouteAction{})}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := proxylessRoutes(tc.in)
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
