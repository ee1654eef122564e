package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/identity"
	"github.com/weftmesh/weft/proxy/tlsx"
)

// service is one mesh service of the simulation.
type service struct {
	idx      int
	ns, name string
	protocol v1alpha1.Protocol
	token    string

	// Guarded by mesh.mu.
	endpoints   []*simProxy // registered, ready
	subscribers []*simProxy // proxies with this service as an upstream, ADS synced
}

func (s *service) host() string            { return xdsmeta.ServiceHost(s.name, s.ns) }
func (s *service) outboundCluster() string { return xdsmeta.OutboundCluster(s.name, s.ns) }
func (s *service) inboundCluster() string  { return xdsmeta.InboundCluster(s.name, s.ns) }

// mesh is the simulation's view of who is where.
type mesh struct {
	cp  *controlPlane
	rng *rand.Rand

	mu       sync.Mutex
	services []*service
	// populated are the services that get endpoints; upstreams are drawn from them.
	populated []*service
	proxies   map[int]*simProxy
	next      int
	rngMu     sync.Mutex
}

func (m *mesh) intn(n int) int {
	m.rngMu.Lock()
	defer m.rngMu.Unlock()
	return m.rng.IntN(n)
}

// simProxy is one simulated proxy: its own P-256 key, an SVID from the
// Identity service, one TLS connection presenting that SVID, and on it an
// ADS stream and a Registry stream, as `weft proxy` has.
type simProxy struct {
	m    *mesh
	idx  int
	svc  *service
	ups  []*service
	node xdsmeta.Node

	id   *identity.Source
	conn *grpc.ClientConn
	ads  *adsClient

	joined    time.Time // when it registered; set before activate
	ctx       context.Context
	cancel    context.CancelFunc
	regCancel context.CancelFunc
	wg        sync.WaitGroup
	regErr    chan error
}

func (p *simProxy) addr() string { return p.node.Inbound }

// newProxy makes (but does not start) the next proxy of svc, with 1 to 3
// upstreams drawn from the populated services other than its own.
func (m *mesh) newProxy(svc *service) *simProxy {
	m.mu.Lock()
	idx := m.next
	m.next++
	m.mu.Unlock()
	p := &simProxy{m: m, idx: idx, svc: svc}
	want := 1 + m.intn(3)
	for tries := 0; len(p.ups) < want && tries < 20; tries++ {
		u := m.populated[m.intn(len(m.populated))]
		if u != svc && !slices.Contains(p.ups, u) {
			p.ups = append(p.ups, u)
		}
	}
	// Every proxy has its own inbound address; nothing listens on it.
	inbound := fmt.Sprintf("127.30.%d.%d:15006", idx/250, idx%250+1)
	node := xdsmeta.Node{
		ID: xdsmeta.WorkloadID(svc.name, svc.ns, inbound), Service: svc.name, Namespace: svc.ns, Version: "v1",
		Inbound: inbound, App: "127.0.0.1:8080", Admin: "127.0.0.1:15000",
	}
	for i, u := range p.ups {
		node.Upstreams = append(node.Upstreams, xdsmeta.Upstream{Service: u.name, Namespace: u.ns, Listen: fmt.Sprintf("127.0.0.1:%d", 9001+i)})
	}
	p.node = node
	return p
}

// connect joins the mesh (SVID with the service's join token), dials the
// control plane with the SVID and waits until ADS has delivered every type.
// The proxy is not registered yet.
func (p *simProxy) connect(ctx context.Context, timeout time.Duration) error {
	cp := p.m.cp
	p.ctx, p.cancel = context.WithCancel(context.Background())
	var idSrc *identity.Source
	creds := credentials.NewTLS(tlsx.ControlPlaneClient(cp.roots, func() *tls.Certificate {
		if idSrc == nil {
			return nil
		}
		return idSrc.Certificate()
	}))
	var err error
	idSrc, err = identity.New(identity.Options{
		Service: p.svc.name, Namespace: p.svc.ns,
		Token: func() (string, error) { return p.svc.token, nil },
		Dial: func(context.Context) (*grpc.ClientConn, error) {
			return grpc.NewClient(cp.grpcAddr, grpc.WithTransportCredentials(creds))
		},
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	p.id = idSrc
	jctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		err = idSrc.Join(jctx)
		if err == nil {
			break
		}
		switch status.Code(err) {
		case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
			return fmt.Errorf("proxy %s: join: %w", p.node.ID, err)
		}
		select {
		case <-jctx.Done():
			return fmt.Errorf("proxy %s: join: %w", p.node.ID, err)
		case <-time.After(backoff):
		}
	}
	p.conn, err = grpc.NewClient(cp.grpcAddr, grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}))
	if err != nil {
		return err
	}
	p.ads = newADSClient(p.node.ToProto(), p.conn)
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.ads.run(p.ctx) }()
	select {
	case <-p.ads.synced:
		return nil
	case <-jctx.Done():
		p.ads.mu.Lock()
		err := p.ads.lastErr
		p.ads.mu.Unlock()
		return fmt.Errorf("proxy %s: ADS not synced within %v (last error: %v)", p.node.ID, timeout, err)
	}
}

