package xdsclient_test

import (
	"errors"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	proxyruntime "github.com/weftmesh/weft/proxy/runtime"
)

const (
	httpProto = v1alpha1.ProtocolHTTP
	tcpProto  = v1alpha1.ProtocolTCP
)

// TestSubscriptionOrderAndSync: the proxy first asks for what it can name
// without having seen anything (clusters and listeners as wildcards, the
// trust bundle by name), asks for endpoints and routes once accepted
// clusters and listeners name them, and is synced only when every type has
// been applied.
func TestSubscriptionOrderAndSync(t *testing.T) {
	cp := startControlPlane(t)
	n := webNode(paymentsUpstream)
	p := startProxy(t, cp.addr, n)

	waitFor(t, "the first requests", func() bool { return len(cp.requests()) >= 3 })
	want := []struct {
		typeURL string
		names   []string
	}{{cds, nil}, {lds, nil}, {sds, []string{xdsmeta.SecretRootCA}}}
	reqs := cp.requests()
	if len(reqs) != len(want) {
		t.Fatalf("got %d requests before any response, want %d: %v", len(reqs), len(want), reqs)
	}
	for i, w := range want {
		r := reqs[i]
		if r.GetTypeUrl() != w.typeURL || !slices.Equal(r.GetResourceNames(), w.names) ||
			r.GetVersionInfo() != "" || r.GetResponseNonce() != "" || r.GetNode().GetId() != n.ID {
			t.Errorf("request %d: got %s names %q version %q nonce %q node %q, want %s names %q, no version or nonce, node %q",
				i, r.GetTypeUrl(), r.GetResourceNames(), r.GetVersionInfo(), r.GetResponseNonce(), r.GetNode().GetId(),
				w.typeURL, w.names, n.ID)
		}
	}
	if p.client.Synced() {
		t.Error("Synced before anything was received")
	}

	res := translateFor(t, meshInput(t, newBundle(t), map[string]v1alpha1.Protocol{"web": httpProto, "payments": httpProto}), n)
	// First everything but the endpoints: four types are applied and ACKed,
	// and the proxy is still not synced.
	cp.set(n, snapshotOf(res, eds))
	cp.waitAcked(res, cds, lds, rds, sds)
	waitFor(t, "an EDS request", func() bool { return cp.last(eds) != nil })
	if p.client.Synced() {
		t.Fatal("Synced while no endpoints have been received")
	}
	for _, follow := range []struct{ typeURL, after string }{{eds, cds}, {rds, lds}} {
		first := cp.index(func(r request) bool { return r.GetTypeUrl() == follow.typeURL })
		ack := cp.index(ackOf(follow.after, res.Version(follow.after)))
		if first < ack {
			t.Errorf("%s was requested (request %d) before %s was ACKed (request %d)", follow.typeURL, first, follow.after, ack)
		}
		if got, want := cp.requests()[first].GetResourceNames(), namesOf(res, follow.typeURL); !slices.Equal(got, want) {
			t.Errorf("first %s request names %q, want %q", follow.typeURL, got, want)
		}
	}

	cp.set(n, snapshotOf(res))
	cp.waitAcked(res, eds)
	waitFor(t, "Synced", p.client.Synced)
	got := p.rt.lastAccepted()
	for _, typeURL := range allTypes {
		if k, w := keysOf(got, typeURL), namesOf(res, typeURL); !slices.Equal(k, w) {
			t.Errorf("applied %s: %q, want %q", typeURL, k, w)
		}
		if v, w := p.client.Versions()[typeURL], res.Version(typeURL); v != w {
			t.Errorf("Versions()[%s] = %q, want %q", typeURL, v, w)
		}
	}
	// While the Apply that completed the set ran, the client did not yet
	// claim to be synced.
	for i, c := range p.rt.history() {
		if c.syncedBefore {
			t.Errorf("Apply %d ran while Synced() already held", i)
		}
	}
}

