package explain

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/decode"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/translate"
)

var (
	frontend = translate.ServiceKey{Namespace: "shop", Name: "frontend"}
	catalog  = translate.ServiceKey{Namespace: "shop", Name: "catalog"}
	cache    = translate.ServiceKey{Namespace: "shop", Name: "cache"}
)

func ptr[T any](v T) *T { return &v }

// mesh is frontend calling catalog (HTTP, v1 and v2 with a canary Route on
// /api) and cache (TCP).
func mesh(t *testing.T) *translate.Input {
	t.Helper()
	route := &v1alpha1.RouteSpec{Service: "catalog", Rules: []v1alpha1.RouteRule{{
		Name:  "canary",
		Match: []v1alpha1.RouteMatch{{Path: &v1alpha1.PathMatch{Prefix: "/api"}}},
		Backends: []v1alpha1.Backend{
			{Subset: "v1", Weight: ptr[int32](90)},
			{Subset: "v2", Weight: ptr[int32](10)},
		},
	}}}
	route.Default()
	policy := &v1alpha1.DestinationPolicySpec{Subsets: []v1alpha1.Subset{
		{Name: "v1", Labels: map[string]string{"version": "v1"}},
		{Name: "v2", Labels: map[string]string{"version": "v2"}},
	}}
	policy.Default()
	wl := func(key translate.ServiceKey, version, addr string) *meshv1.Workload {
		return &meshv1.Workload{Id: key.Name + "-" + version, Service: key.Name, Namespace: key.Namespace, Version: version,
			Labels: map[string]string{"version": version}, Address: addr, Ready: true}
	}
	return &translate.Input{
		TrustDomain:    "weft.local",
		TrustBundlePEM: []byte("-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"),
		Services: map[translate.ServiceKey]*v1alpha1.ServiceSpec{
			catalog: {Ports: []v1alpha1.ServicePort{{Name: "http", Port: 8080, Protocol: v1alpha1.ProtocolHTTP}}},
			cache:   {Ports: []v1alpha1.ServicePort{{Name: "tcp", Port: 6379, Protocol: v1alpha1.ProtocolTCP}}},
		},
		Workloads: map[translate.ServiceKey][]*meshv1.Workload{
			frontend: {wl(frontend, "v1", "127.0.1.1:15006")},
			catalog:  {wl(catalog, "v1", "127.0.1.2:15006"), wl(catalog, "v2", "127.0.1.3:15006")},
			cache:    {wl(cache, "v1", "127.0.1.4:15006")},
		},
		Routes:   map[translate.ServiceKey]*v1alpha1.RouteSpec{catalog: route},
		Policies: map[translate.ServiceKey]*v1alpha1.DestinationPolicySpec{catalog: policy},
	}
}

