// Package cluster is the proxy's view of an upstream cluster: its endpoints,
// the Picker that chooses among them, and the connection Pool that reaches
// them. A Cluster is immutable and rebuilt on every configuration change; its
// Pool outlives those rebuilds for as long as the cluster's connection
// settings stay the same, so a new endpoint list never drops a pooled
// connection.
package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/proxy/lb"
)

// EndpointSpec is one configured endpoint.
type EndpointSpec struct {
	// Address is host:port, the host an IP literal.
	Address string
	// Healthy endpoints are the only ones picked.
	Healthy bool
	// Workload and Version come from the endpoint's "weft" filter metadata.
	Workload, Version string
}

// Endpoint is an upstream host of one configuration of a cluster. Its
// counters live in the Pool and survive reconfiguration.
type Endpoint struct {
	addr              string
	healthy           bool
	workload, version string
	host              *hostStats
	cluster           *Cluster
}

// Address returns the endpoint's host:port.
func (e *Endpoint) Address() string { return e.addr }

// Healthy reports whether the endpoint's discovery says it may be picked.
// Outlier detection and health checks may keep it out all the same; see
// HealthFlags.
func (e *Endpoint) Healthy() bool { return e.healthy }

// Ejected reports whether outlier detection keeps the endpoint out.
func (e *Endpoint) Ejected() bool { return e.host.outlier.ejected.Load() }

// FailedHealthCheck reports whether active health checking keeps the
// endpoint out.
func (e *Endpoint) FailedHealthCheck() bool { return e.host.hc.failed.Load() }

// Available reports whether the endpoint is in the picker: healthy by
// discovery, not ejected, not failing its health check.
func (e *Endpoint) Available() bool { return e.healthy && !e.Ejected() && !e.FailedHealthCheck() }

// HealthFlags is the endpoint's health as Envoy's /clusters shows it:
// "healthy", or each reason it is kept out ("/failed_eds_health",
// "/failed_outlier_check").
func (e *Endpoint) HealthFlags() string {
	flags := ""
	if !e.healthy {
		flags += "/failed_eds_health"
	}
	if e.FailedHealthCheck() {
		flags += "/failed_active_hc"
	}
	if e.Ejected() {
		flags += "/failed_outlier_check"
	}
	if flags == "" {
		return "healthy"
	}
	return flags
}

// Workload returns the workload ID from the endpoint's metadata, if any.
func (e *Endpoint) Workload() string { return e.workload }

// Version returns the workload version from the endpoint's metadata, if any.
func (e *Endpoint) Version() string { return e.version }

// ActiveRequests returns the requests in flight to the endpoint.
func (e *Endpoint) ActiveRequests() int64 { return e.host.rqActive.Load() }

// RequestStarted counts a request sent to the endpoint; RequestFinished must follow.
func (e *Endpoint) RequestStarted() {
	e.host.rqActive.Add(1)
	e.host.rqTotal.Add(1)
}

// RequestFinished ends a request counted by RequestStarted.
func (e *Endpoint) RequestFinished(failed bool) {
	e.host.rqActive.Add(-1)
	if failed {
		e.host.rqError.Add(1)
	}
}

// LatencyEWMA returns the endpoint's peak-EWMA latency in seconds (time to
// response headers), or zero before its first response.
func (e *Endpoint) LatencyEWMA() float64 { return e.host.latency.value() }

// Stats returns a copy of the endpoint's counters.
func (e *Endpoint) Stats() EndpointStats { return e.host.snapshot() }

var _ lb.Endpoint = (*Endpoint)(nil)

// Cluster is one immutable configuration of an upstream cluster.
type Cluster struct {
	name       string
	pool       *Pool
	endpoints  []*Endpoint
	balancer   lb.Builder
	picker     atomic.Pointer[pickerRef]
	limits     Thresholds
	onOverflow func(kind string)
	// originalDst, set for an ORIGINAL_DST cluster, holds the endpoints
	// made for the original destinations its requests went to.
	originalDst *originalDsts
}

// Config is what a Cluster is built from.
type Config struct {
	Name      string
	Pool      *Pool
	Balancer  lb.Builder
	Endpoints []EndpointSpec
	// Thresholds are the circuit-breaker limits; nil means
	// DefaultThresholds.
	Thresholds *Thresholds
	// OnOverflow, if set, is told of every request or retry a circuit
	// breaker refuses, with the kind of limit hit.
	OnOverflow func(kind string)
	// OriginalDst makes an ORIGINAL_DST cluster (Envoy's CLUSTER_PROVIDED
	// balancing): it has no Endpoints, and PickFor sends each request to
	// the original destination of its downstream connection.
	OriginalDst bool
}

