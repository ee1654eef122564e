package meshstate_test

import (
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/translate"
)

func route(namespace, name, svc, subset string) *v1alpha1.Object {
	return &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.RouteKind.Name,
		Metadata: v1alpha1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: &v1alpha1.RouteSpec{Service: svc, Rules: []v1alpha1.RouteRule{{
			Backends: []v1alpha1.Backend{{Subset: subset}},
		}}},
	}
}

func policy(namespace, svc string, subsets ...string) *v1alpha1.Object {
	spec := &v1alpha1.DestinationPolicySpec{}
	for _, s := range subsets {
		spec.Subsets = append(spec.Subsets, v1alpha1.Subset{Name: s, Labels: map[string]string{"version": s}})
	}
	return &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.DestinationPolicyKind.Name,
		Metadata: v1alpha1.ObjectMeta{Namespace: namespace, Name: svc}, Spec: spec,
	}
}

// TestWatcherReadsTraffic checks that Routes, keyed by the service they
// govern, and DestinationPolicies, keyed by their name, reach the Input,
// defaulted, and leave it when deleted.
func TestWatcherReadsTraffic(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	w := startWatcher(t, st, nil)
	catalog := translate.ServiceKey{Namespace: "shop", Name: "catalog"}
	w.waitFor(t, "the initial load", func(*translate.Input) bool { return true })

	if _, err := st.Apply(ctx, []*v1alpha1.Object{
		service("shop", "catalog", 8080), policy("shop", "catalog", "v1", "v2"), route("shop", "canary", "catalog", "v2"),
	}); err != nil {
		t.Fatal(err)
	}
	in := w.waitFor(t, "the Route and the DestinationPolicy", func(in *translate.Input) bool {
		return in.Routes[catalog] != nil && in.Policies[catalog] != nil
	})
	r := in.Routes[catalog]
	if b := r.Rules[0].Backends[0]; b.Service != "catalog" || b.Subset != "v2" || b.Weight == nil || *b.Weight != 1 {
		t.Errorf("Route backend %+v, want catalog v2 weight 1 (defaulted)", b)
	}
	if p := in.Policies[catalog]; len(p.Subsets) != 2 || p.LoadBalancer.Type != v1alpha1.LoadBalancerRoundRobin {
		t.Errorf("DestinationPolicy %+v, want two subsets and round robin (defaulted)", p)
	}

	// A second Route of catalog, named after the first, does not govern it;
	// once the first goes, it does.
	if _, err := st.Apply(ctx, []*v1alpha1.Object{route("shop", "zz-other", "catalog", "v1")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, v1alpha1.RouteKind.Name, "shop", "canary"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "the second Route", func(in *translate.Input) bool {
		r := in.Routes[catalog]
		return r != nil && r.Rules[0].Backends[0].Subset == "v1"
	})
	if err := st.Delete(ctx, v1alpha1.RouteKind.Name, "shop", "zz-other"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, v1alpha1.DestinationPolicyKind.Name, "shop", "catalog"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "no Route and no DestinationPolicy", func(in *translate.Input) bool {
		return len(in.Routes) == 0 && len(in.Policies) == 0
	})
	w.checkImmutable(t)
}
