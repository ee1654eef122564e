package apiserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const meshAndService = `apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata:
  name: default
spec:
  mtls:
    mode: STRICT
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: payments
  namespace: shop
spec:
  ports:
  - port: 8080
    protocol: http
`

// oneBadDocument has a good Service, then a Service with a bad protocol on line 18.
const oneBadDocument = `apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: catalog
spec:
  ports:
  - port: 8080
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: ledger
spec:
  ports:
  - port: 9090
    protocol: grpc
  - port: 9091
    protocol: smtp
`

func apiError(t *testing.T, err error, status int) *client.APIError {
	t.Helper()
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v (%T), want an *client.APIError", err, err)
	}
	if apiErr.Status != status {
		t.Fatalf("status %d (%s), want %d", apiErr.Status, apiErr.Message, status)
	}
	return apiErr
}

func TestApplyGetListDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	results, err := e.client.Apply(ctx, []byte(meshAndService), "mesh.yaml")
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []client.ApplyResult{
		{Kind: "Mesh", Name: "default", Action: "created"},
		{Kind: "Service", Namespace: "shop", Name: "payments", Action: "created"},
	}
	if fmt.Sprint(results) != fmt.Sprint(want) {
		t.Errorf("Apply results = %+v, want %+v", results, want)
	}
	results, err = e.client.Apply(ctx, []byte(meshAndService), "mesh.yaml")
	if err != nil || len(results) != 2 || results[0].Action != "unchanged" || results[1].Action != "unchanged" {
		t.Errorf("second Apply = %+v, %v; want both unchanged", results, err)
	}

	svc, err := e.client.Get(ctx, "services", "shop", "payments")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	spec, ok := svc.Spec.(*v1alpha1.ServiceSpec)
	if !ok || len(spec.Ports) != 1 || spec.Ports[0].Port != 8080 || svc.Metadata.ResourceVersion == 0 {
		t.Errorf("Get = %+v (spec %#v), want payments with port 8080 and a resourceVersion", svc, svc.Spec)
	}
	mesh, err := e.client.Get(ctx, "mesh", "ignored-for-cluster-scoped", "default")
	if err != nil || mesh.Kind != "Mesh" {
		t.Errorf("Get mesh = %+v, %v", mesh, err)
	}

	all, err := e.client.List(ctx, "Service", "")
	if err != nil || len(all) != 1 {
		t.Errorf("List all namespaces = %d items, %v; want 1", len(all), err)
	}
	none, err := e.client.List(ctx, "Service", "default")
	if err != nil || len(none) != 0 {
		t.Errorf("List default = %d items, %v; want 0", len(none), err)
	}

	if err := e.client.Delete(ctx, "svc", "shop", "payments"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = e.client.Get(ctx, "Service", "shop", "payments")
	if !client.IsNotFound(err) || !strings.Contains(err.Error(), `Service "payments" in namespace "shop" not found`) {
		t.Errorf("Get after Delete: %v, want a 404 naming the service", err)
	}
	err = e.client.Delete(ctx, "Service", "shop", "payments")
	if !client.IsNotFound(err) {
		t.Errorf("second Delete: %v, want 404", err)
	}
}

func TestApplyRejectsWhole(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.client.Apply(ctx, []byte(oneBadDocument), "services.yaml")
	apiErr := apiError(t, err, http.StatusBadRequest)
	if !strings.HasPrefix(apiErr.Message, "services.yaml: ") || !strings.Contains(apiErr.Message, "nothing applied") {
		t.Errorf("message %q, want it to name the file and say nothing was applied", apiErr.Message)
	}
	if len(apiErr.Details) != 1 {
		t.Fatalf("details = %+v, want one problem", apiErr.Details)
	}
	d := apiErr.Details[0]
	if d.Document != 2 || d.Field != "spec.ports[1].protocol" || d.Line != 18 || !strings.Contains(d.Detail, "smtp") {
		t.Errorf("detail = %+v, want document 2, spec.ports[1].protocol, line 18, naming smtp", d)
	}
	// The good document was not stored either.
	items, err := e.client.List(ctx, "Service", "")
	if err != nil || len(items) != 0 {
		t.Errorf("after a rejected apply: %d services, %v; want none stored", len(items), err)
	}
}

func TestApplyCrossChecks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	otherDomain := strings.Replace(meshAndService, "mtls:\n", "trustDomain: example.org\n  mtls:\n", 1)
	_, err := e.client.Apply(ctx, []byte(otherDomain), "mesh.yaml")
	apiErr := apiError(t, err, http.StatusBadRequest)
	if len(apiErr.Details) != 1 || apiErr.Details[0].Field != "spec.trustDomain" ||
		!strings.HasPrefix(apiErr.Details[0].Detail, `must be "weft.local"`) {
		t.Errorf("details = %+v, want spec.trustDomain: must be \"weft.local\" ...", apiErr.Details)
	}

	twice := meshAndService + "---\n" + strings.SplitN(meshAndService, "---\n", 2)[1]
	_, err = e.client.Apply(ctx, []byte(twice), "twice.yaml")
	apiErr = apiError(t, err, http.StatusBadRequest)
	if len(apiErr.Details) != 1 || apiErr.Details[0].Document != 3 || !strings.Contains(apiErr.Details[0].Detail, "duplicate of document 2") {
		t.Errorf("details = %+v, want document 3 flagged as a duplicate of document 2", apiErr.Details)
	}
	if items, _ := e.client.List(ctx, "Mesh", ""); len(items) != 0 {
		t.Errorf("after rejected applies: %d meshes stored, want none", len(items))
	}
}