// New builds a cluster over endpoints, picking with the given balancer and
// Envoy's default circuit-breaker thresholds.
func New(name string, pool *Pool, balancer lb.Builder, endpoints []EndpointSpec) *Cluster {
	return Build(Config{Name: name, Pool: pool, Balancer: balancer, Endpoints: endpoints})
}

// Build builds a cluster from cfg.
func Build(cfg Config) *Cluster {
	c := &Cluster{
		name: cfg.Name, pool: cfg.Pool, endpoints: make([]*Endpoint, 0, len(cfg.Endpoints)),
		balancer: cfg.Balancer, limits: DefaultThresholds(), onOverflow: cfg.OnOverflow,
	}
	if cfg.Thresholds != nil {
		c.limits = *cfg.Thresholds
	}
	if cfg.OriginalDst {
		c.originalDst = &originalDsts{eps: map[netip.AddrPort]*Endpoint{}}
	}
	for _, s := range cfg.Endpoints {
		c.endpoints = append(c.endpoints, &Endpoint{
			addr: s.Address, healthy: s.Healthy, workload: s.Workload, version: s.Version,
			host: cfg.Pool.host(s.Address), cluster: c,
		})
	}
	c.rebuild()
	return c
}

// pickerRef holds a Picker for an atomic swap.
type pickerRef struct{ lb.Picker }

// rebuild makes a new picker over the available endpoints. It runs on the
// control path: at build, and when an endpoint is ejected or returns.
func (c *Cluster) rebuild() {
	c.pool.rebuildMu.Lock()
	defer c.pool.rebuildMu.Unlock()
	avail := make([]lb.Endpoint, 0, len(c.endpoints))
	for _, e := range c.endpoints {
		if e.Available() {
			avail = append(avail, e)
		}
	}
	c.picker.Store(&pickerRef{c.balancer.Build(avail)})
}

func (c *Cluster) has(h *hostStats) bool {
	for _, e := range c.endpoints {
		if e.host == h {
			return true
		}
	}
	return false
}

// Thresholds returns the cluster's circuit-breaker limits.
func (c *Cluster) Thresholds() Thresholds { return c.limits }

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Pool returns the cluster's connection pool.
func (c *Cluster) Pool() *Pool { return c.pool }

// Endpoints returns every configured endpoint, healthy or not. The caller
// must not modify the slice.
func (c *Cluster) Endpoints() []*Endpoint { return c.endpoints }

// Pick chooses the endpoint for a request or connection. It fails with
// lb.ErrNoEndpoint when no endpoint is healthy.
func (c *Cluster) Pick(info lb.PickInfo) (*Endpoint, error) {
	e, err := c.picker.Load().Pick(info)
	if err != nil {
		return nil, err
	}
	return e.(*Endpoint), nil
}

// PickFor chooses the endpoint for a request whose context is ctx: Pick's
// choice, or for an ORIGINAL_DST cluster the original destination of the
// request's downstream connection (WithOriginalDestination), failing with
// ErrNoOriginalDestination when it has none.
func (c *Cluster) PickFor(ctx context.Context, info lb.PickInfo) (*Endpoint, error) {
	if c.originalDst != nil {
		return c.originalDstEndpoint(ctx)
	}
	return c.Pick(info)
}

// RoundTrip sends req to ep over the cluster's pooled connections. It sets
// req.URL's scheme and host; everything else about req is the caller's.
//
// A request over the cluster's max_requests is not sent: RoundTrip answers
// at once with a local 503 carrying "x-weft-overloaded: true", without an
// error, so that the caller relays it like any upstream answer.
func (c *Cluster) RoundTrip(req *http.Request, ep *Endpoint) (*http.Response, error) {
	c.pool.markTraffic()
	b := &c.pool.breaker
	if !acquire(&b.requests, c.limits.MaxRequests) {
		c.overflow(OverflowRequests)
		return overloaded(req, OverflowRequests), nil
	}
	req.URL.Scheme = c.pool.scheme
	req.URL.Host = ep.addr
	if _, ok := req.Header["User-Agent"]; !ok && req.Header != nil {
		// A proxy relays the caller's User-Agent or none. net/http's
		// clients write Go's own when the key is absent, and nothing when
		// it is present without a value.
		req.Header["User-Agent"] = nil
	}
	if c.limits.LimitPending {
		var pending *pendingRequest
		var ok bool
		if req, pending, ok = c.admitPending(req); !ok {
			b.requests.Add(-1)
			c.overflow(OverflowPending)
			return overloaded(req, OverflowPending), nil
		}
		defer pending.finish()
	}
	start := time.Now()
	res, err := c.pool.transport.RoundTrip(req)
	if err != nil {
		b.requests.Add(-1)
		c.pool.outlier.observeErr(ep.host, req, err)
		return nil, err
	}
	ep.host.latency.observe(start, time.Since(start))
	c.pool.outlier.observe(ep.host, res.StatusCode)
	res.Body = c.releasing(res.Body)
	return res, nil
}

