package meshstate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/meshstate"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/translate"
)

const trustDomain = "weft.test"

func service(namespace, name string, port int32) *v1alpha1.Object {
	return &v1alpha1.Object{
		APIVersion: v1alpha1.APIVersion,
		Kind:       "Service",
		Metadata:   v1alpha1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Port: port}}},
	}
}

func mesh(ttl time.Duration) *v1alpha1.Object {
	spec := &v1alpha1.MeshSpec{}
	spec.CertificateTTL.Duration = ttl
	return &v1alpha1.Object{APIVersion: v1alpha1.APIVersion, Kind: "Mesh", Metadata: v1alpha1.ObjectMeta{Name: "default"}, Spec: spec}
}

func workload(namespace, svc, addr string) *meshv1.Workload {
	return &meshv1.Workload{
		Id: xdsmeta.WorkloadID(svc, namespace, addr), Service: svc, Namespace: namespace,
		Address: addr, Version: "v1", Ready: true,
	}
}

// render prints everything an Input holds, in a fixed order, so that two
// renderings are equal exactly when the Inputs are.
func render(in *translate.Input) string {
	var b strings.Builder
	fmt.Fprintf(&b, "td=%s bundle=%q\n", in.TrustDomain, in.TrustBundlePEM)
	m, _ := json.Marshal(in.Mesh)
	fmt.Fprintf(&b, "mesh=%s\n", m)
	less := func(a, b translate.ServiceKey) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	}
	for _, k := range slices.SortedFunc(maps.Keys(in.Services), less) {
		s, _ := json.Marshal(in.Services[k])
		fmt.Fprintf(&b, "service %s/%s=%s\n", k.Namespace, k.Name, s)
	}
	for _, k := range slices.SortedFunc(maps.Keys(in.Routes), less) {
		s, _ := json.Marshal(in.Routes[k])
		fmt.Fprintf(&b, "route %s/%s=%s\n", k.Namespace, k.Name, s)
	}
	for _, k := range slices.SortedFunc(maps.Keys(in.Policies), less) {
		s, _ := json.Marshal(in.Policies[k])
		fmt.Fprintf(&b, "policy %s/%s=%s\n", k.Namespace, k.Name, s)
	}
	for _, k := range slices.SortedFunc(maps.Keys(in.Workloads), less) {
		for _, w := range in.Workloads[k] {
			fmt.Fprintf(&b, "workload %s/%s=%s\n", k.Namespace, k.Name, protojson.Format(w))
		}
	}
	return b.String()
}

// watcher runs a Watcher until the test ends and records every Input it
// hands out, with its rendering at the time.
type watcher struct {
	*meshstate.Watcher
	inputs chan *translate.Input
	bundle atomic.Value // []byte

	mu       sync.Mutex
	received []*translate.Input
	rendered []string
}

func startWatcher(t *testing.T, st *store.Store, setup func(*meshstate.Watcher)) *watcher {
	t.Helper()
	w := &watcher{inputs: make(chan *translate.Input, 1024)}
	w.bundle.Store([]byte("bundle-1"))
	w.Watcher = meshstate.New(st, meshstate.Options{
		TrustDomain:    trustDomain,
		TrustBundlePEM: func() []byte { return w.bundle.Load().([]byte) },
		Log:            slog.New(slog.DiscardHandler),
		OnChange: func(in *translate.Input) {
			w.mu.Lock()
			w.received = append(w.received, in)
			w.rendered = append(w.rendered, render(in))
			w.mu.Unlock()
			w.inputs <- in
		},
	})
	if setup != nil {
		setup(w.Watcher)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w
}

// waitFor returns the first Input handed out from now on that satisfies ok.
func (w *watcher) waitFor(t *testing.T, what string, ok func(*translate.Input) bool) *translate.Input {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case in := <-w.inputs:
			if ok(in) {
				return in
			}
		case <-timeout:
			t.Fatalf("no Input with %s within 10s; current:\n%s", what, render(w.Current()))
			return nil
		}
	}
}

