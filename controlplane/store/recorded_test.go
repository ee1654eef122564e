package store_test

import (
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
)

// The operation a recorded change carries is committed with it, and only
// when something changes.
func TestApplyRecorded(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	var seen [][]store.Change
	record := func(key string) func([]store.Change) (clientv3.Op, error) {
		return func(c []store.Change) (clientv3.Op, error) {
			seen = append(seen, c)
			return clientv3.OpPut(key, "x"), nil
		}
	}
	exists := func(key string) bool {
		t.Helper()
		resp, err := s.Client().Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Kvs) == 1
	}

	if _, err := s.ApplyRecorded(ctx, []*v1alpha1.Object{service("default", "web", 80), mesh(0)}, record("/audit/1")); err != nil {
		t.Fatal(err)
	}
	if !exists("/audit/1") || len(seen) != 1 || len(seen[0]) != 2 || seen[0][0].Before != nil ||
		!strings.Contains(string(seen[0][0].After), `"port":80`) || seen[0][0].Action != store.ActionCreated {
		t.Fatalf("first apply: record written %v, changes %+v", exists("/audit/1"), seen)
	}

	// Only the object that changes is a change; its Before is what was stored.
	seen = nil
	if _, err := s.ApplyRecorded(ctx, []*v1alpha1.Object{service("default", "web", 81), mesh(0)}, record("/audit/2")); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || len(seen[0]) != 1 || seen[0][0].Name != "web" || seen[0][0].Action != store.ActionConfigured ||
		!strings.Contains(string(seen[0][0].Before), `"port":80`) || !strings.Contains(string(seen[0][0].After), `"port":81`) {
		t.Fatalf("second apply: changes %+v", seen)
	}

	// Nothing changes: nothing is recorded.
	seen = nil
	if _, err := s.ApplyRecorded(ctx, []*v1alpha1.Object{service("default", "web", 81)}, record("/audit/3")); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 0 || exists("/audit/3") {
		t.Errorf("an unchanged apply was recorded: %+v", seen)
	}

	// A hook that fails stops the apply.
	boom := errors.New("boom")
	_, err := s.ApplyRecorded(ctx, []*v1alpha1.Object{service("default", "web", 82)}, func([]store.Change) (clientv3.Op, error) { return clientv3.Op{}, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("failing hook: %v", err)
	}
	if got, err := s.Get(ctx, "Service", "default", "web"); err != nil || got.Spec.(*v1alpha1.ServiceSpec).Ports[0].Port != 81 {
		t.Errorf("after a failed hook the Service is %+v, %v; want port 81 still", got, err)
	}
}

func TestDeleteRecorded(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	if _, err := s.Apply(ctx, []*v1alpha1.Object{service("default", "web", 80)}); err != nil {
		t.Fatal(err)
	}
	var before []byte
	err := s.DeleteRecorded(ctx, "Service", "default", "web", func(b []byte) (clientv3.Op, error) {
		before = b
		return clientv3.OpPut("/audit/del", "x"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(before), `"port":80`) {
		t.Errorf("hook saw %s, want the stored Service", before)
	}
	if resp, err := s.Client().Get(ctx, "/audit/del"); err != nil || len(resp.Kvs) != 1 {
		t.Errorf("record not written: %v", err)
	}
	if _, err := s.Get(ctx, "Service", "default", "web"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after delete: %v", err)
	}
	called := false
	err = s.DeleteRecorded(ctx, "Service", "default", "web", func([]byte) (clientv3.Op, error) { called = true; return clientv3.Op{}, nil })
	if !errors.Is(err, store.ErrNotFound) || called {
		t.Errorf("deleting a missing object: %v (hook called: %v), want ErrNotFound and no hook", err, called)
	}
}