// TestNamesFollowClustersAndListeners: the EDS and RDS subscriptions are
// always the names the accepted clusters and listeners use.
func TestNamesFollowClustersAndListeners(t *testing.T) {
	cp := startControlPlane(t)
	n := webNode(paymentsUpstream)
	p := startProxy(t, cp.addr, n)
	bundle := newBundle(t)
	services := map[string]v1alpha1.Protocol{"web": httpProto, "payments": httpProto}
	prev := translateFor(t, meshInput(t, bundle, services), n)
	p.sync(t, cp, n, prev)

	for _, step := range []struct {
		name   string
		change func(map[string]v1alpha1.Protocol)
		// eds and rds are how many names the step adds to each
		// subscription (negative: removes from it).
		eds, rds int
	}{
		{name: "a new service brings its cluster and endpoints", change: func(s map[string]v1alpha1.Protocol) { s["search"] = httpProto }, eds: +1},
		{name: "an upstream turning TCP drops its route", change: func(s map[string]v1alpha1.Protocol) { s["payments"] = tcpProto }, rds: -1},
		{name: "a service leaving takes its cluster and endpoints", change: func(s map[string]v1alpha1.Protocol) { delete(s, "search") }, eds: -1},
	} {
		step.change(services)
		res := translateFor(t, meshInput(t, bundle, services), n)
		for typeURL, delta := range map[string]int{eds: step.eds, rds: step.rds} {
			if d := len(namesOf(res, typeURL)) - len(namesOf(prev, typeURL)); d != delta {
				t.Fatalf("%s: the test meant %s names to change by %d, translation changed them by %d", step.name, typeURL, delta, d)
			}
		}
		cp.set(n, snapshotOf(res))
		for _, typeURL := range []string{eds, rds} {
			want := namesOf(res, typeURL)
			waitFor(t, step.name+": the "+typeURL+" subscription "+strings.Join(want, ","), func() bool {
				r := cp.last(typeURL)
				return r != nil && slices.Equal(r.GetResourceNames(), want)
			})
		}
		waitFor(t, step.name+": the new resources applied", func() bool {
			got := p.rt.lastAccepted()
			for _, typeURL := range allTypes {
				if !slices.Equal(keysOf(got, typeURL), namesOf(res, typeURL)) {
					return false
				}
			}
			return true
		})
		cp.waitAcked(res, allTypes...)
		prev = res
	}
}

// TestUnsubscribesWhenNothingIsNamed: when the last cluster needing
// endpoints goes, the proxy stops asking for endpoints instead of keeping
// the old names, and the endpoints are withdrawn.
func TestUnsubscribesWhenNothingIsNamed(t *testing.T) {
	cp := startControlPlane(t)
	n := webNode() // no upstreams: only the HTTP proxy reaches other services
	p := startProxy(t, cp.addr, n)
	bundle := newBundle(t)
	before := translateFor(t, meshInput(t, bundle, map[string]v1alpha1.Protocol{"web": httpProto, "payments": httpProto}), n)
	if len(namesOf(before, eds)) == 0 {
		t.Fatal("the test needs endpoints to start with")
	}
	p.sync(t, cp, n, before)

	after := translateFor(t, meshInput(t, bundle, nil), n)
	if names := namesOf(after, eds); len(names) != 0 {
		t.Fatalf("the test needs no endpoints in the end, translation gives %q", names)
	}
	cp.set(n, snapshotOf(after))
	waitFor(t, "an EDS request naming nothing", func() bool {
		r := cp.last(eds)
		return r != nil && len(r.GetResourceNames()) == 0
	})
	waitFor(t, "the endpoints withdrawn", func() bool { return len(p.rt.lastAccepted().Endpoints) == 0 })
	cp.waitAcked(after, allTypes...)
	if !p.client.Synced() {
		t.Error("no longer Synced")
	}
}

