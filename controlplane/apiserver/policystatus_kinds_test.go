package apiserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/controlplane/apiserver"
)

// TestRateLimitStatus: a limit on a Route rule that does not exist counts
// nothing, and says so; once the Route has the rule, the warning goes.
func TestRateLimitStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.client.Apply(ctx, []byte(`
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  ports: [{port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: RateLimit
metadata: {name: catalog, namespace: shop}
spec:
  limits:
  - name: checkout
    routeRule: checkout
    global: {requests: 10, unit: second}
  - name: rest
    local: {requests: 100, unit: second}
`), "limits.yaml"); err != nil {
		t.Fatal(err)
	}
	fake := &fakePolicyStatus{revisions: map[string]int64{}, results: map[string]fakeResult{"shop/catalog": {want: 1, applied: 1}}}
	srv := httptest.NewTLSServer(apiserver.New(apiserver.Options{
		Store: e.store, Workloads: e.store, Tokens: e.tokens, Auth: e.tokens, PolicyStatus: fake,
		TrustDomain: "weft.local", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(srv.Close)
	c := (&env{srv: srv}).newClient(t, e.admin)

	got, err := c.PolicyStatuses(ctx, "ratelimits", "shop")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`spec.limits[0] (checkout): service catalog has no Route, so routeRule "checkout" matches nothing: the limit counts nothing`}
	if len(got) != 1 || got[0].Service != "catalog" || !got[0].Accepted || !reflect.DeepEqual(got[0].Warnings, want) {
		t.Fatalf("status %+v, want accepted with warnings %q", got, want)
	}

	if _, err := e.client.Apply(ctx, []byte(`
apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: catalog, namespace: shop}
spec:
  service: catalog
  rules:
  - name: checkout
    match: [{path: {prefix: /checkout}}]
    backends: [{}]
`), "route.yaml"); err != nil {
		t.Fatal(err)
	}
	got, err = c.PolicyStatuses(ctx, "ratelimits", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Warnings) != 0 {
		t.Fatalf("with the rule in place: %+v, want no warning", got)
	}
}
