package translate

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/api/decode"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// authnInput is catalog with the Route and RequestAuth of
// testdata/authn.yaml.
func authnInput(t *testing.T) *Input {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "authn.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode.Documents(data, "authn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := input([]service{{ns: "shop", name: "catalog", protocol: v1alpha1.ProtocolHTTP, port: 8080, workloads: []*meshv1.Workload{
		workload("shop", "catalog", "v1", "127.0.5.1:15006", true),
	}}}, false)
	catalog := ServiceKey{Namespace: "shop", Name: "catalog"}
	in.Routes = map[ServiceKey]*v1alpha1.RouteSpec{catalog: objs[0].Spec.(*v1alpha1.RouteSpec)}
	in.RequestAuths = map[ServiceKey]*v1alpha1.RequestAuthSpec{catalog: objs[1].Spec.(*v1alpha1.RequestAuthSpec)}
	return in
}

// TestAuthnGolden: the RequestAuth becomes the jwt_authn filter first in
// the inbound chain, with a provider per issuer that records its claims,
// the requirements by name, the rules in order (paths, then the Route
// rule's match alternatives) and the final optional catch-all; the remote
// key set's roots ride in the listener's metadata.
func TestAuthnGolden(t *testing.T) {
	r, err := ForNode(authnInput(t), node("shop", "catalog", "127.0.5.1:15006"))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, r, "authn.golden")
}

// TestAuthnReachesOnlyItsService: a RequestAuth changes the listeners of
// its own service's proxies and nothing of a caller's, and nothing at all
// for a tcp service.
func TestAuthnReachesOnlyItsService(t *testing.T) {
	catalog := ServiceKey{Namespace: "shop", Name: "catalog"}
	tcp := func(in *Input) *Input {
		in.Services[catalog] = &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "db", Port: 5432, Protocol: v1alpha1.ProtocolTCP}}}
		return in
	}
	for _, tc := range []struct {
		name    string
		node    xdsmeta.Node
		input   func(*Input) *Input
		changed bool
	}{
		{name: "catalog", node: node("shop", "catalog", "127.0.5.1:15006"), changed: true},
		{name: "web", node: node("shop", "web", "127.0.5.9:15006", "catalog=127.0.0.1:9001")},
		{name: "tcp catalog", node: node("shop", "catalog", "127.0.5.1:15006"), input: tcp},
	} {
		with, without := authnInput(t), authnInput(t)
		without.RequestAuths = nil
		if tc.input != nil {
			with, without = tc.input(with), tc.input(without)
		}
		a, err := ForNode(with, tc.node)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ForNode(without, tc.node)
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
	in := authnInput(t)
	if !in.RequestAuthReadsRoute(catalog) {
		t.Error("RequestAuthReadsRoute = false for a RequestAuth naming a Route rule")
	}
	in.RequestAuths[catalog].Rules = in.RequestAuths[catalog].Rules[:2]
	if in.RequestAuthReadsRoute(catalog) {
		t.Error("RequestAuthReadsRoute = true for a RequestAuth naming no Route rule")
	}
}

// TestAuthnMissingRouteRule: a rule naming a Route rule that is gone
// requires a token on every request when it requires one (fail closed),
// and matches nothing more when it does not.
func TestAuthnMissingRouteRule(t *testing.T) {
	route := &v1alpha1.RouteSpec{Service: "catalog", Rules: []v1alpha1.RouteRule{{Name: "other"}}}
	for _, tc := range []struct {
		require bool
		want    int // matches, each of every request
	}{
		{require: true, want: 1},
		{require: false, want: 0},
	} {
		got := jwtRuleMatches(&v1alpha1.RequestAuthRule{RouteRules: []string{"checkout"}, Require: tc.require}, route)
		if len(got) != tc.want || (len(got) == 1 && got[0].GetPrefix() != "/") {
			t.Errorf("require %v: matches %v, want %d of every request", tc.require, got, tc.want)
		}
	}
}

// TestJWKSTimeoutAlwaysSet: Envoy requires a remote key set's
// http_uri.timeout; an issuer that sets none gets the API's default.
func TestJWKSTimeoutAlwaysSet(t *testing.T) {
	for _, tc := range []struct {
		set  *v1alpha1.Duration
		want time.Duration
	}{
		{nil, v1alpha1.DefaultJWKSTimeout},
		{&v1alpha1.Duration{Duration: 2 * time.Second}, 2 * time.Second},
	} {
		p := jwtProvider(&v1alpha1.JWTIssuer{Issuer: "https://issuer.example", JWKSURI: "https://issuer.example/jwks", JWKSTimeout: tc.set})
		uri := p.GetRemoteJwks().GetHttpUri()
		if got := uri.GetTimeout().AsDuration(); uri.GetTimeout() == nil || got != tc.want {
			t.Errorf("timeout %v (set %v), want %v", uri.GetTimeout(), tc.set, tc.want)
		}
		if err := p.ValidateAll(); err != nil {
			t.Error(err)
		}
	}
}