// TestRejectedUpdateIsNACKed: an update the runtime refuses is NACKed with
// the runtime's reason on the last good version; the last good resources of
// that type stay in every later candidate; a later good version is ACKed.
func TestRejectedUpdateIsNACKed(t *testing.T) {
	cp := startControlPlane(t)
	n := webNode(paymentsUpstream)
	p := startProxy(t, cp.addr, n)
	bundle := newBundle(t)
	services := map[string]v1alpha1.Protocol{"web": httpProto, "payments": httpProto}
	good := translateFor(t, meshInput(t, bundle, services), n)
	p.sync(t, cp, n, good)

	const refused = "outbound|search.default"
	const reason = `cluster "outbound|search.default": lb_policy: MAGLEV is not supported`
	p.rt.setReject(func(r *proxyruntime.Resources) error {
		if _, ok := r.Clusters[refused]; ok {
			return errors.New(reason)
		}
		return nil
	})
	withSearch := maps.Clone(services)
	withSearch["search"] = httpProto
	bad := translateFor(t, meshInput(t, bundle, withSearch), n)
	cp.set(n, snapshotOf(bad))

	isNACK := func(r request) bool { return r.GetTypeUrl() == cds && r.GetErrorDetail() != nil }
	waitFor(t, "the NACK", func() bool { return cp.index(isNACK) >= 0 })
	nack := cp.requests()[cp.index(isNACK)]
	if got := nack.GetErrorDetail().GetMessage(); got != reason {
		t.Errorf("NACK message %q, want the runtime's %q", got, reason)
	}
	if got := codes.Code(nack.GetErrorDetail().GetCode()); got != codes.InvalidArgument {
		t.Errorf("NACK code %v, want InvalidArgument", got)
	}
	if got, want := nack.GetVersionInfo(), good.Version(cds); got != want {
		t.Errorf("NACK stands on version %q, want the last good %q", got, want)
	}
	if v, ok := cp.sentVersion(nack); !ok || v != bad.Version(cds) {
		t.Errorf("NACK answers the response of version %q, want the rejected %q", v, bad.Version(cds))
	}
	if got := p.client.Versions()[cds]; got != good.Version(cds) {
		t.Errorf("Versions()[CDS] = %q after the NACK, want the last good %q", got, good.Version(cds))
	}
	waitFor(t, "the nack event", func() bool { return len(p.eventsOf("nack")) > 0 })
	if e := p.eventsOf("nack")[0]; e.TypeURL != cds || e.Version != bad.Version(cds) || e.Err == nil || e.Err.Error() != reason {
		t.Errorf("nack event %+v, want CDS version %q with the runtime's error", e, bad.Version(cds))
	}

	// Only the trust bundle changes next: its candidate carries the clusters
	// of the last good version, not the rejected ones.
	rotated := translateFor(t, meshInput(t, newBundle(t), withSearch), n)
	if rotated.Version(cds) != bad.Version(cds) || rotated.Version(sds) == bad.Version(sds) {
		t.Fatal("the test meant only the trust bundle to change")
	}
	cp.set(n, snapshotOf(rotated))
	cp.waitAcked(rotated, sds)
	wantRoot := rotated.Secrets[0]
	sawRotation := false
	calls := p.rt.history()
	rejected := slices.IndexFunc(calls, func(c applyCall) bool { return c.err != nil })
	for i, c := range calls[rejected+1:] {
		if c.err != nil {
			t.Errorf("Apply %d after the NACK was rejected too: %v", rejected+1+i, c.err)
			continue
		}
		if got, want := keysOf(c.res, cds), namesOf(good, cds); !slices.Equal(got, want) {
			t.Errorf("Apply %d after the NACK holds clusters %q, want the last good %q", rejected+1+i, got, want)
		}
		if proto.Equal(c.res.Secrets[xdsmeta.SecretRootCA], wantRoot) {
			sawRotation = true
		}
	}
	if !sawRotation {
		t.Error("the new trust bundle was ACKed but never applied")
	}

	// A later version without the refused cluster is applied and ACKed.
	withCatalog := maps.Clone(services)
	withCatalog["catalog"] = httpProto
	fixed := translateFor(t, meshInput(t, newBundle(t), withCatalog), n)
	cp.set(n, snapshotOf(fixed))
	cp.waitAcked(fixed, allTypes...)
	waitFor(t, "the fixed version applied", func() bool {
		return slices.Equal(keysOf(p.rt.lastAccepted(), eds), namesOf(fixed, eds))
	})
	for _, typeURL := range allTypes {
		if got, want := keysOf(p.rt.lastAccepted(), typeURL), namesOf(fixed, typeURL); !slices.Equal(got, want) {
			t.Errorf("applied %s %q, want %q", typeURL, got, want)
		}
		if got, want := p.client.Versions()[typeURL], fixed.Version(typeURL); got != want {
			t.Errorf("Versions()[%s] = %q, want %q", typeURL, got, want)
		}
	}
}

