package xds

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
	"github.com/weftmesh/weft/internal/testpki"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	rpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	trustDomain = "weft.local"
	debounce    = 20 * time.Millisecond
	// quiet is how long a test waits to be sure nothing is sent: well past
	// the debounce and the push it would trigger.
	quiet = 10 * debounce
	// patience bounds every wait for something that should happen.
	patience = 10 * time.Second
)

// harness is an ADS server on 127.0.0.1 behind real mutual TLS.
type harness struct {
	t    *testing.T
	ca   *testpki.CA
	srv  *Server
	reg  *prometheus.Registry
	addr string
	logs *syncBuffer
}

type harnessOptions struct {
	debounce   time.Duration
	clientAuth tls.ClientAuthType
}

func newHarness(t *testing.T, opts harnessOptions) *harness {
	t.Helper()
	if opts.debounce == 0 {
		opts.debounce = debounce
	}
	if opts.clientAuth == tls.NoClientCert {
		opts.clientAuth = tls.RequireAndVerifyClientCert
	}
	h := &harness{t: t, ca: testpki.NewCA(t, "weft test root"), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	cert := h.ca.Issue(t, spiffe.ID{TrustDomain: trustDomain, Namespace: "weft-system", Service: "control"},
		testpki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   opts.clientAuth,
		ClientCAs:    h.ca.Pool(),
		MinVersion:   tls.VersionTLS13,
	})))
	h.srv = New(Options{
		Log:      slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Debounce: opts.debounce,
		Metrics:  h.reg,
	})
	h.srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = lis.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Serve(lis) })
	wg.Go(func() {
		if err := h.srv.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		g.Stop()
		wg.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", h.logs)
		}
	})
	return h
}

// svid issues a client certificate for a service of the mesh.
func (h *harness) svid(ns, svc string) tls.Certificate {
	return h.ca.Issue(h.t, spiffe.ID{TrustDomain: trustDomain, Namespace: ns, Service: svc}, testpki.Options{})
}

// adsStream is a proxy's side of one ADS stream.
type adsStream struct {
	t     *testing.T
	node  *corev3.Node
	s     discoverypb.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps chan *discoverypb.DiscoveryResponse
	errc  chan error
	close func()
	// names are the names last asked for, per type: an ACK repeats them,
	// as every client does.
	names map[string][]string
}

// dial connects to the server with cert, or with no client certificate if nil.
func (h *harness) dial(cert *tls.Certificate) *grpc.ClientConn {
	h.t.Helper()
	cfg := &tls.Config{RootCAs: h.ca.Pool(), MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		h.t.Fatal(err)
	}
	return conn
}

// open dials the server with cert and opens an ADS stream for node.
func (h *harness) open(cert *tls.Certificate, node xdsmeta.Node) *adsStream {
	h.t.Helper()
	conn := h.dial(cert)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := discoverypb.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	a := &adsStream{
		t: h.t, node: node.ToProto(), s: s,
		resps: make(chan *discoverypb.DiscoveryResponse, 16), errc: make(chan error, 1),
		names: map[string][]string{},
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			r, err := s.Recv()
			if err != nil {
				a.errc <- err
				return
			}
			a.resps <- r
		}
	})
	var once sync.Once
	a.close = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			_ = conn.Close()
		})
	}
	h.t.Cleanup(a.close)
	return a
}

// send sends a request; the node goes on every request, as Envoy does.
func (a *adsStream) send(typeURL, version, nonce string, names ...string) {
	a.t.Helper()
	a.names[typeURL] = names
	if err := a.s.Send(&discoverypb.DiscoveryRequest{
		Node: a.node, TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names,
	}); err != nil {
		a.t.Fatalf("send %s: %v", typeURL, err)
	}
}

// sendBare sends a request without the node, as a client that sets it on
// the stream's first request only (proxy/xdsclient, Envoy with
// set_node_on_first_message_only) sends every later one.
func (a *adsStream) sendBare(typeURL, version, nonce string, names ...string) {
	a.t.Helper()
	a.names[typeURL] = names
	if err := a.s.Send(&discoverypb.DiscoveryRequest{
		TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names,
	}); err != nil {
		a.t.Fatalf("send %s: %v", typeURL, err)
	}
}

