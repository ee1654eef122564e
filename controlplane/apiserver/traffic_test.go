package apiserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

const catalogAndPolicy = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  ports: [{port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: catalog, namespace: shop}
spec:
  subsets:
  - {name: v1, labels: {version: v1}}
`

const canaryRoute = `apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: canary, namespace: shop}
spec:
  service: catalog
  rules:
  - backends:
    - {subset: v1, weight: 9}
    - {subset: SUBSET, weight: 1}
`

// TestApplyChecksReferences checks that an apply whose Route names a subset
// no DestinationPolicy defines, stored or applied with it, is rejected
// whole, with the field's path, and that a correct one is stored.
func TestApplyChecksReferences(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.client.Apply(ctx, []byte(catalogAndPolicy), "catalog.yaml"); err != nil {
		t.Fatal(err)
	}

	bad := strings.Replace(canaryRoute, "SUBSET", "v2", 1)
	// With a good Service in the same apply: nothing of it is stored.
	extra := "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: search, namespace: shop}\nspec:\n  ports: [{port: 80}]\n---\n"
	_, err := e.client.Apply(ctx, []byte(extra+bad), "route.yaml")
	apiErr := apiError(t, err, http.StatusBadRequest)
	if len(apiErr.Details) != 1 {
		t.Fatalf("details = %+v, want one", apiErr.Details)
	}
	d := apiErr.Details[0]
	if d.Document != 2 || d.Ref != "Route shop/canary" || d.Field != "spec.rules[0].backends[1].subset" ||
		!strings.Contains(d.Detail, `subset "v2" is not defined`) {
		t.Errorf("detail = %+v, want document 2, Route shop/canary, spec.rules[0].backends[1].subset: subset \"v2\" is not defined", d)
	}
	if items, _ := e.client.List(ctx, "Route", "shop"); len(items) != 0 {
		t.Errorf("after a rejected apply: %d routes stored, want none", len(items))
	}
	if items, _ := e.client.List(ctx, "Service", "shop"); len(items) != 1 {
		t.Errorf("after a rejected apply: %d services stored, want catalog only", len(items))
	}

	// An unknown service is rejected too.
	_, err = e.client.Apply(ctx, []byte(strings.Replace(strings.Replace(canaryRoute, "SUBSET", "v2", 1), "service: catalog", "service: nowhere", 1)), "route.yaml")
	apiErr = apiError(t, err, http.StatusBadRequest)
	if len(apiErr.Details) == 0 || apiErr.Details[0].Field != "spec.service" {
		t.Errorf("details = %+v, want spec.service flagged", apiErr.Details)
	}

	// The subset defined in the same apply: accepted.
	good := strings.Replace(catalogAndPolicy, "  - {name: v1, labels: {version: v1}}\n", "  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n", 1)
	if _, err := e.client.Apply(ctx, []byte(good+"---\n"+bad), "route.yaml"); err != nil {
		t.Fatal(err)
	}
	if items, _ := e.client.List(ctx, "Route", "shop"); len(items) != 1 {
		t.Errorf("%d routes stored, want 1", len(items))
	}
}
