package v1alpha1

import (
	"testing"
)

func TestTrafficKinds(t *testing.T) {
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
	for _, want := range []string{"DestinationPolicy", "Mesh", "Route", "Service"} {
		if _, ok := kindByName(want); !ok {
			t.Errorf("kind %s is not registered", want)
		}
	}
	r := &Object{Kind: "Route", Metadata: ObjectMeta{Name: "catalog"}}
	if got, want := r.Ref(), "Route default/catalog"; got != want {
		t.Errorf("Ref() = %q, want %q", got, want)
	}
}
