package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
)

func service(namespace, name string, port int32) *v1alpha1.Object {
	return &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion,
		Kind:       "Service",
		Metadata:   v1alpha1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Port: port, Protocol: v1alpha1.ProtocolHTTP}}},
	}
}

func mesh(ttl time.Duration) *v1alpha1.Object {
	spec := &v1alpha1.MeshSpec{}
	spec.CertificateTTL.Duration = ttl
	return &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion,
		Kind:       "Mesh",
		Metadata:   v1alpha1.ObjectMeta{Name: "default"},
		Spec:       spec,
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// names lists objects as "namespace/name" for comparisons.
func names(objs []*v1alpha1.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Metadata.Namespace + "/" + o.Metadata.Name
	}
	return out
}

func TestApplyActions(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	result := func(obj *v1alpha1.Object, action string) store.ApplyResult {
		return store.ApplyResult{Kind: obj.Kind, Namespace: obj.Metadata.Namespace, Name: obj.Metadata.Name, Action: action}
	}
	steps := []struct {
		name  string
		apply []*v1alpha1.Object
		want  []store.ApplyResult
	}{
		{
			name:  "first apply creates",
			apply: []*v1alpha1.Object{service("default", "payments", 8080), mesh(time.Hour)},
			want: []store.ApplyResult{
				result(service("default", "payments", 8080), store.ActionCreated),
				result(mesh(time.Hour), store.ActionCreated),
			},
		},
		{
			name:  "same objects again are unchanged",
			apply: []*v1alpha1.Object{service("default", "payments", 8080), mesh(time.Hour)},
			want: []store.ApplyResult{
				result(service("default", "payments", 8080), store.ActionUnchanged),
				result(mesh(time.Hour), store.ActionUnchanged),
			},
		},
		{
			name:  "changed spec configures, new object creates",
			apply: []*v1alpha1.Object{service("default", "payments", 9090), service("shop", "cart", 80), mesh(time.Hour)},
			want: []store.ApplyResult{
				result(service("default", "payments", 9090), store.ActionConfigured),
				result(service("shop", "cart", 80), store.ActionCreated),
				result(mesh(time.Hour), store.ActionUnchanged),
			},
		},
	}
	for _, step := range steps {
		got, err := s.Apply(ctx, step.apply)
		if err != nil {
			t.Fatalf("%s: apply: %v", step.name, err)
		}
		if diff := cmp.Diff(step.want, got); diff != "" {
			t.Fatalf("%s: results (-want +got):\n%s", step.name, diff)
		}
		for _, obj := range step.apply {
			stored, err := s.Get(ctx, obj.Kind, obj.Metadata.Namespace, obj.Metadata.Name)
			if err != nil {
				t.Fatalf("%s: get: %v", step.name, err)
			}
			if stored.Metadata.ResourceVersion <= 0 {
				t.Errorf("%s: %s has resourceVersion %d", step.name, obj.Ref(), stored.Metadata.ResourceVersion)
			}
			stored.Metadata.ResourceVersion = 0
			if diff := cmp.Diff(obj, stored); diff != "" {
				t.Errorf("%s: stored %s (-applied +stored):\n%s", step.name, obj.Ref(), diff)
			}
		}
	}

	// An unchanged object keeps its revision; the mesh was written by step 1 only.
	m, err := s.Get(ctx, "Mesh", "", "default")
	if err != nil {
		t.Fatal(err)
	}
	cart, err := s.Get(ctx, "services", "shop", "cart")
	if err != nil {
		t.Fatal(err)
	}
	if m.Metadata.ResourceVersion >= cart.Metadata.ResourceVersion {
		t.Errorf("mesh revision %d should predate cart's %d: unchanged objects must not be rewritten",
			m.Metadata.ResourceVersion, cart.Metadata.ResourceVersion)
	}
}

func TestApplyStoresNoResourceVersion(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	obj := service("default", "payments", 8080)
	obj.Metadata.ResourceVersion = 42
	if _, err := s.Apply(ctx, []*v1alpha1.Object{obj}); err != nil {
		t.Fatal(err)
	}
	if obj.Metadata.ResourceVersion != 42 {
		t.Errorf("Apply modified its argument's resourceVersion")
	}
	resp, err := s.Client().Get(ctx, store.ResourceKey("Service", "default", "payments"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get: %v %v", resp, err)
	}
	if v := string(resp.Kvs[0].Value); strings.Contains(v, "resourceVersion") {
		t.Errorf("stored value carries a resourceVersion: %s", v)
	}
	got, err := s.Get(ctx, "Service", "default", "payments")
	if err != nil {
		t.Fatal(err)
	}
	if got.Metadata.ResourceVersion != resp.Kvs[0].ModRevision {
		t.Errorf("resourceVersion = %d, want the key's ModRevision %d", got.Metadata.ResourceVersion, resp.Kvs[0].ModRevision)
	}
}

func TestApplyRetriesAfterConcurrentWrite(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	other := service("default", "payments", 1111)
	attempts := 0
	store.SetBeforeApplyCommit(s, func() {
		attempts++
		if attempts == 1 {
			// Another writer creates the object between Apply's read and its write.
			value, err := json.Marshal(other)
			if err != nil {
				t.Errorf("encode: %v", err)
			}
			if _, err := s.Client().Put(ctx, store.ResourceKey("Service", "default", "payments"), string(value)); err != nil {
				t.Errorf("concurrent put: %v", err)
			}
		}
	})
	ours := service("default", "payments", 2222)
	got, err := s.Apply(ctx, []*v1alpha1.Object{ours, service("default", "cart", 80)})
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Errorf("Apply committed %d times, want 2 (one conflict, one retry)", attempts)
	}
	// The retry read the other writer's object, so ours configured it.
	want := []store.ApplyResult{
		{Kind: "Service", Namespace: "default", Name: "payments", Action: store.ActionConfigured},
		{Kind: "Service", Namespace: "default", Name: "cart", Action: store.ActionCreated},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	stored, err := s.Get(ctx, "Service", "default", "payments")
	if err != nil {
		t.Fatal(err)
	}
	if port := stored.Spec.(*v1alpha1.ServiceSpec).Ports[0].Port; port != 2222 {
		t.Errorf("stored port %d, want ours (2222)", port)
	}
}

func TestApplyGivesUpUnderConstantConflict(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	n := 0
	store.SetBeforeApplyCommit(s, func() {
		n++
		if _, err := s.Client().Put(ctx, store.ResourceKey("Service", "default", "cart"), fmt.Sprint(n)); err != nil {
			t.Errorf("concurrent put: %v", err)
		}
	})
	_, err := s.Apply(ctx, []*v1alpha1.Object{service("default", "payments", 80), service("default", "cart", 80)})
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("Apply under constant conflict: err = %v, want it to give up", err)
	}
	// Neither object was written: the conflicting key holds the other writer's value.
	if _, err := s.Get(ctx, "Service", "default", "payments"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("payments written despite the failed apply: %v", err)
	}
}