// ack accepts r, asking for the names last asked for of its type.
func (a *adsStream) ack(r *discoverypb.DiscoveryResponse) {
	a.t.Helper()
	a.send(r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce(), a.names[r.GetTypeUrl()]...)
}

func (a *adsStream) recv() *discoverypb.DiscoveryResponse {
	a.t.Helper()
	select {
	case r := <-a.resps:
		return r
	case err := <-a.errc:
		a.t.Fatalf("stream ended: %v", err)
	case <-time.After(patience):
		a.t.Fatal("no response")
	}
	return nil
}

// recvTypes receives one response of each of n types, in any order.
func (a *adsStream) recvTypes(n int) map[string]*discoverypb.DiscoveryResponse {
	a.t.Helper()
	got := map[string]*discoverypb.DiscoveryResponse{}
	for len(got) < n {
		r := a.recv()
		if _, dup := got[r.GetTypeUrl()]; dup {
			a.t.Fatalf("second %s response before the others", r.GetTypeUrl())
		}
		got[r.GetTypeUrl()] = r
	}
	return got
}

// expectNothing fails if a response arrives within d.
func (a *adsStream) expectNothing(d time.Duration) {
	a.t.Helper()
	select {
	case r := <-a.resps:
		a.t.Fatalf("unexpected %s response, version %s", r.GetTypeUrl(), r.GetVersionInfo())
	case err := <-a.errc:
		a.t.Fatalf("stream ended: %v", err)
	case <-time.After(d):
	}
}

// err waits for the stream to fail and returns its status.
func (a *adsStream) err() *rpcstatus.Status {
	a.t.Helper()
	select {
	case err := <-a.errc:
		return rpcstatus.Convert(err)
	case r := <-a.resps:
		a.t.Fatalf("got a %s response, want the stream to fail", r.GetTypeUrl())
	case <-time.After(patience):
		a.t.Fatal("stream did not fail")
	}
	return nil
}

// names unpacks a response's resources and returns their names.
func names(t *testing.T, r *discoverypb.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		m, err := anypb.UnmarshalNew(a, proto.UnmarshalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *endpointv3.ClusterLoadAssignment:
			out = append(out, m.GetClusterName())
		case interface{ GetName() string }:
			out = append(out, m.GetName())
		}
	}
	slices.Sort(out)
	return out
}

func ws(ns, svc, version, addr string, ready bool) *meshv1.Workload {
	return &meshv1.Workload{
		Id: xdsmeta.WorkloadID(svc, ns, addr), Service: svc, Namespace: ns, Version: version,
		Address: addr, AppAddress: "127.0.0.1:8080", Ready: ready,
	}
}

// meshInput is a mesh of web and payments, HTTP both, with extra payments workloads.
func meshInput(ca *testpki.CA, payments ...*meshv1.Workload) *translate.Input {
	web := translate.ServiceKey{Namespace: "default", Name: "web"}
	pay := translate.ServiceKey{Namespace: "default", Name: "payments"}
	http := func(port int32) *v1alpha1.ServiceSpec {
		return &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Port: port, Protocol: v1alpha1.ProtocolHTTP}}}
	}
	return &translate.Input{
		TrustDomain:    trustDomain,
		TrustBundlePEM: ca.PEM(),
		Services:       map[translate.ServiceKey]*v1alpha1.ServiceSpec{web: http(80), pay: http(8080)},
		Workloads: map[translate.ServiceKey][]*meshv1.Workload{
			web: {ws("default", "web", "v1", "127.0.1.1:15006", true)},
			pay: append([]*meshv1.Workload{ws("default", "payments", "v1", "127.0.1.2:15006", true)}, payments...),
		},
	}
}

// webNode is the proxy of web, with payments as an upstream.
func webNode() xdsmeta.Node {
	return xdsmeta.Node{
		ID: xdsmeta.WorkloadID("web", "default", "127.0.1.1:15006"), Service: "web", Namespace: "default",
		Version: "v1", Inbound: "127.0.1.1:15006", App: "127.0.0.1:8080", Admin: "127.0.0.1:15000",
		Upstreams: []xdsmeta.Upstream{{Service: "payments", Namespace: "default", Listen: "127.0.0.1:9001"}},
	}
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric reads a counter or gauge value, or a histogram's sample count,
// from the registry; 0 if absent.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// syncBuffer collects the server's log for a failing test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
