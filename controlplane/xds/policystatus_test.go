package xds

import (
	"slices"
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
)

func TestPolicyStatusOf(t *testing.T) {
	catalog := xdsmeta.Node{Service: "catalog", Namespace: "shop", Inbound: "127.0.0.1:15006"}
	caller := xdsmeta.Node{Service: "web", Namespace: "shop", Inbound: "127.0.0.2:15006",
		Upstreams: []xdsmeta.Upstream{{Service: "catalog", Namespace: "shop"}}}
	views := []policyView{
		{meta: catalog, listeners: "l2", acked: "l2", carries: true},
		{meta: catalog, listeners: "l2", acked: "l1", carries: true},                                    // pending
		{meta: catalog, listeners: "l2", acked: "l2", carries: false},                                   // pushed before the policy
		{meta: catalog, listeners: "l2", acked: "l1", carries: true, nack: "l2", nackMessage: "bad"},    // rejected now
		{meta: catalog, listeners: "l3", acked: "l1", carries: true, nack: "l2", nackMessage: "before"}, // an older rejection
		{meta: caller, listeners: "l2", acked: "l2", carries: true},                                     // does not enforce it
	}
	want, applied, nacks := policyStatusOf("shop", "catalog", views)
	if want != 5 || applied != 1 || !slices.Equal(nacks, []string{"bad"}) {
		t.Errorf("policyStatusOf = %d, %d, %q; want 5, 1, [bad]", want, applied, nacks)
	}
}

func TestAccessPolicyRevision(t *testing.T) {
	in := &translate.Input{AccessPolicies: map[translate.ServiceKey][]translate.AccessPolicy{
		{Namespace: "shop", Name: "catalog"}: {{Name: "a", Revision: 7}, {Name: "b", Revision: 9}},
	}}
	f := policyRevisions[v1alpha1.AccessPolicyKind.Name]
	if rev, ok := f(in, "shop", "b", "catalog"); !ok || rev != 9 {
		t.Errorf("b: %d %v", rev, ok)
	}
	if _, ok := f(in, "shop", "b", "search"); ok {
		t.Error("b found under another service")
	}
}

// TestAccessPolicyChangeReachesItsService: diffInputs sends a change of a
// service's AccessPolicies to that service's proxies only.
func TestAccessPolicyChangeReachesItsService(t *testing.T) {
	key := translate.ServiceKey{Namespace: "shop", Name: "catalog"}
	a := &translate.Input{TrustDomain: "weft.local", AccessPolicies: map[translate.ServiceKey][]translate.AccessPolicy{
		key: {{Name: "a", Revision: 1}},
	}}
	b := *a
	b.AccessPolicies = map[translate.ServiceKey][]translate.AccessPolicy{key: {{Name: "a", Revision: 2}}}
	c := diffInputs(a, &b)
	if !c.affect(xdsmeta.Node{Service: "catalog", Namespace: "shop", Inbound: "127.0.0.1:1"}) {
		t.Error("catalog's proxy is not recomputed")
	}
	if c.affect(xdsmeta.Node{Service: "web", Namespace: "shop", Upstreams: []xdsmeta.Upstream{{Service: "catalog", Namespace: "shop"}}}) {
		t.Error("a caller of catalog is recomputed")
	}
	same := *a
	if c := diffInputs(a, &same); c.affect(xdsmeta.Node{Service: "catalog", Namespace: "shop"}) {
		t.Error("an unchanged input recomputes catalog")
	}
}
