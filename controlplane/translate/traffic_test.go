package translate

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/api/decode"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// trafficServices are the services of the "traffic" case, with the Routes
// and DestinationPolicies of testdata/traffic.yaml.
func trafficServices() []service {
	data, err := os.ReadFile(filepath.Join("testdata", "traffic.yaml"))
	if err != nil {
		panic(err)
	}
	objs, err := decode.Documents(data, "traffic.yaml")
	if err != nil {
		panic(err)
	}
	svcs := []service{
		{ns: "shop", name: "web", protocol: v1alpha1.ProtocolHTTP, port: 80, workloads: []*meshv1.Workload{
			workload("shop", "web", "v1", "127.0.4.1:15006", true),
		}},
		{ns: "shop", name: "catalog", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
			workload("shop", "catalog", "v1", "127.0.4.2:15006", true),
			workload("shop", "catalog", "v2", "127.0.4.3:15006", true),
			workload("shop", "catalog", "v2", "127.0.4.4:15006", false),
		}},
		{ns: "shop", name: "catalog-next", protocol: v1alpha1.ProtocolGRPC, port: 8080, workloads: []*meshv1.Workload{
			workload("shop", "catalog-next", "v3", "127.0.4.5:15006", true),
		}},
		{ns: "shop", name: "search", workloads: []*meshv1.Workload{
			workload("shop", "search", "v1", "127.0.4.6:15006", true),
		}},
		{ns: "shop", name: "db", protocol: v1alpha1.ProtocolTCP, port: 5432, workloads: []*meshv1.Workload{
			workload("shop", "db", "15", "127.0.4.7:15006", true),
		}},
		{ns: "shop", name: "db-next", protocol: v1alpha1.ProtocolTCP, port: 5432, workloads: []*meshv1.Workload{
			workload("shop", "db-next", "16", "127.0.4.8:15006", true),
		}},
	}
	find := func(name string) *service {
		for i := range svcs {
			if svcs[i].name == name {
				return &svcs[i]
			}
		}
		panic("no service " + name)
	}
	for _, o := range objs {
		switch spec := o.Spec.(type) {
		case *v1alpha1.RouteSpec:
			find(spec.Service).route = spec
		case *v1alpha1.DestinationPolicySpec:
			find(o.Metadata.Name).policy = spec
		}
	}
	return svcs
}

// TestTrafficReachesOnlyCallers checks that a proxy calling neither catalog
// nor what its Route names gets nothing of them, and that a Route change
// changes the routes and the budgeted clusters of a caller and nothing else.
func TestTrafficReachesOnlyCallers(t *testing.T) {
	svcs := trafficServices()
	other := node("shop", "db-next", "127.0.4.8:15006", "search=127.0.0.1:9005")
	in := input(svcs, false)
	r, err := ForNode(in, other)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Clusters {
		if name := resourceName(c); name != "inbound|db-next.shop" && name != "outbound|search.shop" {
			t.Errorf("a proxy calling search only got cluster %q", name)
		}
	}

	caller := node("shop", "web", "127.0.4.1:15006", "catalog=127.0.0.1:9001")
	before, err := ForNode(in, caller)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"outbound|catalog.shop|v1", "outbound|catalog.shop|v2", "outbound|catalog-next.shop"} {
		found := false
		for _, c := range before.Endpoints {
			found = found || resourceName(c) == want
		}
		if !found {
			t.Errorf("a caller of catalog has no load assignment %q", want)
		}
	}
	// Drop the timeout of the last rule: the route changes, nothing else.
	in2 := input(svcs, false)
	route := *in2.Routes[ServiceKey{"shop", "catalog"}]
	route.Rules = append([]v1alpha1.RouteRule(nil), route.Rules...)
	route.Rules[2].Timeout = nil
	in2.Routes[ServiceKey{"shop", "catalog"}] = &route
	after, err := ForNode(in2, caller)
	if err != nil {
		t.Fatal(err)
	}
	for typeURL := range before.ByType() {
		changed := before.Version(typeURL) != after.Version(typeURL)
		if want := typeURL == resource.RouteType; changed != want {
			t.Errorf("%s: version changed = %v, want %v", typeURL, changed, want)
		}
	}
	// Without faults, the listeners are those of a mesh without Routes.
	noFault := input(svcs, false)
	for k, r := range noFault.Routes {
		rr := *r
		rr.Rules = append([]v1alpha1.RouteRule(nil), r.Rules...)
		for i := range rr.Rules {
			rr.Rules[i].Fault = nil
		}
		noFault.Routes[k] = &rr
	}
	plain := input(svcs, false)
	plain.Routes, plain.Policies = nil, nil
	a, err := ForNode(noFault, caller)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ForNode(plain, caller)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version(resource.ListenerType) != b.Version(resource.ListenerType) {
		t.Error("routes without faults changed the listeners")
	}
	if before.Version(resource.ListenerType) == b.Version(resource.ListenerType) {
		t.Error("a route with a fault did not add the fault filter")
	}
}

