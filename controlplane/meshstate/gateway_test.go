package meshstate_test

import (
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/translate"
)

// TestWatcherReadsGateways checks that Gateways reach the Input, that a
// Route with gateways goes to GatewayRoutes and leaves its service's mesh
// Route alone, and that turning it back into a mesh Route moves it.
func TestWatcherReadsGateways(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	w := startWatcher(t, st, nil)
	w.waitFor(t, "the initial load", func(*translate.Input) bool { return true })
	catalog := translate.ServiceKey{Namespace: "shop", Name: "catalog"}
	gwKey := translate.ServiceKey{Namespace: "shop", Name: "public"}
	rk := translate.ServiceKey{Namespace: "shop", Name: "edge"}

	gw := &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.GatewayKind.Name,
		Metadata: v1alpha1.ObjectMeta{Namespace: "shop", Name: "public"},
		Spec: &v1alpha1.GatewaySpec{Service: "ingress", Listeners: []v1alpha1.GatewayListener{
			{Name: "http", Port: 8080, Protocol: v1alpha1.GatewayHTTP},
		}},
	}
	edge := route("shop", "edge", "catalog", "")
	edge.Spec.(*v1alpha1.RouteSpec).Gateways = []string{"public"}
	edge.Spec.(*v1alpha1.RouteSpec).Hosts = []string{"shop.example.test"}
	if _, err := st.Apply(ctx, []*v1alpha1.Object{service("shop", "catalog", 8080), gw, edge}); err != nil {
		t.Fatal(err)
	}
	in := w.waitFor(t, "the Gateway and its Route", func(in *translate.Input) bool {
		return in.Gateways[gwKey] != nil && in.GatewayRoutes[rk] != nil
	})
	if in.Routes[catalog] != nil {
		t.Error("a gateway Route governs its service's mesh traffic")
	}
	if h := in.Gateways[gwKey].Listeners[0].Hosts; len(h) != 1 || h[0] != "*" {
		t.Errorf("Gateway listener hosts %q, want [*] (defaulted)", h)
	}

	if _, err := st.Apply(ctx, []*v1alpha1.Object{route("shop", "edge", "catalog", "")}); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "the Route back in the mesh", func(in *translate.Input) bool {
		return in.Routes[catalog] != nil && in.GatewayRoutes[rk] == nil
	})
	if err := st.Delete(ctx, v1alpha1.GatewayKind.Name, "shop", "public"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "the Gateway gone", func(in *translate.Input) bool { return in.Gateways[gwKey] == nil })
}
