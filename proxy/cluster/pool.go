package cluster

import (
	"log/slog"

	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/ratelog"
	"github.com/weftmesh/weft/proxy/sockio"
)

// Protocol is how HTTP travels to a cluster's endpoints.
type Protocol int

const (
	// HTTP1 pools keep-alive HTTP/1.1 connections.
	HTTP1 Protocol = iota
	// HTTP2 multiplexes requests over HTTP/2: negotiated by ALPN "h2" over
	// TLS, with prior knowledge (h2c) over plaintext.
	HTTP2
	// Downstream sends each request with its own protocol, as Envoy's
	// use_downstream_protocol_config: HTTP/1.x over kept-alive HTTP/1.1
	// connections (ALPN http/1.1), HTTP/2 (h2, gRPC) multiplexed over
	// HTTP/2 (ALPN h2).
	Downstream
)

// String names the protocol as Envoy's /clusters would.
func (p Protocol) String() string {
	switch p {
	case HTTP2:
		return "HTTP2"
	case Downstream:
		return "DOWNSTREAM"
	}
	return "HTTP1"
}

// Defaults of Settings.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	// maxIdlePerHost bounds the idle HTTP/1.1 connections kept per endpoint.
	maxIdlePerHost = 1024
	// h2PingInterval is how long an HTTP/2 connection may stay silent
	// before it is pinged; h2PingTimeout how long the answer may take.
	h2PingInterval = 30 * time.Second
	h2PingTimeout  = 15 * time.Second
)

// Settings are a cluster's connection settings.
type Settings struct {
	// Name is the cluster's name, for errors.
	Name string
	// TLS makes every connection mutual TLS; its NextProtos is the
	// cluster's ALPN. Nil means plaintext.
	TLS *tls.Config
	// Protocol is the HTTP protocol spoken to the endpoints.
	Protocol Protocol
	// ConnectTimeout bounds the TCP connect and TLS handshake; zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// IdleTimeout closes pooled connections unused that long; zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Outlier, if set, enables outlier detection over the pool's endpoints.
	Outlier *OutlierDetection
	// HealthCheck, if set, checks the pool's endpoints actively.
	HealthCheck *HealthCheck
	// MaxConnections, if positive, bounds the connections open to all the
	// pool's endpoints (circuit_breakers max_connections). A pooled
	// request that needs one more waits, as a pending request; a stream
	// over the limit fails at once with an OverflowError.
	MaxConnections int64
	// Log receives refused TLS handshakes (an endpoint whose certificate
	// or SPIFFE ID is not the expected one), thinned; nil discards them.
	Log *slog.Logger
}