// TestCacheMatchesForNodeTraffic follows one cache through changes of the
// Routes and DestinationPolicies the shared resources depend on, made in
// place as a careless caller might: the cache must compare content.
func TestCacheMatchesForNodeTraffic(t *testing.T) {
	var tc testCase
	for _, c := range cases() {
		if c.name == "traffic" {
			tc = c
		}
	}
	c := NewCache()
	catalog, next := ServiceKey{"shop", "catalog"}, ServiceKey{"shop", "catalog-next"}
	in := input(tc.svcs, false)
	checkSame(t, c, in, tc)
	for _, step := range []struct {
		name   string
		change func(*Input)
	}{
		{"a rule's timeout", func(in *Input) { in.Routes[catalog].Rules[2].Timeout.Duration *= 2 }},
		{"a retry budget", func(in *Input) { in.Routes[catalog].Rules[2].Retries.Budget.Percent = 50 }},
		{"a backend weight", func(in *Input) { *in.Routes[catalog].Rules[2].Backends[1].Weight = 50 }},
		{"a subset's labels", func(in *Input) { in.Policies[catalog].Subsets[1].Labels["version"] = "v1" }},
		{"a subset workload's label", func(in *Input) { in.Workloads[catalog][0].Labels["version"] = "v2" }},
		{"the balancer", func(in *Input) { in.Policies[catalog].LoadBalancer.RingHash.Cookie.Name = "other" }},
		{"a target's policy", func(in *Input) { in.Policies[next].LoadBalancer.LeastRequest.ChoiceCount = 5 }},
		{"a target's policy goes", func(in *Input) { delete(in.Policies, next) }},
		{"the Route goes", func(in *Input) { delete(in.Routes, catalog) }},
		{"the policy goes", func(in *Input) { delete(in.Policies, catalog) }},
	} {
		step.change(in)
		t.Run(step.name, func(t *testing.T) { checkSame(t, c, in, tc) })
	}
}

