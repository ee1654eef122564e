package xdsclient_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
	"github.com/weftmesh/weft/internal/testpki"
	"github.com/weftmesh/weft/proxy/runtime"
	"github.com/weftmesh/weft/proxy/xdsclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// patience bounds every wait for something that should happen.
const patience = 5 * time.Second

var quiet = slog.New(slog.DiscardHandler)

// The five types, in the order the client first asks for them.
const (
	cds = resource.ClusterType
	eds = resource.EndpointType
	lds = resource.ListenerType
	rds = resource.RouteType
	sds = resource.SecretType
)

var allTypes = []string{cds, eds, lds, rds, sds}

// webNode is the proxy under test: web.default with one upstream and the
// explicit HTTP proxy, so that it has listeners naming routes (RDS) and
// clusters whose endpoints come over EDS.
func webNode(upstreams ...xdsmeta.Upstream) xdsmeta.Node {
	return xdsmeta.Node{
		ID: xdsmeta.WorkloadID("web", "default", "127.0.0.1:15006"), Service: "web", Namespace: "default", Version: "v1",
		Inbound: "127.0.0.1:15006", App: "127.0.0.1:8080", Admin: "127.0.0.1:15000", HTTPProxy: "127.0.0.1:15080",
		Upstreams: upstreams,
	}
}

var paymentsUpstream = xdsmeta.Upstream{Service: "payments", Namespace: "default", Listen: "127.0.0.1:9001"}

// meshInput is an Input holding the given services of namespace default,
// each with two ready workloads.
func meshInput(t *testing.T, bundle []byte, services map[string]v1alpha1.Protocol) *translate.Input {
	t.Helper()
	in := &translate.Input{
		TrustDomain:    "weft.local",
		TrustBundlePEM: bundle,
		Services:       map[translate.ServiceKey]*v1alpha1.ServiceSpec{},
		Workloads:      map[translate.ServiceKey][]*meshv1.Workload{},
	}
	for i, name := range slices.Sorted(maps.Keys(services)) {
		key := translate.ServiceKey{Namespace: "default", Name: name}
		in.Services[key] = &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "main", Port: 8080, Protocol: services[name]}}}
		for j := range 2 {
			addr := fmt.Sprintf("127.0.%d.%d:15006", i+1, j+1)
			in.Workloads[key] = append(in.Workloads[key], &meshv1.Workload{
				Id: xdsmeta.WorkloadID(name, "default", addr), Service: name, Namespace: "default", Version: "v1",
				Address: addr, AppAddress: "127.0.0.1:8080", Ready: true,
			})
		}
	}
	return in
}

func newBundle(t *testing.T) []byte { return testpki.NewCA(t, "weft test root").PEM() }

