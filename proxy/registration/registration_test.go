package registration_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/registry"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/proxy/registration"
	"github.com/weftmesh/weft/proxy/tlsx"
)

// patience bounds every wait for something that should happen.
const patience = 5 * time.Second

// leaseTTL is far longer than patience: an endpoint that disappears within
// patience was deleted, not expired.
const leaseTTL = time.Minute

var quiet = slog.New(slog.DiscardHandler)

// controlPlane is the real Registry service over an embedded etcd, served
// on 127.0.0.1 with the control plane's TLS settings and a real mesh CA.
type controlPlane struct {
	t       *testing.T
	st      *store.Store
	ca      *ca.CA
	serving tls.Certificate
	addr    string
	ttl     time.Duration
	stop    func()
}

func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	return startControlPlaneTTL(t, leaseTTL)
}

// startControlPlaneTTL starts a control plane whose lease lasts ttl.
func startControlPlaneTTL(t *testing.T, ttl time.Duration) *controlPlane {
	t.Helper()
	st := storetest.New(t)
	authority, err := ca.Load(context.Background(), st.Client(), ca.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := authority.ServingCertificate([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{t: t, st: st, ca: authority, serving: serving, ttl: ttl}
	cp.start("127.0.0.1:0")
	t.Cleanup(func() { cp.stop() })
	return cp
}

func (cp *controlPlane) start(addr string) {
	cp.t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.addr = lis.Addr().String()
	// As `weft control` serves gRPC: client certificates are verified
	// against the mesh's bundle when given.
	g := grpc.NewServer(grpc.WaitForHandlers(true), grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cp.serving},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    cp.ca.TrustBundlePool(),
	})))
	reg := registry.New(registry.Options{Store: cp.st, TrustDomain: cp.ca.TrustDomain(), LeaseTTL: cp.ttl, Log: quiet})
	meshv1.RegisterRegistryServer(g, reg)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	var once sync.Once
	cp.stop = func() {
		once.Do(func() {
			// As `weft control` stops: endpoints are left to their leases
			// for the proxies to re-register with the next control plane.
			reg.HandOver()
			g.Stop()
			<-served
		})
	}
}

// restart stops the control plane and starts another on the same address
// and store.
func (cp *controlPlane) restart() {
	cp.t.Helper()
	cp.stop()
	cp.start(cp.addr)
}

// svid issues the proxy's SVID from the mesh CA, as Join would obtain it.
func (cp *controlPlane) svid(service string) *tls.Certificate {
	cp.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		cp.t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		cp.t.Fatal(err)
	}
	id := spiffe.ID{TrustDomain: cp.ca.TrustDomain(), Namespace: "default", Service: service}
	chain, err := cp.ca.SignCSR(csr, id, time.Hour)
	if err != nil {
		cp.t.Fatal(err)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key}
}

// dial connects to addr as the proxy does: the control plane is
// authenticated by its SPIFFE ID under the mesh root, and the proxy
// presents its SVID.
func (cp *controlPlane) dial(addr string, svid *tls.Certificate) *grpc.ClientConn {
	cp.t.Helper()
	roots := cp.ca.TrustBundlePool()
	creds := credentials.NewTLS(tlsx.ControlPlaneClient(roots, func() *tls.Certificate { return svid }))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		// Reconnect quickly once a restarted control plane listens again.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.t.Cleanup(func() { conn.Close() })
	return conn
}

// stored returns the workloads of web.default in the store.
func (cp *controlPlane) stored() []*meshv1.Workload {
	cp.t.Helper()
	ws, err := cp.st.ListWorkloads(context.Background(), "default", "web")
	if err != nil {
		cp.t.Fatal(err)
	}
	return ws
}

// lease returns the lease the workload's endpoint is stored on, or
// NoLease when there is no endpoint.
func (cp *controlPlane) lease(w *meshv1.Workload) clientv3.LeaseID {
	cp.t.Helper()
	resp, err := cp.st.Client().Get(context.Background(), store.EndpointKey(w.GetNamespace(), w.GetService(), w.GetId()))
	if err != nil {
		cp.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return clientv3.NoLease
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease)
}

// waitStored waits until the store holds exactly want for web.default.
func (cp *controlPlane) waitStored(what string, want *meshv1.Workload) {
	cp.t.Helper()
	waitFor(cp.t, what, func() bool {
		ws := cp.stored()
		if want == nil {
			return len(ws) == 0
		}
		return len(ws) == 1 && proto.Equal(ws[0], want)
	})
}

func webWorkload() *meshv1.Workload {
	return &meshv1.Workload{
		Id: xdsmeta.WorkloadID("web", "default", "127.0.0.1:15006"), Service: "web", Namespace: "default", Version: "v1",
		Labels:  map[string]string{"version": "v1"},
		Address: "127.0.0.1:15006", AppAddress: "127.0.0.1:8080", AdminAddress: "127.0.0.1:15000",
	}
}

func withReady(w *meshv1.Workload, ready bool) *meshv1.Workload {
	w = proto.Clone(w).(*meshv1.Workload)
	w.Ready = ready
	return w
}