func TestExplainHTTPCanary(t *testing.T) {
	e, err := Explain(mesh(t), Request{From: frontend, To: catalog, Method: "GET", Path: "/api/items"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Protocol != "http" || e.Verdict != "forwarded" {
		t.Fatalf("protocol %q verdict %q, want http, forwarded", e.Protocol, e.Verdict)
	}
	if e.Route == nil || !strings.Contains(e.Route.Name, "canary") {
		t.Fatalf("route %+v, want the canary rule", e.Route)
	}
	if len(e.Backends) != 2 || e.Backends[0].Percent != 90 || e.Backends[1].Percent != 10 {
		t.Fatalf("backends %+v, want v1 90%% and v2 10%%", e.Backends)
	}
	if got := e.Backends[0].Endpoints; len(got) != 1 || got[0] != "127.0.1.2:15006" {
		t.Errorf("v1 endpoints %v, want [127.0.1.2:15006]", got)
	}
	if got := e.Backends[1].Endpoints; len(got) != 1 || got[0] != "127.0.1.3:15006" {
		t.Errorf("v2 endpoints %v, want [127.0.1.3:15006]", got)
	}
}

func TestExplainDefaultRoute(t *testing.T) {
	e, err := Explain(mesh(t), Request{From: frontend, To: catalog, Method: "POST", Path: "/other", Header: http.Header{"X-User": {"a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Route == nil || strings.Contains(e.Route.Name, "canary") {
		t.Fatalf("route %+v, want the catch-all", e.Route)
	}
	if len(e.Backends) != 1 || len(e.Backends[0].Endpoints) != 2 {
		t.Fatalf("backends %+v, want the whole service with both endpoints", e.Backends)
	}
}

func TestExplainTCP(t *testing.T) {
	e, err := Explain(mesh(t), Request{From: frontend, To: cache})
	if err != nil {
		t.Fatal(err)
	}
	if e.Protocol != "tcp" || e.Route != nil || len(e.Backends) != 1 || len(e.Backends[0].Endpoints) != 1 {
		t.Fatalf("got %+v, want a TCP explanation with one backend and its endpoint", e)
	}
}

func TestExplainRefusesBadInput(t *testing.T) {
	in := mesh(t)
	_, err := Explain(in, Request{From: frontend, To: translate.ServiceKey{Namespace: "shop", Name: "nope"}})
	if !errors.Is(err, ErrUnknownService) || !strings.Contains(err.Error(), "nope.shop") {
		t.Errorf("unknown destination: %v, want ErrUnknownService naming nope.shop", err)
	}
	if _, err := Explain(in, Request{From: frontend, To: catalog, Path: "api"}); err == nil || !strings.Contains(err.Error(), `path "api"`) {
		t.Errorf("relative path: %v, want an error naming it", err)
	}
	if _, err := Explain(nil, Request{From: frontend, To: catalog}); err == nil {
		t.Error("nil input: no error")
	}
}

// specOf decodes one resource and returns its defaulted spec.
func specOf[T any](t *testing.T, doc string) T {
	t.Helper()
	obj, err := decode.Document([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if errs := obj.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	obj.Spec.Default()
	return obj.Spec.(T)
}

// TestExplainPolicies runs the destination's filters: an AccessPolicy that
// denies a path to the frontend, and a RateLimit on it.
func TestExplainPolicies(t *testing.T) {
	in := mesh(t)
	deny := specOf[*v1alpha1.AccessPolicySpec](t, `apiVersion: weft.dev/v1alpha1
kind: AccessPolicy
metadata: {name: no-admin, namespace: shop}
spec:
  service: catalog
  action: DENY
  rules:
  - name: admin
    from: [{services: [frontend]}]
    to: [{paths: [{prefix: /admin}]}]
`)
	in.AccessPolicies = map[translate.ServiceKey][]translate.AccessPolicy{catalog: {{Name: "no-admin", Spec: deny}}}
	in.RateLimits = map[translate.ServiceKey]*v1alpha1.RateLimitSpec{catalog: specOf[*v1alpha1.RateLimitSpec](t, `apiVersion: weft.dev/v1alpha1
kind: RateLimit
metadata: {name: catalog, namespace: shop}
spec:
  limits:
  - name: items
    match: [{path: {prefix: /items}}]
    local: {requests: 20, unit: second}
`)}

	e, err := Explain(in, Request{From: frontend, To: catalog, Path: "/admin/users"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.Verdict, "refused by envoy.filters.http.rbac: 403") {
		t.Fatalf("verdict %q, want a 403 from RBAC", e.Verdict)
	}
	last := e.Filters[len(e.Filters)-1]
	if last.Header["weft-denied-by"] != "shop/no-admin/admin" {
		t.Errorf("weft-denied-by %q, want shop/no-admin/admin (filters %+v)", last.Header["weft-denied-by"], e.Filters)
	}

	e, err = Explain(in, Request{From: frontend, To: catalog, Path: "/items/1"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Verdict != "forwarded" {
		t.Fatalf("verdict %q, want forwarded", e.Verdict)
	}
	var limit string
	for _, f := range e.Filters {
		if f.Name == filterLocalRateLimit {
			limit = f.Detail
		}
	}
	if !strings.Contains(limit, `limit "items": 20 requests per second`) {
		t.Errorf("local rate limit detail %q, want the items limit", limit)
	}
}