// ConnectError is a failure to reach an endpoint: TCP connect or TLS
// handshake (including a peer whose identity is refused).
type ConnectError struct {
	Cluster, Addr string
	Err           error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("cluster %q: connect to %s: %v", e.Cluster, e.Addr, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// roundTripper is the pool's HTTP client.
type roundTripper interface {
	http.RoundTripper
	CloseIdleConnections()
}

// byDownstream sends each request with the protocol it came with.
type byDownstream struct{ h2, h1 roundTripper }

func (b *byDownstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.ProtoMajor == 1 {
		return b.h1.RoundTrip(req)
	}
	return b.h2.RoundTrip(req)
}

func (b *byDownstream) CloseIdleConnections() {
	b.h1.CloseIdleConnections()
	b.h2.CloseIdleConnections()
}

// Pool holds a cluster's connections to its endpoints: an HTTP transport
// that pools per endpoint, and a dialer for dedicated streams.
type Pool struct {
	settings   Settings
	refusals   *ratelog.Limiter
	scheme     string
	transport  roundTripper
	streamTLS  *tls.Config
	upgradeTLS *tls.Config
	dialer     net.Dialer
	breaker    breaker
	outlier    *detector
	checker    *healthChecker
	// sawTraffic is set by the first request or stream.
	sawTraffic atomic.Bool
	rebuildMu  sync.Mutex
	// connSlots holds a token per open connection when MaxConnections is set.
	connSlots chan struct{}
	// serving is the cluster in service over this pool, whose picker the
	// pool's detectors rebuild.
	serving atomic.Pointer[Cluster]

	mu    sync.Mutex
	hosts map[string]*hostStats
}

// NewPool makes the pool of a cluster. It opens nothing until used.
func NewPool(s Settings) *Pool {
	if s.ConnectTimeout <= 0 {
		s.ConnectTimeout = DefaultConnectTimeout
	}
	if s.IdleTimeout <= 0 {
		s.IdleTimeout = DefaultIdleTimeout
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	p := &Pool{
		settings: s,
		refusals: ratelog.New(s.Log, slog.LevelWarn, 20, time.Second),
		scheme:   "http",
		hosts:    map[string]*hostStats{},
		dialer:   net.Dialer{Timeout: s.ConnectTimeout, KeepAlive: 30 * time.Second},
	}
	t := &http.Transport{
		MaxIdleConnsPerHost:   maxIdlePerHost,
		IdleConnTimeout:       s.IdleTimeout,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
		Protocols:             new(http.Protocols),
	}
	if s.TLS != nil {
		p.scheme = "https"
		p.streamTLS = s.TLS
		p.upgradeTLS = s.TLS.Clone()
		p.upgradeTLS.NextProtos = []string{"http/1.1"}
		t.DialTLSContext = p.dialTLS
		switch s.Protocol {
		case HTTP2, Downstream:
			t.Protocols.SetHTTP2(true)
		default:
			t.Protocols.SetHTTP1(true)
		}
	} else {
		t.DialContext = p.dialPlain
		switch s.Protocol {
		case HTTP2, Downstream:
			t.Protocols.SetUnencryptedHTTP2(true)
		default:
			t.Protocols.SetHTTP1(true)
		}
	}
	if s.Protocol != HTTP1 {
		// A multiplexed connection carries many requests: find out when its
		// peer is gone without a reset rather than wait for TCP to.
		t.HTTP2 = &http.HTTP2Config{SendPingTimeout: h2PingInterval, PingTimeout: h2PingTimeout}
	}
	p.transport = t
	switch s.Protocol {
	case HTTP1:
		// net/http's transport keeps what the lean one does not handle.
		p.transport = newH1Transport(p, t)
	case Downstream:
		// HTTP/2 requests go to t, HTTP/1.x to a lean HTTP/1.1 transport
		// whose fallback is an HTTP/1.1 net/http transport.
		t1 := &http.Transport{
			MaxIdleConnsPerHost: maxIdlePerHost, IdleConnTimeout: s.IdleTimeout, DisableCompression: true,
			ExpectContinueTimeout: time.Second, Protocols: new(http.Protocols),
		}
		t1.Protocols.SetHTTP1(true)
		if s.TLS != nil {
			t1.DialTLSContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
				return p.handshake(ctx, addr, p.host(addr), p.upgradeTLS, true)
			}
		} else {
			t1.DialContext = p.dialPlain
		}
		p.transport = &byDownstream{h2: t, h1: newH1Transport(p, t1)}
	}
	if s.Outlier != nil {
		p.outlier = newDetector(*s.Outlier, p)
	}
	if s.HealthCheck != nil {
		p.checker = newHealthChecker(*s.HealthCheck, p)
	}
	if s.MaxConnections > 0 {
		p.connSlots = make(chan struct{}, s.MaxConnections)
	}
	return p
}

// Settings returns the pool's settings, defaults filled in.
func (p *Pool) Settings() Settings { return p.settings }

// Close closes the pool's idle connections and stops its detectors.
// Requests in flight finish; their connections close once idle for the idle
// timeout.
func (p *Pool) Close() {
	if p.outlier != nil {
		p.outlier.close()
	}
	if p.checker != nil {
		p.checker.close()
	}
	p.transport.CloseIdleConnections()
}

// Retain forgets the counters of hosts that are not among endpoints. It is
// called once the configuration holding endpoints is in service: their
// cluster becomes the one the pool's detectors act on, and they start.
func (p *Pool) Retain(endpoints []*Endpoint) {
	keep := make(map[string]*hostStats, len(endpoints))
	for _, e := range endpoints {
		keep[e.addr] = e.host
	}
	p.mu.Lock()
	p.hosts = keep
	p.mu.Unlock()
	if len(endpoints) == 0 {
		return
	}
	c := endpoints[0].cluster
	p.serving.Store(c)
	// Ejections made while c was being built are not in its picker yet.
	c.rebuild()
	if p.outlier != nil {
		p.outlier.run()
	}
	if p.checker != nil {
		p.checker.reconcile(c)
	}
}

// rebuild rebuilds the serving cluster's picker, on the control path.
func (p *Pool) rebuild() {
	if c := p.serving.Load(); c != nil {
		c.rebuild()
	}
}

// markTraffic notes that the pool carries traffic, without writing the
// shared flag again once set.
func (p *Pool) markTraffic() {
	if !p.sawTraffic.Load() {
		p.sawTraffic.Store(true)
	}
}

func (p *Pool) host(addr string) *hostStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, ok := p.hosts[addr]
	if !ok {
		h = &hostStats{}
		p.hosts[addr] = h
	}
	return h
}

func (p *Pool) dialPlain(ctx context.Context, _, addr string) (net.Conn, error) {
	h := p.host(addr)
	c, err := p.connect(ctx, addr, h, true)
	if err != nil {
		return nil, err
	}
	return Coalesce(&trackedConn{Conn: c, host: h, pool: p}), nil
}

func (p *Pool) dialTLS(ctx context.Context, _, addr string) (net.Conn, error) {
	return p.handshake(ctx, addr, p.host(addr), p.settings.TLS, true)
}

// dialStream opens a dedicated connection. A plaintext one keeps its
// *net.TCPConn reachable so that copies between TCP sockets can splice.
func (p *Pool) dialStream(ctx context.Context, ep *Endpoint, cfg *tls.Config) (net.Conn, error) {
	if cfg != nil {
		return p.handshake(ctx, ep.addr, ep.host, cfg, false)
	}
	c, err := p.connect(ctx, ep.addr, ep.host, false)
	if err != nil {
		return nil, err
	}
	if tc := sockio.Socket(c); tc != nil {
		// Opaque bytes are spliced, not read: the plain socket will do.
		return &trackedTCPConn{TCPConn: tc, host: ep.host, pool: p}, nil
	}
	return &trackedConn{Conn: c, host: ep.host, pool: p}, nil
}

func (p *Pool) connect(ctx context.Context, addr string, h *hostStats, wait bool) (net.Conn, error) {
	if p.connSlots != nil {
		select {
		case p.connSlots <- struct{}{}:
		default:
			if !wait {
				return nil, &OverflowError{Cluster: p.settings.Name, Kind: OverflowConnections}
			}
			select {
			case p.connSlots <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return p.dialHeld(ctx, addr, h)
}

// dialHeld dials addr for a connection whose slot (max_connections) the
// caller holds; a failure gives the slot back.
func (p *Pool) dialHeld(ctx context.Context, addr string, h *hostStats) (net.Conn, error) {
	c, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		p.releaseConn()
		h.cxConnectFail.Add(1)
		return nil, &ConnectError{Cluster: p.settings.Name, Addr: addr, Err: err}
	}
	h.cxActive.Add(1)
	h.cxTotal.Add(1)
	return sockio.Wrap(c), nil
}

func (p *Pool) handshake(ctx context.Context, addr string, h *hostStats, cfg *tls.Config, coalesce bool) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.settings.ConnectTimeout)
	defer cancel()
	// Pooled connections wait for a slot; dedicated streams do not.
	raw, err := p.connect(ctx, addr, h, coalesce)
	if err != nil {
		return nil, err
	}
	var under net.Conn = &trackedConn{Conn: raw, host: h, pool: p}
	if coalesce {
		under = Coalesce(under)
	}
	return p.clientTLS(ctx, under, addr, h, cfg)
}

// clientTLS runs the client side of a TLS handshake over under, closing it
// on failure.
func (p *Pool) clientTLS(ctx context.Context, under net.Conn, addr string, h *hostStats, cfg *tls.Config) (net.Conn, error) {
	tc := tls.Client(under, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		tc.Close()
		h.cxConnectFail.Add(1)
		if ctx.Err() == nil {
			p.refusals.Log("upstream TLS handshake refused", "cluster", p.settings.Name, "endpoint", addr, "err", err)
		}
		return nil, &ConnectError{Cluster: p.settings.Name, Addr: addr, Err: err}
	}
	return tc, nil
}

func (p *Pool) releaseConn() {
	if p.connSlots != nil {
		<-p.connSlots
	}
}

// EndpointStats are an endpoint's counters, as /clusters shows them.
type EndpointStats struct {
	ActiveRequests, TotalRequests, FailedRequests int64
	ActiveConnections, TotalConnections           int64
	ConnectFailures                               int64
}

type hostStats struct {
	rqActive, rqTotal, rqError       atomic.Int64
	cxActive, cxTotal, cxConnectFail atomic.Int64
	latency                          peakEWMA
	outlier                          outlierState
	hc                               hcState
}

func (h *hostStats) snapshot() EndpointStats {
	return EndpointStats{
		ActiveRequests: h.rqActive.Load(), TotalRequests: h.rqTotal.Load(), FailedRequests: h.rqError.Load(),
		ActiveConnections: h.cxActive.Load(), TotalConnections: h.cxTotal.Load(),
		ConnectFailures: h.cxConnectFail.Load(),
	}
}

// trackedConn counts an open connection until its first Close.
type trackedConn struct {
	net.Conn
	host   *hostStats
	pool   *Pool
	closed atomic.Bool
}

func (c *trackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.host.cxActive.Add(-1)
		c.pool.releaseConn()
	}
	return c.Conn.Close()
}

// trackedTCPConn is a trackedConn that keeps *net.TCPConn's methods
// (CloseWrite, ReadFrom) and exposes the socket for splicing.
type trackedTCPConn struct {
	*net.TCPConn
	host   *hostStats
	pool   *Pool
	closed atomic.Bool
}

func (c *trackedTCPConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.host.cxActive.Add(-1)
		c.pool.releaseConn()
	}
	return c.TCPConn.Close()
}

// Socket returns the TCP socket underneath, for zero-copy forwarding.
func (c *trackedTCPConn) Socket() *net.TCPConn { return c.TCPConn }

// IsConnectError reports whether err is a failure to reach an endpoint.
func IsConnectError(err error) bool {
	var ce *ConnectError
	return errors.As(err, &ce)
}