func translateFor(t *testing.T, in *translate.Input, n xdsmeta.Node) *translate.Resources {
	t.Helper()
	res, err := translate.ForNode(in, n)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// snapshotOf makes a snapshot with one version per type, as Weft's control
// plane does, leaving out the types in without.
func snapshotOf(res *translate.Resources, without ...string) *cache.Snapshot {
	var snap cache.Snapshot
	for typeURL, items := range res.ByType() {
		if slices.Contains(without, typeURL) {
			continue
		}
		snap.Resources[cache.GetResponseType(typeURL)] = cache.NewResources(res.Version(typeURL), items)
	}
	return &snap
}

// namesOf returns the sorted names of translated resources of one type.
func namesOf(res *translate.Resources, typeURL string) []string {
	var out []string
	for _, r := range res.ByType()[typeURL] {
		out = append(out, cache.GetResourceName(r))
	}
	sort.Strings(out)
	return out
}

// keysOf returns the sorted names of the applied resources of one type.
func keysOf(r *runtime.Resources, typeURL string) []string {
	var keys []string
	switch typeURL {
	case cds:
		keys = slices.Collect(maps.Keys(r.Clusters))
	case eds:
		keys = slices.Collect(maps.Keys(r.Endpoints))
	case lds:
		keys = slices.Collect(maps.Keys(r.Listeners))
	case rds:
		keys = slices.Collect(maps.Keys(r.Routes))
	case sds:
		keys = slices.Collect(maps.Keys(r.Secrets))
	}
	sort.Strings(keys)
	return keys
}

// controlPlane is a real go-control-plane ADS server (snapshot cache in ADS
// mode) on 127.0.0.1, recording every request it receives.
type controlPlane struct {
	t     *testing.T
	addr  string
	cache cache.SnapshotCache
	stop  func()
	gen   int // incremented by every (re)start

	mu   sync.Mutex
	reqs []request
	sent map[sentKey]string // version of each response
	// wire records, per stream the server accepted (in order), whether
	// each request carried the node as received, before the server
	// filled it in.
	wire [][]bool
}

// wireStream records what each request on one stream carried.
type wireStream struct {
	grpc.ServerStream
	cp *controlPlane
	i  int
}

func (w *wireStream) RecvMsg(m any) error {
	err := w.ServerStream.RecvMsg(m)
	if req, ok := m.(*discoveryv3.DiscoveryRequest); ok && err == nil {
		w.cp.mu.Lock()
		w.cp.wire[w.i] = append(w.cp.wire[w.i], req.GetNode() != nil)
		w.cp.mu.Unlock()
	}
	return err
}

// wireNodes returns, per stream, whether each request carried the node.
func (cp *controlPlane) wireNodes() [][]bool {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	out := make([][]bool, len(cp.wire))
	for i, w := range cp.wire {
		out[i] = slices.Clone(w)
	}
	return out
}

type request struct {
	gen    int
	stream int64
	*discoveryv3.DiscoveryRequest
}

type sentKey struct {
	gen    int
	stream int64
	nonce  string
}

func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, sent: map[sentKey]string{}}
	cp.start("127.0.0.1:0")
	t.Cleanup(func() { cp.stop() })
	return cp
}

// start serves on addr with a fresh cache, as a restarted control plane would.
func (cp *controlPlane) start(addr string) {
	cp.t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.addr = lis.Addr().String()
	cp.gen++
	gen := cp.gen
	cp.cache = cache.NewSnapshotCache(true, cache.IDHash{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ads := server.NewServer(ctx, cp.cache, server.CallbackFuncs{
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			cp.observe(gen, id, req)
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			cp.mu.Lock()
			cp.sent[sentKey{gen, id, resp.GetNonce()}] = resp.GetVersionInfo()
			cp.mu.Unlock()
		},
	})
	g := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		cp.mu.Lock()
		cp.wire = append(cp.wire, nil)
		w := &wireStream{ServerStream: ss, cp: cp, i: len(cp.wire) - 1}
		cp.mu.Unlock()
		return handler(srv, w)
	}))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, ads)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	cp.stop = func() {
		g.Stop()
		cancel()
		<-served
	}
}

// restart stops the server and starts a new one, with an empty cache, on
// the same address.
func (cp *controlPlane) restart() {
	cp.t.Helper()
	cp.stop()
	cp.start(cp.addr)
}

func (cp *controlPlane) observe(gen int, id int64, req *discoveryv3.DiscoveryRequest) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.reqs = append(cp.reqs, request{gen: gen, stream: id, DiscoveryRequest: proto.Clone(req).(*discoveryv3.DiscoveryRequest)})
	if req.GetErrorDetail() != nil {
		// As Weft's control plane does: the snapshot cache answers any
		// request whose version differs from the snapshot's, so a NACK
		// standing on the old version would get the rejected response
		// straight back, again and again. It stands on the rejected one.
		if v, ok := cp.sent[sentKey{gen, id, req.GetResponseNonce()}]; ok {
			req.VersionInfo = v
		}
	}
}

func (cp *controlPlane) set(n xdsmeta.Node, snap *cache.Snapshot) {
	cp.t.Helper()
	if err := cp.cache.SetSnapshot(context.Background(), n.ID, snap); err != nil {
		cp.t.Fatal(err)
	}
}

// requests returns what the server received so far, in order.
func (cp *controlPlane) requests() []request {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return slices.Clone(cp.reqs)
}

// sentVersion returns the version of the response a request answers.
func (cp *controlPlane) sentVersion(r request) (string, bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	v, ok := cp.sent[sentKey{r.gen, r.stream, r.GetResponseNonce()}]
	return v, ok
}

