package translate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/api/decode"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// rateLimitInput is catalog with the Route and RateLimit of
// testdata/ratelimit.yaml.
func rateLimitInput(t *testing.T) *Input {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "ratelimit.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode.Documents(data, "ratelimit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := input([]service{{ns: "shop", name: "catalog", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
		workload("shop", "catalog", "v1", "127.0.5.1:15006", true),
	}}}, false)
	catalog := ServiceKey{Namespace: "shop", Name: "catalog"}
	in.Routes = map[ServiceKey]*v1alpha1.RouteSpec{catalog: objs[0].Spec.(*v1alpha1.RouteSpec)}
	in.RateLimits = map[ServiceKey]*v1alpha1.RateLimitSpec{catalog: objs[1].Spec.(*v1alpha1.RateLimitSpec)}
	return in
}

// TestRateLimitGolden: the limits become inbound routes, in order, each
// with the per-route config of the filters it uses, and the two filters
// come before the router; a limit whose Route rule is missing counts
// nothing, and the last limit, which takes every request, replaces the
// catch-all.
func TestRateLimitGolden(t *testing.T) {
	r, err := ForNode(rateLimitInput(t), node("shop", "catalog", "127.0.5.1:15006"))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, r, "ratelimit.golden")
}

// TestRateLimitReachesOnlyItsService: a RateLimit changes the listeners of
// its own service's proxies and nothing of a caller's.
func TestRateLimitReachesOnlyItsService(t *testing.T) {
	with := rateLimitInput(t)
	without := rateLimitInput(t)
	without.RateLimits = nil
	for _, tc := range []struct {
		name    string
		changed bool
	}{
		{name: "catalog", changed: true},
		{name: "web"},
	} {
		n := node("shop", tc.name, "127.0.5.9:15006", "catalog=127.0.0.1:9001")
		if tc.name == "catalog" {
			n = node("shop", "catalog", "127.0.5.1:15006")
		}
		a, err := ForNode(with, n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ForNode(without, n)
		if err != nil {
			t.Fatal(err)
		}
		for typeURL := range a.ByType() {
			changed := a.Version(typeURL) != b.Version(typeURL)
			if want := tc.changed && typeURL == resource.ListenerType; changed != want {
				t.Errorf("%s: %s version changed = %v, want %v", tc.name, typeURL, changed, want)
			}
		}
	}
	if !with.RateLimitReadsRoute(ServiceKey{Namespace: "shop", Name: "catalog"}) {
		t.Error("RateLimitReadsRoute = false for a RateLimit naming a Route rule")
	}
}

// TestRateLimitTCPService: a tcp service has no HTTP filters to limit with.
func TestRateLimitTCPService(t *testing.T) {
	in := rateLimitInput(t)
	in.Services[ServiceKey{Namespace: "shop", Name: "catalog"}] = &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "db", Port: 5432, Protocol: v1alpha1.ProtocolTCP}}}
	plain := rateLimitInput(t)
	plain.Services = in.Services
	plain.RateLimits = nil
	n := node("shop", "catalog", "127.0.5.1:15006")
	a, err := ForNode(in, n)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ForNode(plain, n)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version(resource.ListenerType) != b.Version(resource.ListenerType) {
		t.Error("a tcp service's RateLimit changed its listeners")
	}
}