// TestRetriesKeptToIdempotentMethods checks how a rule with retries becomes
// Envoy routes: split on the method unless retryNonIdempotent, and for a
// match that names a method, retried only when it is idempotent.
func TestRetriesKeptToIdempotentMethods(t *testing.T) {
	const all, onlyConnect = "connect-failure,reset,gateway-error", "connect-failure"
	key := ServiceKey{"shop", "catalog"}
	for _, tc := range []struct {
		name        string
		method      string
		nonIdem     bool
		wantRetries []string // retry_on per Envoy route of the rule
	}{
		// Non-idempotent requests are retried only when no backend was
		// reached (connect-failure, in the default retryOn).
		{"no method", "", false, []string{all, onlyConnect}},
		{"idempotent method", "PUT", false, []string{all}},
		{"non-idempotent method", "POST", false, []string{onlyConnect}},
		{"retryNonIdempotent", "", true, []string{all}},
		{"retryNonIdempotent with POST", "POST", true, []string{all}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &v1alpha1.RouteSpec{Service: "catalog", Rules: []v1alpha1.RouteRule{{
				Match:    []v1alpha1.RouteMatch{{Method: tc.method, Path: &v1alpha1.PathMatch{Prefix: "/api"}}},
				Backends: []v1alpha1.Backend{{}},
				Retries:  &v1alpha1.RetryPolicy{Attempts: 3, RetryNonIdempotent: tc.nonIdem},
			}}}
			spec.Default()
			in := input(nil, false)
			in.Routes = map[ServiceKey]*v1alpha1.RouteSpec{key: spec}
			tr := &translation{in: in}
			routes := tr.serviceRoutes(key)
			if len(routes) != len(tc.wantRetries)+1 {
				t.Fatalf("%d routes, want %d and the catch-all", len(routes), len(tc.wantRetries))
			}
			for i, want := range tc.wantRetries {
				r := routes[i]
				if got := r.GetRoute().GetRetryPolicy().GetRetryOn(); got != want {
					t.Errorf("route %d: retry_on = %q, want %q", i, got, want)
				}
				if r.GetMatch().GetPathSeparatedPrefix() != "/api" {
					t.Errorf("route %d: match %v lost the path", i, r.GetMatch())
				}
				split := false
				for _, h := range r.GetMatch().GetHeaders() {
					split = split || h.GetStringMatch().GetSafeRegex().GetRegex() == "GET|HEAD|OPTIONS|PUT|DELETE|TRACE"
				}
				if wantSplit := len(tc.wantRetries) == 2 && i == 0; split != wantSplit {
					t.Errorf("route %d: idempotent-method condition = %v, want %v", i, split, wantSplit)
				}
			}
			if c := routes[len(routes)-1].GetRoute().GetCluster(); c != "outbound|catalog.shop" {
				t.Errorf("catch-all goes to %q", c)
			}
		})
	}
}

// TestTCPRouteLeavesOutZeroWeights: Envoy's TcpProxy refuses weights below
// 1, so a backend at weight 0 is left out of the split (or the split is one
// cluster when one backend is left).
func TestTCPRouteLeavesOutZeroWeights(t *testing.T) {
	key := ServiceKey{"shop", "db"}
	weight := func(w int32) *int32 { return &w }
	for _, tc := range []struct {
		name     string
		backends []v1alpha1.Backend
		want     []string // the weighted clusters, or the one cluster
	}{
		{"split", []v1alpha1.Backend{{Weight: weight(90)}, {Service: "db-next", Weight: weight(10)}},
			[]string{"outbound|db.shop", "outbound|db-next.shop"}},
		{"finished canary", []v1alpha1.Backend{{Weight: weight(0)}, {Service: "db-next", Weight: weight(100)}},
			[]string{"outbound|db-next.shop"}},
		{"three, one at 0", []v1alpha1.Backend{{Weight: weight(1)}, {Service: "db-next", Weight: weight(0)}, {Service: "db-old", Weight: weight(1)}},
			[]string{"outbound|db.shop", "outbound|db-old.shop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := input(nil, false)
			in.Routes = map[ServiceKey]*v1alpha1.RouteSpec{key: {Service: "db", Rules: []v1alpha1.RouteRule{{Backends: tc.backends}}}}
			tp := (&translation{in: in}).tcpRouteProxy("db", key)
			var got []string
			if c := tp.GetCluster(); c != "" {
				got = append(got, c)
			}
			for _, c := range tp.GetWeightedClusters().GetClusters() {
				if c.GetWeight() < 1 {
					t.Errorf("%s has weight %d", c.GetName(), c.GetWeight())
				}
				got = append(got, c.GetName())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("clusters %v, want %v", got, tc.want)
			}
			if err := tp.ValidateAll(); err != nil {
				t.Error(err)
			}
		})
	}
}
