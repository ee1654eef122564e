package registry_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/registry"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/internal/testpki"
)

const trustDomain = "weft.test"

var paymentsID = spiffe.ID{TrustDomain: trustDomain, Namespace: "default", Service: "payments"}

// harness is a Registry server on a real TLS gRPC port, backed by a real
// embedded etcd.
type harness struct {
	etcd    *store.Store // the test's view of the store
	ca      *testpki.CA
	addr    string
	metrics *prometheus.Registry
	server  *registry.Server
	grpc    *grpc.Server
}

// newHarness serves the Registry; regStore is the store the server uses (the
// test's own when nil), so a test can close it to play a dead control plane.
func newHarness(t *testing.T, etcd, regStore *store.Store, ttl time.Duration) *harness {
	t.Helper()
	if regStore == nil {
		regStore = etcd
	}
	h := &harness{etcd: etcd, ca: testpki.NewCA(t, "weft test root"), metrics: prometheus.NewRegistry()}
	serverCert := h.ca.Issue(t, spiffe.ID{}, testpki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    h.ca.Pool(),
		MinVersion:   tls.VersionTLS13,
	})))
	h.server = registry.New(registry.Options{
		Store: regStore, TrustDomain: trustDomain, LeaseTTL: ttl, Metrics: h.metrics,
		Log: slog.New(slog.DiscardHandler),
	})
	h.grpc = srv
	meshv1.RegisterRegistryServer(srv, h.server)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = lis.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		h.server.Close()
		checkNoStreamGoroutines(t)
	})
	return h
}

// checkNoStreamGoroutines fails if a stream handler, or a goroutine it
// started, outlives the server.
func checkNoStreamGoroutines(t *testing.T) {
	t.Helper()
	const marker = "weft/controlplane/registry."
	var stacks string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, marker) {
			return
		}
	}
	t.Errorf("stream goroutines leaked:\n%s", stacks)
}

