// Package cluster is the proxy's view of an upstream cluster: its endpoints,
// the Picker that chooses among them, and the connection Pool that reaches
// them. A Cluster is immutable and rebuilt on every configuration change; its
// Pool outlives those rebuilds for as long as the cluster's connection
// settings stay the same, so a new endpoint list never drops a pooled
// connection.
package cluster

import (
	"context"
	"net"
	"net/http"

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
}

// Address returns the endpoint's host:port.
func (e *Endpoint) Address() string { return e.addr }

// Healthy reports whether the endpoint may be picked.
func (e *Endpoint) Healthy() bool { return e.healthy }

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

// Stats returns a copy of the endpoint's counters.
func (e *Endpoint) Stats() EndpointStats { return e.host.snapshot() }

var _ lb.Endpoint = (*Endpoint)(nil)

// Cluster is one immutable configuration of an upstream cluster.
type Cluster struct {
	name      string
	pool      *Pool
	endpoints []*Endpoint
	picker    lb.Picker
}

// New builds a cluster over endpoints, picking with the given balancer.
func New(name string, pool *Pool, balancer lb.Builder, endpoints []EndpointSpec) *Cluster {
	c := &Cluster{name: name, pool: pool, endpoints: make([]*Endpoint, 0, len(endpoints))}
	healthy := make([]lb.Endpoint, 0, len(endpoints))
	for _, s := range endpoints {
		e := &Endpoint{
			addr: s.Address, healthy: s.Healthy, workload: s.Workload, version: s.Version,
			host: pool.host(s.Address),
		}
		c.endpoints = append(c.endpoints, e)
		if e.healthy {
			healthy = append(healthy, e)
		}
	}
	c.picker = balancer.Build(healthy)
	return c
}

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
	e, err := c.picker.Pick(info)
	if err != nil {
		return nil, err
	}
	return e.(*Endpoint), nil
}

// RoundTrip sends req to ep over the cluster's pooled connections. It sets
// req.URL's scheme and host; everything else about req is the caller's.
func (c *Cluster) RoundTrip(req *http.Request, ep *Endpoint) (*http.Response, error) {
	req.URL.Scheme = c.pool.scheme
	req.URL.Host = ep.addr
	return c.pool.transport.RoundTrip(req)
}

// DialStream opens a dedicated connection to ep for an opaque byte stream,
// with the cluster's TLS settings and ALPN.
func (c *Cluster) DialStream(ctx context.Context, ep *Endpoint) (net.Conn, error) {
	return c.pool.dialStream(ctx, ep, c.pool.streamTLS)
}

// DialUpgrade opens a dedicated HTTP/1.1 connection to ep, for a request
// that upgrades the connection to another protocol (WebSocket): TLS, when
// the cluster uses it, negotiates ALPN http/1.1 whatever the cluster's
// protocol.
func (c *Cluster) DialUpgrade(ctx context.Context, ep *Endpoint) (net.Conn, error) {
	return c.pool.dialStream(ctx, ep, c.pool.upgradeTLS)
}
