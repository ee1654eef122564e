package meshstate_test

import (
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/translate"
)

func accessPolicy(namespace, name, svc string) *v1alpha1.Object {
	return &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.AccessPolicyKind.Name,
		Metadata: v1alpha1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:     &v1alpha1.AccessPolicySpec{Service: svc, Rules: []v1alpha1.AccessRule{{}}},
	}
}

func accessNames(ps []translate.AccessPolicy) []string {
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return names
}

// TestWatcherReadsAccessPolicies: AccessPolicies reach the Input under the
// service they guard, in name order, defaulted, with their revision; one
// that moves to another service leaves the first, and a deleted one goes.
func TestWatcherReadsAccessPolicies(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	w := startWatcher(t, st, nil)
	catalog := translate.ServiceKey{Namespace: "shop", Name: "catalog"}
	search := translate.ServiceKey{Namespace: "shop", Name: "search"}
	w.waitFor(t, "the initial load", func(*translate.Input) bool { return true })

	if _, err := st.Apply(ctx, []*v1alpha1.Object{
		service("shop", "catalog", 8080), service("shop", "search", 8080),
		accessPolicy("shop", "b", "catalog"), accessPolicy("shop", "a", "catalog"),
	}); err != nil {
		t.Fatal(err)
	}
	in := w.waitFor(t, "two policies of catalog", func(in *translate.Input) bool { return len(in.AccessPolicies[catalog]) == 2 })
	if got := accessNames(in.AccessPolicies[catalog]); got[0] != "a" || got[1] != "b" {
		t.Errorf("policies of catalog = %v, want [a b]", got)
	}
	if p := in.AccessPolicies[catalog][0]; p.Spec.Action != v1alpha1.AccessAllow || p.Revision == 0 {
		t.Errorf("policy a = %+v, want ALLOW (defaulted) and a revision", p)
	}

	if _, err := st.Apply(ctx, []*v1alpha1.Object{accessPolicy("shop", "a", "search")}); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "a moves to search", func(in *translate.Input) bool {
		return len(in.AccessPolicies[catalog]) == 1 && in.AccessPolicies[catalog][0].Name == "b" && len(in.AccessPolicies[search]) == 1
	})
	if err := st.Delete(ctx, v1alpha1.AccessPolicyKind.Name, "shop", "b"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "b is deleted", func(in *translate.Input) bool {
		_, has := in.AccessPolicies[catalog]
		return !has && len(in.AccessPolicies[search]) == 1
	})
}
