package apiserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/weftmesh/weft/controlplane/apiserver"
)

// TestStatusesAgreeWithTheAPI: the in-process reader the dashboard uses
// says what GET /api/v1/status/routes and /status/policies say.
func TestStatusesAgreeWithTheAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	policy := strings.Replace(catalogAndPolicy, "  - {name: v1, labels: {version: v1}}\n",
		"  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n", 1)
	canary := strings.Replace(canaryRoute, "SUBSET", "v2", 1)
	if _, err := e.client.Apply(ctx, []byte(policy+"---\n"+canary), "routes.yaml"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Apply(ctx, []byte(accessPolicies), "policies.yaml"); err != nil {
		t.Fatal(err)
	}
	routes := &fakeRouteStatus{results: map[string]fakeResult{"shop/catalog": {want: 3, applied: 2}}}
	policies := &fakePolicyStatus{revisions: map[string]int64{}, results: map[string]fakeResult{
		"shop/readers": {want: 2, applied: 1, nacks: []string{"boom"}},
	}}
	opts := apiserver.Options{
		Store: e.store, Workloads: e.store, Tokens: e.tokens, Auth: e.tokens, RouteStatus: routes, PolicyStatus: policies,
		TrustDomain: "weft.local", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	srv := httptest.NewTLSServer(apiserver.New(opts))
	t.Cleanup(srv.Close)
	c := (&env{srv: srv}).newClient(t, e.admin)
	st := apiserver.NewStatuses(opts)

	for _, ns := range []string{"", "shop", "other"} {
		viaAPI, err := c.RouteStatuses(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := st.RouteStatuses(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(viaAPI, direct) {
			t.Errorf("routes in %q: API %+v, direct %+v", ns, viaAPI, direct)
		}
		viaAPIp, err := c.PolicyStatuses(ctx, "", ns)
		if err != nil {
			t.Fatal(err)
		}
		directp, err := st.PolicyStatuses(ctx, "", ns)
		if err != nil {
			t.Fatal(err)
		}
		if len(viaAPIp) == 0 && len(directp) == 0 {
			continue
		}
		if !reflect.DeepEqual(viaAPIp, directp) {
			t.Errorf("policies in %q: API %+v, direct %+v", ns, viaAPIp, directp)
		}
	}
	if got, err := st.RouteStatuses(ctx, "shop"); err != nil || len(got) == 0 || got[0].Phase == "" {
		t.Errorf("routes in shop: %+v, %v", got, err)
	}
	if got, err := st.PolicyStatuses(ctx, "accesspolicies", "shop"); err != nil || len(got) != 2 || got[1].Name != "readers" || len(got[1].Errors) != 1 {
		t.Errorf("access policies in shop: %+v, %v", got, err)
	}
	if _, err := st.PolicyStatuses(ctx, "Route", ""); err == nil || !strings.Contains(err.Error(), "no policy status") {
		t.Errorf("a kind without policy status: %v", err)
	}
}
