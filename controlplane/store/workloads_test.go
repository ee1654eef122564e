package store_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
)

func workload(namespace, service, addr string) *meshv1.Workload {
	return &meshv1.Workload{
		Id:        xdsmeta.WorkloadID(service, namespace, addr),
		Service:   service,
		Namespace: namespace,
		Version:   "v1",
		Labels:    map[string]string{"version": "v1"},
		Address:   addr,
		Ready:     true,
	}
}

func ids(ws []*meshv1.Workload) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.GetId()
	}
	return out
}

func TestWorkloads(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	all := []*meshv1.Workload{
		workload("shop", "cart", "127.0.1.2:15006"),
		workload("default", "payments", "127.0.1.2:15006"),
		workload("default", "payments", "127.0.1.1:15006"),
		workload("default", "cart", "127.0.1.3:15006"),
	}
	for _, w := range all {
		if _, err := s.PutWorkload(ctx, w, clientv3.NoLease); err != nil {
			t.Fatalf("put %s: %v", w.GetId(), err)
		}
	}
	cases := []struct {
		namespace, service string
		want               []string
	}{
		{"", "", []string{"cart.default@127.0.1.3:15006", "payments.default@127.0.1.1:15006", "payments.default@127.0.1.2:15006", "cart.shop@127.0.1.2:15006"}},
		{"default", "", []string{"cart.default@127.0.1.3:15006", "payments.default@127.0.1.1:15006", "payments.default@127.0.1.2:15006"}},
		{"default", "payments", []string{"payments.default@127.0.1.1:15006", "payments.default@127.0.1.2:15006"}},
		{"", "cart", []string{"cart.default@127.0.1.3:15006", "cart.shop@127.0.1.2:15006"}},
		{"nowhere", "", []string{}},
	}
	for _, tc := range cases {
		got, err := s.ListWorkloads(ctx, tc.namespace, tc.service)
		if err != nil {
			t.Fatalf("ListWorkloads(%q, %q): %v", tc.namespace, tc.service, err)
		}
		if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
			t.Errorf("ListWorkloads(%q, %q) (-want +got):\n%s", tc.namespace, tc.service, diff)
		}
	}
	got, err := s.ListWorkloads(ctx, "shop", "cart")
	if err != nil || len(got) != 1 {
		t.Fatalf("ListWorkloads(shop, cart) = %v, %v", got, err)
	}
	if diff := cmp.Diff(all[0], got[0], protocmp.Transform()); diff != "" {
		t.Errorf("stored workload (-put +got):\n%s", diff)
	}
}

func TestPutWorkloadOnLease(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	first, err := s.Client().Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Client().Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	w := workload("default", "payments", "127.0.1.1:15006")
	if _, err := s.PutWorkload(ctx, w, first.ID); err != nil {
		t.Fatal(err)
	}
	// Registering again moves the key to the new lease, so revoking the old
	// one (the old stream ending) leaves the endpoint in place.
	if _, err := s.PutWorkload(ctx, w, second.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Revoke(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListWorkloads(ctx, "default", "payments"); len(got) != 1 {
		t.Fatalf("after revoking the old lease: %v, want the workload", ids(got))
	}
	if _, err := s.Client().Revoke(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListWorkloads(ctx, "default", "payments"); len(got) != 0 {
		t.Fatalf("after revoking its lease: %v, want none", ids(got))
	}
}

// TestDeleteWorkloadAt: only the last writer of an endpoint deletes it.
func TestDeleteWorkloadAt(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	w := workload("default", "payments", "127.0.1.1:15006")
	older, err := s.PutWorkload(ctx, w, clientv3.NoLease)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := s.PutWorkload(ctx, w, clientv3.NoLease)
	if err != nil {
		t.Fatal(err)
	}
	if newer <= older {
		t.Fatalf("revisions %d then %d, want them increasing", older, newer)
	}
	if deleted, err := s.DeleteWorkloadAt(ctx, "default", "payments", w.GetId(), older); err != nil || deleted {
		t.Fatalf("delete at the older revision = %v, %v; want nothing deleted", deleted, err)
	}
	if got, _ := s.ListWorkloads(ctx, "default", "payments"); len(got) != 1 {
		t.Fatalf("after a stale delete: %v, want the workload", ids(got))
	}
	if deleted, err := s.DeleteWorkloadAt(ctx, "default", "payments", w.GetId(), newer); err != nil || !deleted {
		t.Fatalf("delete at the last revision = %v, %v; want it deleted", deleted, err)
	}
	if got, _ := s.ListWorkloads(ctx, "default", "payments"); len(got) != 0 {
		t.Fatalf("after deleting: %v, want none", ids(got))
	}
	if _, err := s.DeleteWorkloadAt(ctx, "default", "pay/ments", "x", 1); err == nil {
		t.Error("a service name with a slash was accepted")
	}
}

func TestPutWorkloadRejectsBadKeys(t *testing.T) {
	s := storetest.New(t)
	ctx := testContext(t)
	cases := []struct {
		name string
		w    *meshv1.Workload
	}{
		{"nil", nil},
		{"no id", &meshv1.Workload{Service: "a", Namespace: "b"}},
		{"no service", &meshv1.Workload{Id: "x", Namespace: "b"}},
		{"slash in id", &meshv1.Workload{Id: "x/y", Service: "a", Namespace: "b"}},
	}
	for _, tc := range cases {
		if _, err := s.PutWorkload(ctx, tc.w, clientv3.NoLease); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	resp, err := s.Client().Get(ctx, store.PrefixEndpoints, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("%d endpoint keys written by rejected puts", resp.Count)
	}
}
