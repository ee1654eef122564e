package vip

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
)

func service(namespace, name, vip string) *v1alpha1.Object {
	return &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion, Kind: "Service",
		Metadata: v1alpha1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:     &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Port: 8080}}, VIP: vip},
	}
}

func vips(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	resp, err := st.Client().Get(context.Background(), PrefixByService, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		ns, name, ok := ParseServiceKey(string(kv.Key))
		if !ok {
			t.Fatalf("bad key %q", kv.Key)
		}
		out[ns+"/"+name] = string(kv.Value)
	}
	return out
}

func TestReconcileAllocatesStableUniqueVIPs(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	a, err := New(st.Client(), Options{Range: netip.MustParsePrefix("240.240.0.0/29")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, []*v1alpha1.Object{service("shop", "catalog", ""), service("shop", "cart", ""), service("shop", "own", "240.240.0.1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got := vips(t, st)
	// 240.240.0.1 is declared by shop/own: never allocated to another.
	if len(got) != 2 || got["shop/cart"] != "240.240.0.2" || got["shop/catalog"] != "240.240.0.3" {
		t.Fatalf("allocations = %v", got)
	}
	// A restart (a new allocator) keeps them.
	b, _ := New(st.Client(), Options{Range: netip.MustParsePrefix("240.240.0.0/29")})
	if _, err := b.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if again := vips(t, st); again["shop/cart"] != got["shop/cart"] || again["shop/catalog"] != got["shop/catalog"] {
		t.Fatalf("after restart %v, before %v", again, got)
	}
	// Deleting a service releases its VIP; it is free for the next pass.
	if err := st.Delete(ctx, "Service", "shop", "cart"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, []*v1alpha1.Object{service("shop", "orders", "")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got = vips(t, st)
	if _, ok := got["shop/cart"]; ok || got["shop/catalog"] != "240.240.0.3" || got["shop/orders"] != "240.240.0.4" {
		t.Fatalf("after delete %v", got)
	}
	if _, err := st.Apply(ctx, []*v1alpha1.Object{service("shop", "users", "")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := vips(t, st); got["shop/users"] != "240.240.0.2" {
		t.Fatalf("the released VIP is not reused: %v", got)
	}
}

func TestRangeExhausted(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	a, _ := New(st.Client(), Options{Range: netip.MustParsePrefix("240.240.0.0/30")})
	if _, err := st.Apply(ctx, []*v1alpha1.Object{service("a", "one", ""), service("a", "two", ""), service("a", "three", "")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := vips(t, st); len(got) != 2 {
		t.Fatalf("a /30 has 2 usable addresses, allocated %v", got)
	}
}

func TestRunFollowsChanges(t *testing.T) {
	st := storetest.New(t)
	a, _ := New(st.Client(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if _, err := st.Apply(context.Background(), []*v1alpha1.Object{service("shop", "catalog", "")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for vips(t, st)["shop/catalog"] != "240.240.0.1" {
		if time.Now().After(deadline) {
			t.Fatalf("no VIP allocated: %v", vips(t, st))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, r := range []string{"fd00::/64", "10.0.0.0/31"} {
		if _, err := New(nil, Options{Range: netip.MustParsePrefix(r)}); err == nil {
			t.Errorf("range %s accepted", r)
		}
	}
}

// TestForeignSkipsOwnWrites: the VIP watch's echo of the allocator's own
// claims and releases triggers no reconcile; anyone else's write does, and
// the revisions the watch delivered are forgotten.
func TestForeignSkipsOwnWrites(t *testing.T) {
	a := &Allocator{own: map[int64]bool{5: true, 6: true, 9: true}}
	resp := func(header int64, revs ...int64) clientv3.WatchResponse {
		r := clientv3.WatchResponse{Header: &etcdserverpb.ResponseHeader{Revision: header}}
		for _, rev := range revs {
			r.Events = append(r.Events, &clientv3.Event{Kv: &mvccpb.KeyValue{ModRevision: rev}})
		}
		return r
	}
	if a.foreign(resp(6, 5, 6)) {
		t.Errorf("the allocator's own writes at 5 and 6 counted as foreign")
	}
	if len(a.own) != 1 || !a.own[9] {
		t.Errorf("own after the watch delivered revision 6: %v, want only 9", a.own)
	}
	if !a.foreign(resp(9, 7, 9)) {
		t.Errorf("a write at 7 by someone else was not seen")
	}
	if len(a.own) != 0 {
		t.Errorf("own after revision 9: %v, want empty", a.own)
	}
}