// register opens the Registry stream and registers the workload, ready. It
// returns the time the registration was sent, once the control plane has
// answered it.
func (p *simProxy) register(ctx context.Context) (time.Time, error) {
	rctx, cancel := context.WithCancel(p.ctx)
	p.regCancel = cancel
	s, err := meshv1.NewRegistryClient(p.conn).Register(rctx, grpc.WaitForReady(true))
	if err != nil {
		return time.Time{}, err
	}
	w := &meshv1.Workload{
		Id: p.node.ID, Service: p.svc.name, Namespace: p.svc.ns, Version: "v1",
		Labels: map[string]string{"version": "v1"}, Address: p.node.Inbound,
		AppAddress: p.node.App, AdminAddress: p.node.Admin, Ready: true,
	}
	sent := time.Now()
	if err := s.Send(&meshv1.RegisterRequest{Workload: w}); err != nil {
		return sent, err
	}
	if _, err := s.Recv(); err != nil {
		return sent, fmt.Errorf("proxy %s: register: %w", p.node.ID, err)
	}
	p.regErr = make(chan error, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			if _, err := s.Recv(); err != nil {
				p.regErr <- err
				return
			}
		}
	}()
	return sent, nil
}

// deregister ends the Registry stream, which deletes the endpoint at once,
// and returns when it was cancelled.
func (p *simProxy) deregister() time.Time {
	at := time.Now()
	if p.regCancel != nil {
		p.regCancel()
	}
	return at
}

// close ends every stream and the connection.
func (p *simProxy) close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	if p.conn != nil {
		p.conn.Close()
	}
}

// activate records a connected, registered proxy in the topology.
func (m *mesh) activate(p *simProxy) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proxies[p.idx] = p
	p.svc.endpoints = append(p.svc.endpoints, p)
	for _, u := range p.ups {
		u.subscribers = append(u.subscribers, p)
	}
}

// deactivate removes p from the topology before it leaves.
func (m *mesh) deactivate(p *simProxy) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.proxies, p.idx)
	p.svc.endpoints = slices.DeleteFunc(p.svc.endpoints, func(q *simProxy) bool { return q == p })
	for _, u := range p.ups {
		u.subscribers = slices.DeleteFunc(u.subscribers, func(q *simProxy) bool { return q == p })
	}
}

// subscribersOf returns a copy of the proxies that route to s.
func (m *mesh) subscribersOf(s *service) []*simProxy {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(s.subscribers)
}

func (m *mesh) endpointsOf(s *service) []*simProxy {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(s.endpoints)
}

// unconverged counts the proxies that do not yet see exactly the endpoints
// of each of their upstreams.
func (m *mesh) unconverged() int {
	m.mu.Lock()
	want := map[*service][]string{}
	for _, s := range m.populated {
		for _, e := range s.endpoints {
			want[s] = append(want[s], e.addr())
		}
	}
	proxies := make([]*simProxy, 0, len(m.proxies))
	for _, p := range m.proxies {
		proxies = append(proxies, p)
	}
	m.mu.Unlock()
	bad := 0
	for _, p := range proxies {
		p.ads.mu.Lock()
		for _, u := range p.ups {
			addrs := want[u]
			ok := endpointCount(p.ads, u.outboundCluster()) == len(addrs)
			for _, a := range addrs {
				ok = ok && hasEndpoint(p.ads, u.outboundCluster(), a)
			}
			if !ok {
				bad++
				break
			}
		}
		p.ads.mu.Unlock()
	}
	return bad
}

// sibling is another service of s's namespace, or nil.
func (m *mesh) sibling(s *service) *service {
	m.mu.Lock()
	var cands []*service
	for _, t := range m.services {
		if t != s && t.ns == s.ns {
			cands = append(cands, t)
		}
	}
	m.mu.Unlock()
	if len(cands) == 0 {
		return nil
	}
	return cands[m.intn(len(cands))]
}
