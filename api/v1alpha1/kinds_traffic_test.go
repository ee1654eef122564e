package v1alpha1

import (
	"maps"
	"sync"
	"testing"
)

// withTrafficKinds registers the traffic kinds for one test and, when they
// were not registered before, restores the registry after it, so that the
// tests of the registry keep seeing only the kinds that init registers,
// whatever order the tests run in and however often.
func withTrafficKinds(tb testing.TB) {
	tb.Helper()
	if _, ok := kindsByName[RouteKind.Name]; ok {
		return
	}
	byName, names := maps.Clone(kindsByName), maps.Clone(kindNames)
	RegisterTrafficKinds()
	tb.Cleanup(func() {
		kindsByName, kindNames = byName, names
		trafficKinds = sync.Once{}
	})
}

func TestRegisterTrafficKinds(t *testing.T) {
	withTrafficKinds(t)
	RegisterTrafficKinds() // a second call does nothing, rather than panic
	tests := []struct{ name, want string }{
		{name: "Route", want: "Route"},
		{name: "routes", want: "Route"},
		{name: "DestinationPolicy", want: "DestinationPolicy"},
		{name: "destinationpolicies", want: "DestinationPolicy"},
		{name: "dp", want: "DestinationPolicy"},
	}
	for _, tt := range tests {
		if k, ok := Lookup(tt.name); !ok || k.Name != tt.want || !k.Namespaced {
			t.Errorf("Lookup(%q) = %+v, %v; want the namespaced kind %s", tt.name, k, ok, tt.want)
		}
	}
	if got, want := kindList(), "DestinationPolicy, Mesh, Route, Service"; got != want {
		t.Errorf("kinds = %s, want %s", got, want)
	}
	r := &Object{Kind: "Route", Metadata: ObjectMeta{Name: "catalog"}}
	if got, want := r.Ref(), "Route default/catalog"; got != want {
		t.Errorf("Ref() = %q, want %q", got, want)
	}
}

func TestWithTrafficKindsRestores(t *testing.T) {
	t.Run("register", func(t *testing.T) { withTrafficKinds(t) })
	if _, ok := Lookup("Route"); ok {
		t.Fatal("Route is still registered after the test that registered it")
	}
	t.Run("again", func(t *testing.T) {
		withTrafficKinds(t)
		if _, ok := Lookup("dp"); !ok {
			t.Error("DestinationPolicy is not registered the second time")
		}
	})
}
