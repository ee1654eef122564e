package translate

import (
	"bytes"
	"runtime"
	"sync"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
)

// checkSame fails unless the cached translation is the plain one, byte for
// byte and version for version.
func checkSame(t *testing.T, c *Cache, in *Input, tc testCase) *Resources {
	t.Helper()
	want, err := ForNode(in, tc.node)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ForNode(in, tc.node)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(render(t, want), render(t, got)) {
		t.Fatalf("%s: the cached translation differs:\nwant:\n%s\ngot:\n%s", tc.name, render(t, want), render(t, got))
	}
	for typeURL := range want.ByType() {
		if want.Version(typeURL) != got.Version(typeURL) {
			t.Errorf("%s: %s version %q, cached %q", tc.name, typeURL, want.Version(typeURL), got.Version(typeURL))
		}
	}
	return got
}

// TestCacheMatchesForNode follows one cache through changes of every input
// the shared resources depend on.
func TestCacheMatchesForNode(t *testing.T) {
	c := NewCache()
	for _, tc := range cases() {
		checkSame(t, c, input(tc.svcs, false), tc)
		checkSame(t, c, input(tc.svcs, true), tc)
	}
	tc := cases()[0]
	steps := []struct {
		name   string
		change func(*Input)
	}{
		{"a workload becomes ready", func(in *Input) {
			in.Workloads[ServiceKey{"default", "payments"}][2].Ready = true
		}},
		{"a workload's version changes", func(in *Input) {
			in.Workloads[ServiceKey{"default", "payments"}][0].Version = "v9"
		}},
		{"a workload leaves", func(in *Input) {
			k := ServiceKey{"default", "payments"}
			in.Workloads[k] = in.Workloads[k][1:]
		}},
		{"the protocol changes", func(in *Input) {
			in.Services[ServiceKey{"default", "payments"}].Ports[0].Protocol = v1alpha1.ProtocolTCP
		}},
		{"the trust domain changes", func(in *Input) { in.TrustDomain = "other.local" }},
		{"the bundle changes", func(in *Input) {
			in.TrustBundlePEM = []byte("-----BEGIN CERTIFICATE-----\nMIIBother\n-----END CERTIFICATE-----\n")
		}},
		{"a service goes", func(in *Input) {
			delete(in.Services, ServiceKey{"default", "payments"})
			delete(in.Workloads, ServiceKey{"default", "payments"})
		}},
	}
	in := input(tc.svcs, false)
	for _, step := range steps {
		// Each step starts from a fresh Input changed in place, as a
		// careless caller might: the cache must compare content.
		next := input(tc.svcs, false)
		*next = *in
		step.change(next)
		t.Run(step.name, func(t *testing.T) { checkSame(t, c, next, tc) })
		in = next
	}
	c.Prune(in)
	if _, ok := c.services[ServiceKey{"default", "payments"}]; ok {
		t.Error("Prune kept a service the Input no longer has")
	}
}

// TestCacheShares checks that two proxies that route to one service hold
// the same messages for it.
func TestCacheShares(t *testing.T) {
	tc := cases()[0]
	in := input(tc.svcs, false)
	c := NewCache()
	a, err := c.ForNode(in, node("default", "web", "127.0.1.1:15006", "payments=127.0.0.1:9001"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.ForNode(in, node("default", "api", "127.0.1.7:15006", "payments=127.0.0.1:9009"))
	if err != nil {
		t.Fatal(err)
	}
	last := func(r *Resources, typeURL resource.Type) any {
		items := r.ByType()[typeURL]
		return items[len(items)-1]
	}
	for _, typeURL := range []resource.Type{resource.ClusterType, resource.EndpointType, resource.RouteType, resource.SecretType} {
		if last(a, typeURL) != last(b, typeURL) {
			t.Errorf("%s: the two proxies hold different messages for payments", typeURL)
		}
	}
}

// TestCacheConcurrent translates from many goroutines (run with -race).
func TestCacheConcurrent(t *testing.T) {
	c := NewCache()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				tc := cases()[(i+j)%len(cases())]
				if _, err := c.ForNode(input(tc.svcs, j%2 == 0), tc.node); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// byName returns the resource of r named name, of any type.
func byName(t *testing.T, r *Resources, name string) types.Resource {
	t.Helper()
	for _, items := range r.ByType() {
		for _, m := range items {
			if resourceName(m) == name {
				return m
			}
		}
	}
	t.Fatalf("no resource %q", name)
	return nil
}

// TestCacheInternsReplicas checks that two replicas of a service, which
// bind the same upstream port and app address, hold one message for their
// identical listeners and inbound cluster, and that what differs between
// proxies is never shared: each proxy's cached translation is its own.
func TestCacheInternsReplicas(t *testing.T) {
	tc := cases()[0]
	in := input(tc.svcs, false)
	c := NewCache()
	replica := func(inbound, listen string) *Resources {
		t.Helper()
		return checkSame(t, c, in, testCase{name: inbound, node: node("default", "web", inbound, "payments="+listen)})
	}
	a := replica("127.0.1.1:15006", "127.0.0.1:9001")
	b := replica("127.0.1.2:15006", "127.0.0.1:9001")
	other := replica("127.0.1.3:15006", "127.0.0.1:9009")

	outbound := xdsmeta.OutboundListener("payments.default=127.0.0.1:9001")
	inboundCluster := xdsmeta.InboundCluster("web", "default")
	for _, name := range []string{outbound, inboundCluster} {
		if byName(t, a, name) != byName(t, b, name) {
			t.Errorf("%s: the replicas hold two copies", name)
		}
	}
	la, lb := byName(t, a, xdsmeta.InboundListener).(*listenerv3.Listener), byName(t, b, xdsmeta.InboundListener).(*listenerv3.Listener)
	if la == lb {
		t.Error("the replicas share an inbound listener, but they bind different addresses")
	}
	fa, fb := la.GetFilterChains()[0], lb.GetFilterChains()[0]
	if fa.GetFilters()[0].GetTypedConfig() != fb.GetFilters()[0].GetTypedConfig() {
		t.Error("the replicas' inbound listeners hold two copies of one connection manager")
	}
	if fa.GetTransportSocket().GetTypedConfig() != fb.GetTransportSocket().GetTypedConfig() {
		t.Error("the replicas' inbound listeners hold two copies of one TLS context")
	}
	if got := byName(t, other, xdsmeta.OutboundListener("payments.default=127.0.0.1:9009")); got == byName(t, a, outbound) {
		t.Error("a proxy that binds another port got the replicas' outbound listener")
	}
	if byName(t, other, inboundCluster) != byName(t, a, inboundCluster) {
		t.Error("the inbound cluster, the same for all three, is not shared")
	}
}

// TestCacheForgetsInterned checks that the interning table holds its
// messages weakly: once no translation result holds them, they go.
func TestCacheForgetsInterned(t *testing.T) {
	tc := cases()[0]
	c := NewCache()
	if _, err := c.ForNode(input(tc.svcs, false), tc.node); err != nil {
		t.Fatal(err)
	}
	interned := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.interned) + len(c.anys)
	}
	if interned() == 0 {
		t.Fatal("nothing interned")
	}
	deadline := time.Now().Add(5 * time.Second)
	for interned() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d interned messages outlived every result that held them", interned())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