// client dials the harness presenting cert, or no certificate when nil.
func (h *harness) client(t *testing.T, cert *tls.Certificate) meshv1.RegistryClient {
	t.Helper()
	cfg := &tls.Config{RootCAs: h.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return meshv1.NewRegistryClient(conn)
}

// svid issues a client certificate for id from the harness's CA.
func (h *harness) svid(t *testing.T, id spiffe.ID) *tls.Certificate {
	t.Helper()
	c := h.ca.Issue(t, id, testpki.Options{})
	return &c
}

func workload(id spiffe.ID, addr string) *meshv1.Workload {
	return &meshv1.Workload{
		Id:           xdsmeta.WorkloadID(id.Service, id.Namespace, addr),
		Service:      id.Service,
		Namespace:    id.Namespace,
		Version:      "v1",
		Address:      addr,
		AppAddress:   "127.0.0.1:8080",
		AdminAddress: "127.0.0.1:15000",
		Ready:        true,
	}
}

// register opens a stream with ctx, sends w and waits for the answer.
func register(t *testing.T, ctx context.Context, c meshv1.RegistryClient, w *meshv1.Workload) (meshv1.Registry_RegisterClient, *meshv1.RegisterResponse) {
	t.Helper()
	stream, err := c.Register(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	if err := stream.Send(&meshv1.RegisterRequest{Workload: w}); err != nil {
		t.Fatalf("send: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("register %s: %v", w.GetId(), err)
	}
	return stream, resp
}

// endpoint returns the stored key of w, or nil when there is none.
func (h *harness) endpoint(t *testing.T, w *meshv1.Workload) (*meshv1.Workload, clientv3.LeaseID) {
	t.Helper()
	resp, err := h.etcd.Client().Get(context.Background(), store.EndpointKey(w.GetNamespace(), w.GetService(), w.GetId()))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, clientv3.NoLease
	}
	stored, err := store.DecodeWorkload(resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return stored, clientv3.LeaseID(resp.Kvs[0].Lease)
}

// waitGone waits until w's endpoint is deleted and says how long it took.
func (h *harness) waitGone(t *testing.T, w *meshv1.Workload, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if got, _ := h.endpoint(t, w); got == nil {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("endpoint %s still present after %v", w.GetId(), within)
	return 0
}

// gauge reads the registration gauge.
func (h *harness) gauge(t *testing.T) float64 {
	t.Helper()
	families, err := h.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "weft_registry_registrations" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("weft_registry_registrations not exported")
	return 0
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRegisterUpdateAndClose(t *testing.T) {
	h := newHarness(t, storetest.New(t), nil, 30*time.Second)
	ctx := testContext(t)
	w := workload(paymentsID, "127.0.1.1:15006")
	stream, resp := register(t, ctx, h.client(t, h.svid(t, paymentsID)), w)
	if resp.GetLeaseTtlSeconds() != 30 {
		t.Errorf("lease TTL %ds, want 30s", resp.GetLeaseTtlSeconds())
	}
	stored, lease := h.endpoint(t, w)
	if stored == nil || !stored.GetReady() || lease == clientv3.NoLease {
		t.Fatalf("after register: endpoint %v on lease %x, want it ready on a lease", stored, lease)
	}
	if g := h.gauge(t); g != 1 {
		t.Errorf("registrations gauge %v, want 1", g)
	}

	// A later message updates the endpoint on the same lease.
	w.Ready = false
	if err := stream.Send(&meshv1.RegisterRequest{Workload: w}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("update: %v", err)
	}
	stored, updatedLease := h.endpoint(t, w)
	if stored == nil || stored.GetReady() || updatedLease != lease {
		t.Errorf("after update: endpoint %v on lease %x, want it not ready on lease %x", stored, updatedLease, lease)
	}

	// Closing the stream deregisters before the server ends the stream.
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after CloseSend: %v, want EOF", err)
	}
	if got, _ := h.endpoint(t, w); got != nil {
		t.Errorf("endpoint still present after the stream closed")
	}
	if g := h.gauge(t); g != 0 {
		t.Errorf("registrations gauge %v after close, want 0", g)
	}
}

func TestCancelledStreamDeregisters(t *testing.T) {
	h := newHarness(t, storetest.New(t), nil, 30*time.Second)
	ctx, cancel := context.WithCancel(testContext(t))
	w := workload(paymentsID, "127.0.1.1:15006")
	register(t, ctx, h.client(t, h.svid(t, paymentsID)), w)
	cancel()
	// Well under the 30s TTL: the lease was revoked, not left to expire.
	h.waitGone(t, w, 5*time.Second)
}

func TestReconnectKeepsEndpoint(t *testing.T) {
	h := newHarness(t, storetest.New(t), nil, 30*time.Second)
	ctx := testContext(t)
	c := h.client(t, h.svid(t, paymentsID))
	w := workload(paymentsID, "127.0.1.1:15006")
	oldCtx, cancelOld := context.WithCancel(ctx)
	register(t, oldCtx, c, w)
	w.Version = "v2"
	register(t, ctx, c, w)
	if g := h.gauge(t); g != 2 {
		t.Fatalf("registrations gauge %v with both streams open, want 2", g)
	}
	// The old stream ending does not delete what the new one wrote.
	cancelOld()
	for deadline := time.Now().Add(5 * time.Second); h.gauge(t) != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the old stream's handler did not end")
		}
	}
	if got, _ := h.endpoint(t, w); got == nil || got.GetVersion() != "v2" {
		t.Errorf("after the old stream ended: endpoint %v, want the new registration's (v2)", got)
	}
}

// TestOneLeasePerReplica: the registrations a replica serves share its
// lease, kept alive once.
func TestOneLeasePerReplica(t *testing.T) {
	h := newHarness(t, storetest.New(t), nil, 30*time.Second)
	ctx := testContext(t)
	ordersID := spiffe.ID{TrustDomain: trustDomain, Namespace: "default", Service: "orders"}
	a := workload(paymentsID, "127.0.1.1:15006")
	b := workload(ordersID, "127.0.1.2:15006")
	register(t, ctx, h.client(t, h.svid(t, paymentsID)), a)
	register(t, ctx, h.client(t, h.svid(t, ordersID)), b)
	_, la := h.endpoint(t, a)
	_, lb := h.endpoint(t, b)
	if la == clientv3.NoLease || la != lb {
		t.Errorf("registrations on leases %x and %x, want both on the replica's", la, lb)
	}
	leases, err := h.etcd.Client().Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(leases.Leases); n != 1 {
		t.Errorf("%d leases granted for two registrations, want 1", n)
	}
}

func TestLeaseExpiresWhenControlPlaneDies(t *testing.T) {
	etcd := storetest.New(t)
	// The server has its own etcd client, so closing it plays a control
	// plane that died: nobody keeps the lease alive or revokes it.
	regStore, err := store.Open(context.Background(), store.Config{Endpoints: etcd.Client().Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { regStore.Close() })
	h := newHarness(t, etcd, regStore, 2*time.Second)
	ctx := testContext(t)
	w := workload(paymentsID, "127.0.1.1:15006")
	stream, resp := register(t, ctx, h.client(t, h.svid(t, paymentsID)), w)
	ttl := time.Duration(resp.GetLeaseTtlSeconds()) * time.Second

	// Kept alive past its TTL while the server lives.
	time.Sleep(ttl + 500*time.Millisecond)
	if got, _ := h.endpoint(t, w); got == nil {
		t.Fatalf("endpoint expired while the stream was open and the server alive")
	}

	regStore.Close()
	if got, _ := h.endpoint(t, w); got == nil {
		t.Fatalf("endpoint deleted at once when the control plane died; want it to expire with its lease")
	}
	if took := h.waitGone(t, w, ttl+5*time.Second); took < ttl/4 {
		t.Errorf("endpoint gone %v after the control plane died; a %v lease should have kept it longer", took, ttl)
	}
	// The server notices it lost the lease and tells the proxy, which
	// re-registers (with another replica, in a real mesh); the stream the
	// proxy then closes ends as lost.
	r, err := stream.Recv()
	if err != nil || !r.GetLeaseLost() {
		t.Fatalf("after the lease was lost: %v, %v; want a response with lease_lost", r, err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("stream after the lease was lost: %v, want Unavailable", err)
	}
}

func TestRegisterRefuses(t *testing.T) {
	h := newHarness(t, storetest.New(t), nil, 30*time.Second)
	otherCA := testpki.NewCA(t, "other root")
	good := workload(paymentsID, "127.0.1.1:15006")
	with := func(f func(w *meshv1.Workload)) *meshv1.Workload {
		w := workload(paymentsID, "127.0.1.1:15006")
		f(w)
		return w
	}
	foreignTD := spiffe.ID{TrustDomain: "elsewhere.test", Namespace: "default", Service: "payments"}
	foreignCert := h.svid(t, foreignTD)
	untrusted := otherCA.Issue(t, paymentsID, testpki.Options{})
	cases := []struct {
		name     string
		cert     *tls.Certificate
		w        *meshv1.Workload
		wantCode codes.Code
		wantMsg  []string
	}{
		{"no client certificate", nil, good, codes.Unauthenticated, []string{"client certificate"}},
		// The client offers no certificate the server's CAs did not sign.
		{"certificate from another CA", &untrusted, good, codes.Unauthenticated, []string{"client certificate"}},
		{"certificate without SPIFFE ID", h.svid(t, spiffe.ID{}), good, codes.Unauthenticated, []string{"spiffe"}},
		{"other trust domain", foreignCert, good, codes.PermissionDenied, []string{`"elsewhere.test"`, `"weft.test"`}},
		{"other service", h.svid(t, paymentsID), workload(spiffe.ID{TrustDomain: trustDomain, Namespace: "default", Service: "cart"}, "127.0.1.1:15006"),
			codes.PermissionDenied, []string{`"cart"`, "spiffe://weft.test/ns/default/sa/payments"}},
		{"other namespace", h.svid(t, paymentsID), workload(spiffe.ID{TrustDomain: trustDomain, Namespace: "shop", Service: "payments"}, "127.0.1.1:15006"),
			codes.PermissionDenied, []string{`"shop"`, `"default"`}},
		{"empty id", h.svid(t, paymentsID), with(func(w *meshv1.Workload) { w.Id = "" }), codes.InvalidArgument, []string{"workload.id"}},
		{"id not derived from address", h.svid(t, paymentsID), with(func(w *meshv1.Workload) { w.Id = "payments.default@10.0.0.1:1" }),
			codes.InvalidArgument, []string{"payments.default@127.0.1.1:15006"}},
		{"no address", h.svid(t, paymentsID), with(func(w *meshv1.Workload) { w.Address = "" }), codes.InvalidArgument, []string{"workload.address"}},
		{"address without port", h.svid(t, paymentsID), with(func(w *meshv1.Workload) { w.Address = "127.0.1.1" }), codes.InvalidArgument, []string{"workload.address"}},
		{"bad app address", h.svid(t, paymentsID), with(func(w *meshv1.Workload) { w.AppAddress = "127.0.0.1:0" }), codes.InvalidArgument, []string{"workload.app_address"}},
		{"bad admin address", h.svid(t, paymentsID), with(func(w *meshv1.Workload) { w.AdminAddress = ":15000" }), codes.InvalidArgument, []string{"workload.admin_address"}},
		{"no workload", h.svid(t, paymentsID), nil, codes.InvalidArgument, []string{"no workload"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			stream, err := h.client(t, tc.cert).Register(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The server may refuse before it reads, so a failed Send is fine:
			// Recv reports why.
			_ = stream.Send(&meshv1.RegisterRequest{Workload: tc.w})
			_, err = stream.Recv()
			if status.Code(err) != tc.wantCode {
				t.Fatalf("err = %v, want code %v", err, tc.wantCode)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(status.Convert(err).Message(), m) {
					t.Errorf("message %q does not mention %s", status.Convert(err).Message(), m)
				}
			}
		})
	}
	resp, err := h.etcd.Client().Get(context.Background(), store.PrefixEndpoints, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("refused registrations left %d endpoints", resp.Count)
	}
}

func TestUpdateCannotChangeIdentity(t *testing.T) {
	h := newHarness(t, storetest.New(t), nil, 30*time.Second)
	ctx := testContext(t)
	w := workload(paymentsID, "127.0.1.1:15006")
	stream, _ := register(t, ctx, h.client(t, h.svid(t, paymentsID)), w)
	if err := stream.Send(&meshv1.RegisterRequest{Workload: workload(paymentsID, "127.0.1.2:15006")}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("changing the workload id: %v, want InvalidArgument", err)
	}
	if got, _ := h.endpoint(t, w); got != nil {
		t.Errorf("the refused stream's endpoint is still registered")
	}
}

// TestHandOverKeepsEndpoints: a control plane that shuts down leaves its
// endpoints to their leases instead of deleting them, so a restart or
// another replica finds them until the proxies re-register.
func TestHandOverKeepsEndpoints(t *testing.T) {
	h := newHarness(t, storetest.New(t), nil, 2*time.Second)
	ctx := testContext(t)
	w := workload(paymentsID, "127.0.1.1:15006")
	register(t, ctx, h.client(t, h.svid(t, paymentsID)), w)
	h.server.HandOver()
	h.grpc.Stop()
	if got, _ := h.endpoint(t, w); got == nil {
		t.Fatal("the endpoint was deleted when the control plane shut down")
	}
	// Nobody re-registers it: it expires with its lease.
	h.waitGone(t, w, 10*time.Second)
}