// checkImmutable fails if any Input handed out changed since.
func (w *watcher) checkImmutable(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, in := range w.received {
		if got := render(in); got != w.rendered[i] {
			t.Errorf("Input %d changed after it was handed out:\nthen:\n%s\nnow:\n%s", i, w.rendered[i], got)
		}
	}
}

func workloadIDs(in *translate.Input, ns, svc string) []string {
	var ids []string
	for _, w := range in.Workloads[translate.ServiceKey{Namespace: ns, Name: svc}] {
		ids = append(ids, w.GetId())
	}
	return ids
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWatcherFollowsStore(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	w := startWatcher(t, st, nil)
	payments := translate.ServiceKey{Namespace: "default", Name: "payments"}

	first := w.waitFor(t, "the initial load", func(*translate.Input) bool { return true })
	if first.TrustDomain != trustDomain || string(first.TrustBundlePEM) != "bundle-1" {
		t.Errorf("initial Input: trust domain %q, bundle %q", first.TrustDomain, first.TrustBundlePEM)
	}
	if first.Mesh.MTLS.Mode != v1alpha1.MTLSStrict || first.Mesh.CertificateTTL.Duration != v1alpha1.DefaultCertificateTTL {
		t.Errorf("initial Mesh %+v, want the defaults", first.Mesh)
	}
	if len(first.Services) != 0 || len(first.Workloads) != 0 {
		t.Errorf("initial Input of an empty store: %s", render(first))
	}

	steps := []struct {
		name   string
		change func() error
		want   func(*translate.Input) bool
	}{
		{
			name: "service applied",
			change: func() error {
				_, err := st.Apply(ctx, []*v1alpha1.Object{service("default", "payments", 8080)})
				return err
			},
			want: func(in *translate.Input) bool {
				s := in.Services[payments]
				// Specs are defaulted: the protocol was left out.
				return s != nil && s.Ports[0].Port == 8080 && s.Ports[0].Protocol == v1alpha1.ProtocolHTTP
			},
		},
		{
			name: "workloads registered",
			change: func() error {
				for _, addr := range []string{"127.0.1.2:15006", "127.0.1.1:15006", "127.0.1.3:15006"} {
					if _, err := st.PutWorkload(ctx, workload("default", "payments", addr), clientv3.NoLease); err != nil {
						return err
					}
				}
				return nil
			},
			want: func(in *translate.Input) bool {
				return slices.Equal(workloadIDs(in, "default", "payments"), []string{
					"payments.default@127.0.1.1:15006", "payments.default@127.0.1.2:15006", "payments.default@127.0.1.3:15006",
				})
			},
		},
		{
			name: "workload updated",
			change: func() error {
				wl := workload("default", "payments", "127.0.1.2:15006")
				wl.Ready = false
				_, err := st.PutWorkload(ctx, wl, clientv3.NoLease)
				return err
			},
			want: func(in *translate.Input) bool {
				ws := in.Workloads[payments]
				return len(ws) == 3 && !ws[1].GetReady()
			},
		},
		{
			name:   "mesh applied",
			change: func() error { _, err := st.Apply(ctx, []*v1alpha1.Object{mesh(time.Hour)}); return err },
			want: func(in *translate.Input) bool {
				return in.Mesh.CertificateTTL.Duration == time.Hour && in.Mesh.MTLS.Mode == v1alpha1.MTLSStrict
			},
		},
		{
			name: "service and a workload deleted",
			change: func() error {
				if err := st.Delete(ctx, "Service", "default", "payments"); err != nil {
					return err
				}
				_, err := st.Client().Delete(ctx, store.EndpointKey("default", "payments", "payments.default@127.0.1.1:15006"))
				return err
			},
			want: func(in *translate.Input) bool {
				return in.Services[payments] == nil && len(in.Workloads[payments]) == 2
			},
		},
		{
			name: "last workloads deleted",
			change: func() error {
				_, err := st.Client().Delete(ctx, store.PrefixEndpoints, clientv3.WithPrefix())
				return err
			},
			want: func(in *translate.Input) bool {
				_, present := in.Workloads[payments]
				return !present
			},
		},
		{
			name:   "mesh deleted",
			change: func() error { return st.Delete(ctx, "Mesh", "", "default") },
			want: func(in *translate.Input) bool {
				return in.Mesh.CertificateTTL.Duration == v1alpha1.DefaultCertificateTTL
			},
		},
	}
	for _, step := range steps {
		if err := step.change(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		w.waitFor(t, step.name, step.want)
	}
	w.checkImmutable(t)
	if len(first.Services) != 0 || len(first.Workloads) != 0 {
		t.Errorf("the first Input changed: %s", render(first))
	}
}

func TestWatcherBatchesOneTransaction(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	w := startWatcher(t, st, nil)
	w.waitFor(t, "the initial load", func(*translate.Input) bool { return true })

	objs := []*v1alpha1.Object{service("a", "x", 1), service("b", "y", 2), service("c", "z", 3), mesh(time.Hour)}
	if _, err := st.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	// One transaction is one watch response, so one Input holds all of it.
	in := w.waitFor(t, "any change", func(*translate.Input) bool { return true })
	if len(in.Services) != 3 || in.Mesh.CertificateTTL.Duration != time.Hour {
		t.Errorf("the first Input after a 4-object apply holds part of it:\n%s", render(in))
	}
}

func TestWatcherNotify(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	if _, err := st.Apply(ctx, []*v1alpha1.Object{service("default", "payments", 80)}); err != nil {
		t.Fatal(err)
	}
	w := startWatcher(t, st, nil)
	before := w.waitFor(t, "the service", func(in *translate.Input) bool { return len(in.Services) == 1 })

	w.bundle.Store([]byte("bundle-2"))
	w.Notify()
	after := w.waitFor(t, "the new bundle", func(in *translate.Input) bool { return string(in.TrustBundlePEM) == "bundle-2" })
	if len(after.Services) != 1 {
		t.Errorf("Input after Notify lost the services: %s", render(after))
	}
	if string(before.TrustBundlePEM) != "bundle-1" {
		t.Errorf("Notify changed an Input already handed out: bundle %q", before.TrustBundlePEM)
	}
	w.checkImmutable(t)
}

func TestWatcherReloadsAfterCompaction(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	var loads atomic.Int32
	w := startWatcher(t, st, func(w *meshstate.Watcher) {
		meshstate.SetAfterLoad(w, func() {
			if loads.Add(1) > 1 {
				return
			}
			// Change the store twice and compact it between the load and
			// the watch, so the watch from load+1 finds its start compacted.
			if _, err := st.Apply(ctx, []*v1alpha1.Object{service("default", "payments", 80)}); err != nil {
				t.Errorf("apply: %v", err)
			}
			resp, err := st.Client().Put(ctx, "/weft/tokens/t", "1")
			if err != nil {
				t.Errorf("put: %v", err)
				return
			}
			if _, err := st.Client().Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
				t.Errorf("compact: %v", err)
			}
		})
	})
	w.waitFor(t, "the service applied under compaction", func(in *translate.Input) bool { return len(in.Services) == 1 })
	if n := loads.Load(); n < 2 {
		t.Errorf("loaded %d times, want a reload after the compacted watch", n)
	}
}

func TestWatcherIgnoresWhatItDoesNotUnderstand(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	junk := func(prefix string) map[string]string {
		mismatched, _ := protojson.Marshal(workload("default", "other", "127.0.1.9:15006"))
		return map[string]string{
			"/weft/resources/service/default/" + prefix + "broken": "not json",
			"/weft/resources/gadget/default/" + prefix + "g":       `{"kind":"Gadget"}`,
			"/weft/resources/" + prefix + "short":                  "{}",
			"/weft/endpoints/" + prefix + "short":                  "{}",
			"/weft/endpoints/default/payments/" + prefix + "bad":   "not json",
			"/weft/endpoints/default/payments/" + prefix + "wrong": string(mismatched),
			"/weft/elsewhere/" + prefix + "x":                      "1",
			"/weft/tokens/" + prefix + "t":                         "1",
		}
	}
	put := func(kvs map[string]string) {
		for k, v := range kvs {
			if _, err := st.Client().Put(ctx, k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(junk("load-")) // read by the initial load
	w := startWatcher(t, st, nil)
	first := w.waitFor(t, "the initial load", func(*translate.Input) bool { return true })
	if len(first.Services) != 0 || len(first.Workloads) != 0 {
		t.Errorf("initial Input took in junk:\n%s", render(first))
	}
	put(junk("watch-")) // seen by the watch
	if _, err := st.Apply(ctx, []*v1alpha1.Object{service("default", "marker", 80)}); err != nil {
		t.Fatal(err)
	}
	in := w.waitFor(t, "the marker service", func(in *translate.Input) bool { return len(in.Services) > 0 })
	if len(in.Services) != 1 || len(in.Workloads) != 0 {
		t.Errorf("Input took in junk:\n%s", render(in))
	}
}

func TestRunReturnsWhenStoreCloses(t *testing.T) {
	st := storetest.New(t)
	loaded := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- meshstate.Run(context.Background(), st, meshstate.Options{
			Log: slog.New(slog.DiscardHandler),
			OnChange: func(*translate.Input) {
				select {
				case loaded <- struct{}{}:
				default:
				}
			},
		})
	}()
	<-loaded
	st.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("Run returned nil after the store closed, want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the store closed")
	}
}

// TestInputListsWorkloadsAsTheStore checks that an Input lists the
// workloads it holds as the store lists them, for every filter: the
// control plane's periodic readers (telemetry, Prometheus discovery) list
// from the Input instead of reading and decoding every workload again.
func TestInputListsWorkloadsAsTheStore(t *testing.T) {
	st := storetest.New(t)
	ctx := testContext(t)
	notReady := workload("default", "payments", "127.0.1.9:15006")
	notReady.Ready = false
	all := []*meshv1.Workload{
		workload("shop", "cart", "127.0.1.2:15006"),
		workload("default", "payments", "127.0.1.2:15006"),
		workload("default", "payments", "127.0.1.1:15006"),
		workload("default", "cart", "127.0.1.3:15006"),
		workload("default", "orphan", "127.0.1.4:15006"), // no Service resource
		notReady,
	}
	if _, err := st.Apply(ctx, []*v1alpha1.Object{service("default", "payments", 8080), service("default", "cart", 8080), service("shop", "cart", 8080)}); err != nil {
		t.Fatal(err)
	}
	for _, wl := range all {
		if _, err := st.PutWorkload(ctx, wl, clientv3.NoLease); err != nil {
			t.Fatalf("put %s: %v", wl.GetId(), err)
		}
	}
	w := startWatcher(t, st, nil)
	in := w.waitFor(t, "every workload", func(in *translate.Input) bool {
		return len(in.ListWorkloads("", "")) == len(all)
	})
	for _, f := range []struct{ namespace, service string }{
		{"", ""}, {"default", ""}, {"default", "payments"}, {"", "cart"}, {"default", "orphan"}, {"nowhere", ""}, {"default", "nothing"},
	} {
		want, err := st.ListWorkloads(ctx, f.namespace, f.service)
		if err != nil {
			t.Fatalf("store ListWorkloads(%q, %q): %v", f.namespace, f.service, err)
		}
		got := in.ListWorkloads(f.namespace, f.service)
		if len(got) != len(want) {
			t.Errorf("ListWorkloads(%q, %q): %d workloads, the store lists %d", f.namespace, f.service, len(got), len(want))
			continue
		}
		for i := range want {
			if !proto.Equal(got[i], want[i]) {
				t.Errorf("ListWorkloads(%q, %q)[%d] = %v, the store lists %v", f.namespace, f.service, i, got[i], want[i])
			}
		}
	}
}
