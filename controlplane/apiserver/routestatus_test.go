package apiserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/apiserver"
)

// fakeRouteStatus answers RouteStatus from a table, by "namespace/service".
type fakeRouteStatus struct {
	mu      sync.Mutex
	results map[string]fakeResult
}

type fakeResult struct {
	want, applied int
	nacks         []string
}

func (f *fakeRouteStatus) RouteStatus(namespace, service string) (int, int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.results[namespace+"/"+service]
	return r.want, r.applied, r.nacks
}

// withRouteStatus serves e's store with source as the route status source.
func withRouteStatus(t *testing.T, e *env, source apiserver.RouteStatusSource) *client.Client {
	t.Helper()
	srv := httptest.NewTLSServer(apiserver.New(apiserver.Options{
		Store: e.store, Workloads: e.store, Tokens: e.tokens, Auth: e.tokens, RouteStatus: source,
		TrustDomain: "weft.local", Version: "v1.2.3", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(srv.Close)
	return (&env{srv: srv}).newClient(t, e.admin)
}

func TestRouteStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	policy := strings.Replace(catalogAndPolicy, "  - {name: v1, labels: {version: v1}}\n",
		"  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n", 1)
	search := "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: search, namespace: shop}\nspec:\n  ports: [{port: 80}]\n" +
		"---\napiVersion: weft.dev/v1alpha1\nkind: Route\nmetadata: {name: search, namespace: shop}\nspec:\n  service: search\n  rules:\n  - backends: [{}]\n"
	canary := strings.Replace(canaryRoute, "SUBSET", "v2", 1)
	second := strings.Replace(canary, "name: canary", "name: zz-second", 1)
	if _, err := e.client.Apply(ctx, []byte(policy+"---\n"+canary+"---\n"+second+"---\n"+search), "routes.yaml"); err != nil {
		t.Fatal(err)
	}
	fake := &fakeRouteStatus{results: map[string]fakeResult{
		"shop/catalog": {want: 3, applied: 2},
		"shop/search":  {want: 2, applied: 0, nacks: []string{"route: unsupported", "route: unsupported too"}},
	}}
	c := withRouteStatus(t, e, fake)
	got, err := c.RouteStatuses(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	n := func(i int) *int { return &i }
	want := []client.RouteStatus{
		{Namespace: "shop", Name: "canary", Service: "catalog", Phase: client.RoutePending, Accepted: true, Proxies: n(3), Applied: n(2)},
		{Namespace: "shop", Name: "search", Service: "search", Phase: client.RouteRejected, Accepted: true, Proxies: n(2), Applied: n(0),
			Errors: []string{"route: unsupported", "route: unsupported too"}},
		{Namespace: "shop", Name: "zz-second", Service: "catalog", Phase: client.RouteNotAccepted,
			Reason: "service catalog is governed by Route shop/canary, the first by name that names it"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("statuses:\n got %+v\nwant %+v", got, want)
	}

	// Everything applied: Applied; no proxy reads it: NoProxies.
	fake.mu.Lock()
	fake.results = map[string]fakeResult{"shop/catalog": {want: 3, applied: 3}}
	fake.mu.Unlock()
	got, err = c.RouteStatuses(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Phase != client.RouteApplied || got[1].Phase != client.RouteNoProxies {
		t.Errorf("statuses = %+v, want canary Applied and search NoProxies", got)
	}

	// A namespace without Routes: an empty list, not null.
	if got, err := c.RouteStatuses(ctx, "empty"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("RouteStatuses(empty) = %#v, %v; want an empty list", got, err)
	}

	// Without a source, only acceptance is known.
	got, err = e.client.RouteStatuses(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Phase != client.RouteUnknown || got[0].Proxies != nil || !got[0].Accepted {
		t.Errorf("without a source: %+v, want accepted, phase Unknown and no proxy counts", got[0])
	}

	// The policy loses the subset the Route sends to: no longer accepted.
	if _, err := e.client.Apply(ctx, []byte(catalogAndPolicy), "policy.yaml"); err != nil {
		t.Fatal(err)
	}
	got, err = c.RouteStatuses(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Accepted || got[0].Phase != client.RouteNotAccepted ||
		got[0].Reason != `spec.rules[0].backends[1].subset: subset "v2" is not defined by DestinationPolicy shop/catalog, whose subsets are v1` {
		t.Errorf("after the subset went away: %+v, want not accepted for the missing subset", got[0])
	}
	// The second Route still governs nothing: the first, broken, still names the service.
	if got[2].Accepted || !strings.Contains(got[2].Reason, "governed by Route shop/canary") {
		t.Errorf("zz-second: %+v, want not accepted", got[2])
	}

	// Only GET.
	if resp, _ := e.do(t, http.MethodPost, "/api/v1/status/routes", "Bearer "+e.admin, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}