func TestApplyRejectsWholeBatch(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	valid := service("default", "payments", 80)
	tooMany := make([]*v1alpha1.Object, store.MaxApplyObjects+1)
	for i := range tooMany {
		tooMany[i] = service("default", fmt.Sprintf("s%d", i), 80)
	}
	withKind := func(kind string) *v1alpha1.Object { o := service("default", "x", 80); o.Kind = kind; return o }
	cases := []struct {
		name    string
		objs    []*v1alpha1.Object
		wantErr string
	}{
		{"duplicate", []*v1alpha1.Object{valid, service("default", "cart", 80), service("default", "payments", 90)},
			`items 0 and 2 are both service "default/payments"`},
		{"nil object", []*v1alpha1.Object{valid, nil}, "item 1: object is nil"},
		{"unknown kind", []*v1alpha1.Object{valid, withKind("Gadget")}, `unknown kind "Gadget"`},
		{"kind alias", []*v1alpha1.Object{valid, withKind("svc")}, `kind "svc" must be written "Service"`},
		{"namespace on cluster-scoped kind", []*v1alpha1.Object{valid, func() *v1alpha1.Object {
			m := mesh(time.Hour)
			m.Metadata.Namespace = "default"
			return m
		}()}, "cluster-scoped"},
		{"namespaced kind without namespace", []*v1alpha1.Object{valid, service("", "cart", 80)}, "namespace"},
		{"slash in name", []*v1alpha1.Object{valid, service("default", "a/b", 80)}, `contains '/'`},
		{"no spec", []*v1alpha1.Object{valid, func() *v1alpha1.Object {
			o := service("default", "cart", 80)
			o.Spec = nil
			return o
		}()}, "spec is missing"},
		{"too many", tooMany, "at most 127"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Apply(ctx, tc.objs)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			objs, err := s.List(ctx, "Service", "")
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 0 {
				t.Errorf("a rejected apply wrote %v", names(objs))
			}
		})
	}
}

func TestGetListDelete(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	// "a-b" sorts before "a/" in key order but after "a" by namespace.
	_, err := s.Apply(ctx, []*v1alpha1.Object{
		service("a-b", "x", 80), service("a", "y", 80), service("a", "x", 80), service("b", "a", 80), mesh(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	lists := []struct {
		kind, namespace string
		want            []string
	}{
		{"Service", "", []string{"a/x", "a/y", "a-b/x", "b/a"}},
		{"service", "a", []string{"a/x", "a/y"}},
		{"svc", "a-b", []string{"a-b/x"}},
		{"Service", "none", []string{}},
		{"Mesh", "", []string{"/default"}},
	}
	for _, l := range lists {
		objs, err := s.List(ctx, l.kind, l.namespace)
		if err != nil {
			t.Fatalf("List(%s, %q): %v", l.kind, l.namespace, err)
		}
		if diff := cmp.Diff(l.want, names(objs)); diff != "" {
			t.Errorf("List(%s, %q) (-want +got):\n%s", l.kind, l.namespace, diff)
		}
	}
	if _, err := s.List(ctx, "Mesh", "default"); err == nil {
		t.Errorf("List of a cluster-scoped kind in a namespace: no error")
	}

	if err := s.Delete(ctx, "Service", "a", "x"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	notFound := []struct {
		op   string
		err  error
		want string
	}{
		{"get deleted", func() error { _, err := s.Get(ctx, "Service", "a", "x"); return err }(), `service "a/x" not found`},
		{"delete again", s.Delete(ctx, "Service", "a", "x"), `service "a/x" not found`},
		{"get missing", func() error { _, err := s.Get(ctx, "Service", "default", "payments"); return err }(), `service "default/payments" not found`},
		{"delete mesh then get", func() error {
			if err := s.Delete(ctx, "Mesh", "", "default"); err != nil {
				return err
			}
			_, err := s.Get(ctx, "Mesh", "", "default")
			return err
		}(), `mesh "default" not found`},
	}
	for _, nf := range notFound {
		if !errors.Is(nf.err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", nf.op, nf.err)
			continue
		}
		if nf.err.Error() != nf.want {
			t.Errorf("%s: message %q, want %q", nf.op, nf.err, nf.want)
		}
	}
	if _, err := s.Get(ctx, "Gadget", "default", "x"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of an unknown kind: err = %v, want an error that is not ErrNotFound", err)
	}
}