// index returns the position of the first request matching match, or -1.
func (cp *controlPlane) index(match func(request) bool) int {
	return slices.IndexFunc(cp.requests(), match)
}

// last returns the last request of a type, or nil.
func (cp *controlPlane) last(typeURL string) *request {
	reqs := cp.requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].GetTypeUrl() == typeURL {
			return &reqs[i]
		}
	}
	return nil
}

// ackOf matches the ACK of a version of a type.
func ackOf(typeURL, version string) func(request) bool {
	return func(r request) bool {
		return r.GetTypeUrl() == typeURL && r.GetResponseNonce() != "" && r.GetErrorDetail() == nil &&
			r.GetVersionInfo() == version
	}
}

// waitAcked waits until the running server has seen the ACK of every type's
// version in res.
func (cp *controlPlane) waitAcked(res *translate.Resources, types ...string) {
	cp.t.Helper()
	gen := cp.gen
	for _, typeURL := range types {
		acked := ackOf(typeURL, res.Version(typeURL))
		waitFor(cp.t, "the ACK of "+typeURL+" "+res.Version(typeURL), func() bool {
			return cp.index(func(r request) bool { return r.gen == gen && acked(r) }) >= 0
		})
	}
}

// applier stands in for the runtime: it records every candidate and
// rejects those reject refuses.
type applier struct {
	client *xdsclient.Client // set before Run starts

	mu     sync.Mutex
	calls  []applyCall
	reject func(*runtime.Resources) error
}

type applyCall struct {
	res *runtime.Resources
	// syncedBefore is what the client's Synced said while Apply ran.
	syncedBefore bool
	err          error
}

func (a *applier) Apply(r *runtime.Resources) error {
	synced := a.client.Synced()
	a.mu.Lock()
	defer a.mu.Unlock()
	var err error
	if a.reject != nil {
		err = a.reject(r)
	}
	a.calls = append(a.calls, applyCall{res: r, syncedBefore: synced, err: err})
	return err
}

func (a *applier) setReject(f func(*runtime.Resources) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reject = f
}

func (a *applier) history() []applyCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// lastAccepted returns the last candidate Apply accepted, or nil.
func (a *applier) lastAccepted() *runtime.Resources {
	calls := a.history()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].err == nil {
			return calls[i].res
		}
	}
	return nil
}

// proxy is an xdsclient.Client running against a control plane.
type proxy struct {
	client *xdsclient.Client
	rt     *applier
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []xdsclient.Event
}

func startProxy(t *testing.T, addr string, n xdsmeta.Node) *proxy {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Reconnect quickly once a restarted server listens again.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{rt: &applier{}, done: make(chan error, 1)}
	p.client = xdsclient.New(xdsclient.Options{
		Node: n.ToProto(), Conn: conn, Runtime: p.rt, Log: quiet,
		OnEvent: func(e xdsclient.Event) {
			p.mu.Lock()
			p.events = append(p.events, e)
			p.mu.Unlock()
		},
	})
	p.rt.client = p.client
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- p.client.Run(ctx) }()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Error(err)
		}
		conn.Close()
	})
	return p
}

// stop cancels Run and waits for it; it may be called more than once.
func (p *proxy) stop() error {
	p.cancel()
	select {
	case err, ok := <-p.done:
		if !ok {
			return nil
		}
		close(p.done)
		if err != nil {
			return fmt.Errorf("Run returned %v after its context ended, want nil", err)
		}
		return nil
	case <-time.After(patience):
		return fmt.Errorf("Run did not return within %v of its context ending", patience)
	}
}

func (p *proxy) eventsOf(kind string) []xdsclient.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []xdsclient.Event
	for _, e := range p.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// sync serves res to the proxy and waits until it applied and ACKed all of it.
func (p *proxy) sync(t *testing.T, cp *controlPlane, n xdsmeta.Node, res *translate.Resources) {
	t.Helper()
	cp.set(n, snapshotOf(res))
	cp.waitAcked(res, allTypes...)
	waitFor(t, "Synced", p.client.Synced)
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", patience, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
