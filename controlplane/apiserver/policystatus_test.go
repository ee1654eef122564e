package apiserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/controlplane/apiserver"
)

// fakePolicyStatus answers PolicyStatus by "namespace/name", recording the
// revision it was asked about.
type fakePolicyStatus struct {
	results   map[string]fakeResult
	revisions map[string]int64
}

func (f *fakePolicyStatus) PolicyStatus(kind, namespace, name, service string, revision int64) (int, int, []string) {
	f.revisions[namespace+"/"+name] = revision
	r := f.results[namespace+"/"+name]
	return r.want, r.applied, r.nacks
}

const accessPolicies = `
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  ports: [{port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: deny-writes, namespace: shop}
spec:
  service: catalog
  action: DENY
  rules:
  - to: [{methods: [POST, PUT]}]
---
apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: readers, namespace: shop}
spec:
  service: catalog
  rules:
  - name: web
    from: [{services: [web]}]
    to: [{methods: [GET]}]
  - name: uploads
    from: [{services: [web]}]
    to: [{methods: [PUT]}]
  - name: metrics
    to: [{ports: [9090]}]
`

func TestPolicyStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.client.Apply(ctx, []byte(accessPolicies), "policies.yaml"); err != nil {
		t.Fatal(err)
	}
	fake := &fakePolicyStatus{revisions: map[string]int64{}, results: map[string]fakeResult{
		"shop/deny-writes": {want: 2, applied: 2},
		"shop/readers":     {want: 2, applied: 1},
	}}
	srv := httptest.NewTLSServer(apiserver.New(apiserver.Options{
		Store: e.store, Workloads: e.store, Tokens: e.tokens, Auth: e.tokens, PolicyStatus: fake,
		TrustDomain: "weft.local", Version: "v1.2.3", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(srv.Close)
	c := (&env{srv: srv}).newClient(t, e.admin)

	got, err := c.PolicyStatuses(ctx, "accesspolicies", "shop")
	if err != nil {
		t.Fatal(err)
	}
	n := func(i int) *int { return &i }
	want := []client.PolicyStatus{
		{Kind: "AccessPolicy", Namespace: "shop", Name: "deny-writes", Service: "catalog", Phase: client.RouteApplied, Accepted: true,
			Proxies: n(2), Applied: n(2)},
		{Kind: "AccessPolicy", Namespace: "shop", Name: "readers", Service: "catalog", Phase: client.RoutePending, Accepted: true,
			Proxies: n(2), Applied: n(1), Warnings: []string{
				"rules[1] (uploads) is shadowed: every request it allows is denied by shop/deny-writes",
				"rules[2] (metrics).to[0] can never match: service catalog serves port 8080, not 9090",
				"rules[2] (metrics) can never match",
			}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("statuses:\n got %+v\nwant %+v", got, want)
	}
	stored, err := e.store.Get(ctx, "AccessPolicy", "shop", "readers")
	if err != nil {
		t.Fatal(err)
	}
	if rev := fake.revisions["shop/readers"]; rev != stored.Metadata.ResourceVersion || rev == 0 {
		t.Errorf("asked about revision %d, want the stored %d", rev, stored.Metadata.ResourceVersion)
	}

	// A policy whose service goes away is no longer accepted.
	if err := e.store.Delete(ctx, "Service", "shop", "catalog"); err != nil {
		t.Fatal(err)
	}
	got, err = c.PolicyStatuses(ctx, "", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Accepted || got[0].Phase != client.RouteNotAccepted || !strings.Contains(got[0].Reason, `unknown service "catalog"`) {
		t.Errorf("after the Service is deleted: %+v", got)
	}
	if _, err := c.PolicyStatuses(ctx, "Service", ""); err == nil || !strings.Contains(err.Error(), "has no policy status") {
		t.Errorf("status of Services: %v", err)
	}
}