// DialStream opens a dedicated connection to ep for an opaque byte stream,
// with the cluster's TLS settings and ALPN.
func (c *Cluster) DialStream(ctx context.Context, ep *Endpoint) (net.Conn, error) {
	c.pool.markTraffic()
	conn, err := c.pool.dialStream(ctx, ep, c.pool.streamTLS)
	if IsOverflow(err) {
		c.overflow(OverflowConnections)
		return nil, err
	}
	c.observeDial(ctx, ep, err)
	return conn, err
}

// DialUpgrade opens a dedicated HTTP/1.1 connection to ep, for a request
// that upgrades the connection to another protocol (WebSocket): TLS, when
// the cluster uses it, negotiates ALPN http/1.1 whatever the cluster's
// protocol.
func (c *Cluster) DialUpgrade(ctx context.Context, ep *Endpoint) (net.Conn, error) {
	conn, err := c.pool.dialStream(ctx, ep, c.pool.upgradeTLS)
	if IsOverflow(err) {
		c.overflow(OverflowConnections)
	}
	return conn, err
}

// ORIGINAL_DST clusters. Envoy's ORIGINAL_DST cluster sends a request to
// the restored local address of its downstream connection: where the app
// was connecting before iptables redirected it to the proxy. The listener
// that accepted the connection puts that address in the requests' context;
// the cluster makes an endpoint of it on first use, so requests to one
// destination share its pooled connections and its counters, and forgets
// idle ones once it holds many, as Envoy cleans up unused hosts.

// ErrNoOriginalDestination is PickFor's error for a request to an
// ORIGINAL_DST cluster whose downstream connection was not redirected:
// sending it to the listener's own address would loop.
var ErrNoOriginalDestination = fmt.Errorf("%w: the downstream connection has no original destination", lb.ErrNoEndpoint)

// maxIdleOriginalDsts is how many destinations an ORIGINAL_DST cluster
// remembers before it forgets those without connections or requests.
const maxIdleOriginalDsts = 1024

type originalDstKey struct{}

// WithOriginalDestination returns ctx carrying dst, the original
// destination of the downstream connection its requests came on.
func WithOriginalDestination(ctx context.Context, dst netip.AddrPort) context.Context {
	return context.WithValue(ctx, originalDstKey{}, dst)
}

// OriginalDestination returns the original destination ctx carries.
func OriginalDestination(ctx context.Context) (netip.AddrPort, bool) {
	dst, ok := ctx.Value(originalDstKey{}).(netip.AddrPort)
	return dst, ok && dst.IsValid()
}

// originalDsts are the endpoints of an ORIGINAL_DST cluster, by address.
type originalDsts struct {
	mu  sync.RWMutex
	eps map[netip.AddrPort]*Endpoint
}

// originalDstEndpoint is the endpoint of the original destination ctx
// carries.
func (c *Cluster) originalDstEndpoint(ctx context.Context) (*Endpoint, error) {
	dst, ok := OriginalDestination(ctx)
	if !ok {
		return nil, ErrNoOriginalDestination
	}
	o := c.originalDst
	o.mu.RLock()
	e := o.eps[dst]
	o.mu.RUnlock()
	if e != nil {
		return e, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if e := o.eps[dst]; e != nil {
		return e, nil
	}
	if len(o.eps) >= maxIdleOriginalDsts {
		c.forgetIdleOriginalDsts()
	}
	addr := dst.String()
	e = &Endpoint{addr: addr, healthy: true, host: c.pool.host(addr), cluster: c}
	o.eps[dst] = e
	return e, nil
}

// forgetIdleOriginalDsts drops the destinations without open connections
// or requests, and their counters in the pool. The caller holds
// c.originalDst.mu.
func (c *Cluster) forgetIdleOriginalDsts() {
	p := c.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	for dst, e := range c.originalDst.eps {
		if e.host.cxActive.Load() > 0 || e.host.rqActive.Load() > 0 {
			continue
		}
		delete(c.originalDst.eps, dst)
		if p.hosts[e.addr] == e.host {
			delete(p.hosts, e.addr)
		}
	}
}