// run runs r; the returned func cancels it and checks that Run returns nil
// within bound and leaves none of its goroutines behind.
func run(t *testing.T, r *registration.Registration, bound time.Duration) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run returned %v when cancelled, want nil", err)
				}
			case <-time.After(bound):
				t.Errorf("Run did not return within %v of being cancelled", bound)
				return
			}
			if stacks := registrationGoroutines(); stacks != "" {
				t.Errorf("goroutines of the registration outlived Run:\n%s", stacks)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// registrationGoroutines returns the stacks of goroutines running this
// package's code.
func registrationGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		// Only running frames count: a goroutine that has returned from our
		// code may still name it as its creator while it exits.
		running, _, _ := strings.Cut(g, "\ncreated by ")
		if strings.Contains(running, "proxy/registration.(*Registration)") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", patience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunRegistersAndFollowsReadiness: Run registers the workload on a
// lease, SetReady updates it in the store, and cancelling Run deletes the
// endpoint at once rather than when its lease expires.
func TestRunRegistersAndFollowsReadiness(t *testing.T) {
	cp := startControlPlane(t)
	w := webWorkload()
	r := registration.New(cp.dial(cp.addr, cp.svid("web")), w, quiet)
	w.Version = "changed after New" // New keeps its own copy
	stop := run(t, r, patience)

	cp.waitStored("the workload registered, not ready", withReady(webWorkload(), false))
	if cp.lease(w) == clientv3.NoLease {
		t.Error("the endpoint is not on a lease")
	}
	r.SetReady(true)
	cp.waitStored("the workload ready", withReady(webWorkload(), true))
	r.SetReady(true) // no change
	r.SetReady(false)
	cp.waitStored("the workload not ready again", withReady(webWorkload(), false))

	stop()
	cp.waitStored("the endpoint deleted", nil)
}

// TestRunReregistersAfterRestart: when the control plane goes away and
// another takes its place, Run registers again with the new one, with the
// workload's current readiness.
func TestRunReregistersAfterRestart(t *testing.T) {
	cp := startControlPlane(t)
	w := webWorkload()
	r := registration.New(cp.dial(cp.addr, cp.svid("web")), w, quiet)
	stop := run(t, r, patience)
	cp.waitStored("the workload registered", withReady(w, false))
	old := cp.lease(w)

	cp.restart()
	waitFor(t, "the workload registered on a new lease", func() bool {
		l := cp.lease(w)
		return l != clientv3.NoLease && l != old
	})
	cp.waitStored("the workload as registered again", withReady(w, false))
	r.SetReady(true)
	cp.waitStored("readiness reaching the new control plane", withReady(w, true))

	stop()
	cp.waitStored("the endpoint deleted", nil)
}

// TestRunReregistersWhenLeaseLost: when the control plane's lease ends
// under a live stream (revoked here; etcd expires it after an outage
// longer than its TTL), the control plane says so on the stream and Run
// registers again, on the lease the control plane grants next.
func TestRunReregistersWhenLeaseLost(t *testing.T) {
	// A short lease is renewed, and its loss noticed, every second.
	cp := startControlPlaneTTL(t, 3*time.Second)
	w := webWorkload()
	r := registration.New(cp.dial(cp.addr, cp.svid("web")), w, quiet)
	stop := run(t, r, patience)
	cp.waitStored("the workload registered", withReady(w, false))
	old := cp.lease(w)
	if _, err := cp.st.Client().Revoke(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the workload registered on a new lease", func() bool {
		l := cp.lease(w)
		return l != clientv3.NoLease && l != old
	})
	stop()
	cp.waitStored("the endpoint deleted", nil)
}

// TestRunReturnsPromptlyWhileUnreachable: with no control plane to talk to,
// Run waits to register, and returns as soon as its context ends rather
// than after a connection attempt or a backoff.
func TestRunReturnsPromptlyWhileUnreachable(t *testing.T) {
	const prompt = 2 * time.Second // well under Run's longest backoff

	t.Run("never reached", func(t *testing.T) {
		cp := startControlPlane(t)
		cp.stop()
		conn := cp.dial(cp.addr, cp.svid("web"))
		stop := run(t, registration.New(conn, webWorkload(), quiet), prompt)
		waitFor(t, "a failed connection attempt", func() bool { return conn.GetState() == connectivity.TransientFailure })
		stop()
	})

	t.Run("lost", func(t *testing.T) {
		cp := startControlPlane(t)
		conn := cp.dial(cp.addr, cp.svid("web"))
		stop := run(t, registration.New(conn, webWorkload(), quiet), prompt)
		cp.waitStored("the workload registered", withReady(webWorkload(), false))
		cp.stop()
		waitFor(t, "the connection lost", func() bool {
			s := conn.GetState()
			return s == connectivity.TransientFailure || s == connectivity.Idle
		})
		stop()
	})

	t.Run("cancelled before it started", func(t *testing.T) {
		cp := startControlPlane(t)
		conn := cp.dial(cp.addr, cp.svid("web"))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := registration.New(conn, webWorkload(), quiet).Run(ctx); err != nil {
			t.Fatalf("Run with a done context: %v, want nil", err)
		}
		if ws := cp.stored(); len(ws) != 0 {
			t.Errorf("registered %v with a done context", ws)
		}
	})
}
