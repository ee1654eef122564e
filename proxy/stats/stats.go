// Package stats holds the data plane's Prometheus metrics. Handles for a
// cluster are resolved once and cached, so the request path never hashes
// label values or takes the registry's locks after a cluster's first request.
package stats

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Directions of traffic, the "direction" label.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// DurationBuckets start well below a millisecond: a sidecar's own latency is
// tens of microseconds, and requests between co-located services often take
// less than a millisecond end to end.
var DurationBuckets = []float64{
	.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10,
}

// Metrics are the data plane's collectors.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	tcpConns *prometheus.CounterVec
	active   *prometheus.GaugeVec
	upstream upstreamMetrics

	mu       sync.Mutex
	clusters map[[2]string]*Cluster
}

// New registers the collectors on reg; a nil reg keeps them private. A
// collector already registered by an earlier Metrics on the same registry is
// shared.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_requests_total",
			Help: "HTTP requests proxied, by direction, cluster and response code.",
		}, []string{"direction", "cluster", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its response.",
			Buckets: DurationBuckets,
		}, []string{"direction", "cluster"}),
		tcpConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_connections_total",
			Help: "Opaque TCP connections proxied, by direction and cluster.",
		}, []string{"direction", "cluster"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_active_connections",
			Help: "Downstream connections currently open, by direction.",
		}, []string{"direction"}),
		clusters: map[[2]string]*Cluster{},
		upstream: newUpstreamMetrics(),
	}
	if reg != nil {
		m.upstream.register(reg)
		m.requests = register(reg, m.requests)
		m.duration = register(reg, m.duration)
		m.tcpConns = register(reg, m.tcpConns)
		m.active = register(reg, m.active)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting collector of another shape: keep ours unregistered
		// rather than fail the proxy over metrics.
	}
	return c
}

// Active returns the gauge of open downstream connections in direction.
func (m *Metrics) Active(direction string) prometheus.Gauge {
	return m.active.WithLabelValues(direction)
}

// Cluster returns the handle for a cluster's metrics in one direction. It is
// meant for the control path; the handle is then kept by the cluster's
// configuration and used on the request path.
func (m *Metrics) Cluster(direction, cluster string) *Cluster {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]string{direction, cluster}
	if c, ok := m.clusters[key]; ok {
		return c
	}
	c := &Cluster{m: m, direction: direction, name: cluster}
	m.clusters[key] = c
	return c
}

// Forget drops every series of a cluster that is no longer configured.
// Requests still in flight on it keep counting into unexported handles.
func (m *Metrics) Forget(cluster string) {
	m.mu.Lock()
	for key := range m.clusters {
		if key[1] == cluster {
			delete(m.clusters, key)
		}
	}
	m.mu.Unlock()
	l := prometheus.Labels{"cluster": cluster}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.tcpConns.DeletePartialMatch(l)
	m.upstream.forget(l)
}

// Cluster is one cluster's metrics in one direction. Series are created on
// first use, so a configuration that is rejected leaves none behind.
type Cluster struct {
	m               *Metrics
	direction, name string

	duration atomic.Pointer[prometheus.Observer]
	tcp      atomic.Pointer[prometheus.Counter]
	// codes is copied on write; the request path only loads it.
	codes  atomic.Pointer[map[int]prometheus.Counter]
	codeMu sync.Mutex
}

// Request records a finished request.
func (c *Cluster) Request(code int, d time.Duration) {
	c.counter(code).Inc()
	o := c.duration.Load()
	if o == nil {
		h := c.m.duration.WithLabelValues(c.direction, c.name)
		c.duration.Store(&h)
		o = &h
	}
	(*o).Observe(d.Seconds())
}

func (c *Cluster) counter(code int) prometheus.Counter {
	if codes := c.codes.Load(); codes != nil {
		if ctr, ok := (*codes)[code]; ok {
			return ctr
		}
	}
	c.codeMu.Lock()
	defer c.codeMu.Unlock()
	old := c.codes.Load()
	next := make(map[int]prometheus.Counter, 4)
	if old != nil {
		if ctr, ok := (*old)[code]; ok {
			return ctr
		}
		for k, v := range *old {
			next[k] = v
		}
	}
	ctr := c.m.requests.WithLabelValues(c.direction, c.name, strconv.Itoa(code))
	next[code] = ctr
	c.codes.Store(&next)
	return ctr
}

// TCPConnection records an opaque TCP connection.
func (c *Cluster) TCPConnection() {
	ctr := c.tcp.Load()
	if ctr == nil {
		v := c.m.tcpConns.WithLabelValues(c.direction, c.name)
		c.tcp.Store(&v)
		ctr = &v
	}
	(*ctr).Inc()
}