// TestReconnectsAfterControlPlaneRestart: Run outlives the stream; the
// proxy keeps its state while the control plane is away, tells the new one
// the versions it holds, and applies what it is sent next on top.
func TestReconnectsAfterControlPlaneRestart(t *testing.T) {
	cp := startControlPlane(t)
	n := webNode(paymentsUpstream)
	p := startProxy(t, cp.addr, n)
	bundle := newBundle(t)
	services := map[string]v1alpha1.Protocol{"web": httpProto, "payments": httpProto}
	res := translateFor(t, meshInput(t, bundle, services), n)
	p.sync(t, cp, n, res)
	versions := p.client.Versions()
	applied := len(p.rt.history())

	cp.restart() // an empty cache: it serves nothing until told to
	var reqs []request
	waitFor(t, "the requests of a new stream", func() bool {
		reqs = nil
		for _, r := range cp.requests() {
			if r.gen == cp.gen {
				reqs = append(reqs, r)
			}
		}
		return len(reqs) >= len(allTypes)
	})
	for i, typeURL := range allTypes {
		r := reqs[i]
		wantNames := namesOf(res, typeURL)
		switch typeURL {
		case cds, lds:
			wantNames = nil
		}
		if r.GetTypeUrl() != typeURL || r.stream != reqs[0].stream || !slices.Equal(r.GetResourceNames(), wantNames) ||
			r.GetVersionInfo() != res.Version(typeURL) || r.GetResponseNonce() != "" {
			t.Errorf("request %d on the new stream: got %s names %q version %q nonce %q, want %s names %q version %q and no nonce",
				i, r.GetTypeUrl(), r.GetResourceNames(), r.GetVersionInfo(), r.GetResponseNonce(),
				typeURL, wantNames, res.Version(typeURL))
		}
	}
	// The node goes with each stream's first request only, as Envoy's
	// set_node_on_first_message_only: the server keeps it for the stream.
	for i, w := range cp.wireNodes() {
		if len(w) < 2 || !w[0] || slices.Contains(w[1:], true) {
			t.Errorf("stream %d: requests carried the node %v, want on the first one only", i, w)
		}
	}
	if !p.client.Synced() {
		t.Error("no longer Synced after the control plane restarted")
	}
	if got := p.client.Versions(); !maps.Equal(got, versions) {
		t.Errorf("Versions() = %v after the restart, want %v", got, versions)
	}
	if got := len(p.rt.history()); got != applied {
		t.Errorf("%d candidates applied while the control plane had nothing to say, want none", got-applied)
	}
	select {
	case err := <-p.done:
		t.Fatalf("Run returned %v when the stream ended", err)
	default:
	}
	if len(p.eventsOf("disconnected")) == 0 {
		t.Error("no disconnected event")
	}

	// The new server sends only the types whose version differs from what
	// the proxy said it holds.
	services["search"] = httpProto
	next := translateFor(t, meshInput(t, bundle, services), n)
	var changed []string
	for _, typeURL := range allTypes {
		if next.Version(typeURL) != res.Version(typeURL) {
			changed = append(changed, typeURL)
		}
	}
	if !slices.Contains(changed, cds) {
		t.Fatalf("the test meant the clusters to change; changed: %q", changed)
	}
	cp.set(n, snapshotOf(next))
	cp.waitAcked(next, changed...)
	if got := len(p.eventsOf("connected")); got != 2 {
		t.Errorf("%d connected events, want 2", got)
	}
	waitFor(t, "the new server's resources applied", func() bool {
		got := p.rt.lastAccepted()
		for _, typeURL := range allTypes {
			if !slices.Equal(keysOf(got, typeURL), namesOf(next, typeURL)) {
				return false
			}
		}
		return true
	})
}

// TestRunReturnsWhenCancelled: Run returns nil once its context ends,
// whether connected or waiting for an absent control plane, and leaves no
// goroutine behind.
func TestRunReturnsWhenCancelled(t *testing.T) {
	for _, tc := range []struct {
		name     string
		serverUp bool
	}{{"connected", true}, {"control plane away", false}} {
		t.Run(tc.name, func(t *testing.T) {
			cp := startControlPlane(t)
			n := webNode(paymentsUpstream)
			p := startProxy(t, cp.addr, n)
			p.sync(t, cp, n, translateFor(t, meshInput(t, newBundle(t), map[string]v1alpha1.Protocol{"web": httpProto}), n))
			if !tc.serverUp {
				cp.stop()
				waitFor(t, "the disconnect", func() bool { return len(p.eventsOf("disconnected")) > 0 })
			}
			if err := p.stop(); err != nil {
				t.Fatal(err)
			}
			if stacks := clientGoroutines(); stacks != "" {
				t.Errorf("goroutines of the client outlived Run:\n%s", stacks)
			}
		})
	}
}

// clientGoroutines returns the stacks of goroutines running the client's code.
func clientGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		// Only running frames count: a goroutine that has returned from our
		// code may still name it as its creator while it exits.
		running, _, _ := strings.Cut(g, "\ncreated by ")
		if strings.Contains(running, "proxy/xdsclient.(*Client)") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