func TestApplyLimits(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	big := strings.Repeat("# padding\n", apiserver.MaxApplyBytes/10+1)
	_, err := e.client.Apply(ctx, []byte(big), "big.yaml")
	apiErr := apiError(t, err, http.StatusRequestEntityTooLarge)
	if !strings.Contains(apiErr.Message, "1 MiB") {
		t.Errorf("oversize message %q, want it to state the limit", apiErr.Message)
	}

	var many strings.Builder
	for i := range store.MaxApplyObjects + 1 {
		fmt.Fprintf(&many, "---\napiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata:\n  name: s%d\nspec:\n  ports:\n  - port: 80\n", i)
	}
	_, err = e.client.Apply(ctx, []byte(many.String()), "many.yaml")
	apiErr = apiError(t, err, http.StatusRequestEntityTooLarge)
	if !strings.Contains(apiErr.Message, "at most 127") {
		t.Errorf("too many objects: message %q, want it to state the limit", apiErr.Message)
	}

	_, err = e.client.Apply(ctx, []byte("# nothing here\n"), "empty.yaml")
	apiErr = apiError(t, err, http.StatusBadRequest)
	if apiErr.Message != "empty.yaml: no resources found" {
		t.Errorf("empty apply message %q", apiErr.Message)
	}
}

func TestUnknownKind(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.client.List(ctx, "Gizmo", "")
	apiErr := apiError(t, err, http.StatusBadRequest)
	if !strings.Contains(apiErr.Message, `unknown kind "Gizmo"`) || !strings.Contains(apiErr.Message, "Mesh") ||
		!strings.Contains(apiErr.Message, "Service") {
		t.Errorf("message %q, want it to name the kind and list the known ones", apiErr.Message)
	}
	err = e.client.Delete(ctx, "Gizmo", "default", "x")
	apiError(t, err, http.StatusBadRequest)
	_, err = e.client.Get(ctx, "Service", "default", "a/b")
	apiError(t, err, http.StatusBadRequest)
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	before := time.Now()
	tok, err := e.client.CreateToken(ctx, "payments", "shop", 0)
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	claims, err := e.tokens.Verify(ctx, tok.Token)
	if err != nil {
		t.Fatalf("the issued token does not verify: %v", err)
	}
	if claims.Service != "payments" || claims.Namespace != "shop" || claims.ID != tok.ID {
		t.Errorf("claims = %+v, want payments in shop with ID %s", claims, tok.ID)
	}
	if d := tok.ExpiresAt.Sub(before); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("default lifetime %s, want 24h", d)
	}
	tok, err = e.client.CreateToken(ctx, "ledger", "", 90*time.Minute)
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if claims, err := e.tokens.Verify(ctx, tok.Token); err != nil || claims.Namespace != "default" ||
		claims.ExpiresAt.Sub(claims.IssuedAt) != 90*time.Minute {
		t.Errorf("token without namespace: %+v, %v; want namespace default, lifetime 1h30m", claims, err)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"empty body", ``, "body must be JSON"},
		{"no service", `{"namespace": "shop"}`, "service: required"},
		{"bad service", `{"service": "Pay_ments"}`, "must be a DNS label"},
		{"bad ttl", `{"service": "payments", "ttl": "forever"}`, `ttl: "forever" is not a duration`},
		{"short ttl", `{"service": "payments", "ttl": "30s"}`, "ttl: 30s is outside [1m, 8760h]"},
		{"unknown field", `{"service": "payments", "tll": "1h"}`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, http.MethodPost, "/api/v1/tokens", "Bearer "+e.admin, strings.NewReader(tc.body))
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.Error, tc.want) {
				t.Errorf("status %d %q, want 400 containing %q", resp.StatusCode, body.Error, tc.want)
			}
		})
	}
}

func TestWorkloads(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, w := range []*meshv1.Workload{
		{Id: "payments.shop@127.0.1.2:15006", Service: "payments", Namespace: "shop", Version: "v1",
			Address: "127.0.1.2:15006", Ready: true},
		{Id: "catalog.default@127.0.1.3:15006", Service: "catalog", Namespace: "default",
			Address: "127.0.1.3:15006"},
	} {
		if _, err := e.store.PutWorkload(ctx, w, clientv3.NoLease); err != nil {
			t.Fatal(err)
		}
	}
	all, err := e.client.Workloads(ctx, "", "")
	if err != nil || len(all) != 2 {
		t.Fatalf("Workloads = %d, %v; want 2", len(all), err)
	}
	shop, err := e.client.Workloads(ctx, "shop", "payments")
	if err != nil || len(shop) != 1 || shop[0].GetVersion() != "v1" || !shop[0].GetReady() {
		t.Errorf("Workloads(shop, payments) = %v, %v", shop, err)
	}
}
