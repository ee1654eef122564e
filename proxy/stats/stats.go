// Package stats holds the data plane's Prometheus metrics. Requests and TCP
// connections are counted by the workloads at both ends (service,
// namespace, version), never by path or raw ID, so cardinality stays
// bounded by the mesh's size. Each label set's handles are resolved once
// and kept in a copy-on-write map: the request path hashes no label values,
// takes no lock and allocates nothing after a label set's first request.
package stats

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/proxy/observe"
)

// Directions of traffic, the "direction" label.
const (
	Inbound  = string(observe.Inbound)
	Outbound = string(observe.Outbound)
)

// Unknown is the value of a label whose value is not known.
const Unknown = "unknown"

// DurationBuckets start well below a millisecond: a sidecar's own latency is
// tens of microseconds, and requests between co-located services often take
// less than a millisecond end to end.
var DurationBuckets = []float64{
	.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30,
}

// RequestLabels label every HTTP request metric, in this order.
var RequestLabels = []string{
	"direction", "source_service", "source_namespace", "source_version",
	"destination_service", "destination_namespace", "destination_version",
	"response_code", "grpc_status", "mtls",
}

// ConnLabels label every TCP connection metric, in this order.
var ConnLabels = []string{
	"direction", "source_service", "source_namespace",
	"destination_service", "destination_namespace", "mtls",
}

// Metrics are the data plane's collectors.
type Metrics struct {
	http     httpMetrics
	tcp      tcpMetrics
	active   *prometheus.GaugeVec
	upstream upstreamMetrics
}

// New registers the collectors on reg; a nil reg keeps them private. A
// collector already registered by an earlier Metrics on the same registry is
// shared.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		http: newHTTPMetrics(),
		tcp:  newTCPMetrics(),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_active_connections",
			Help: "Downstream connections currently open, by direction.",
		}, []string{"direction"}),
		upstream: newUpstreamMetrics(),
	}
	if reg != nil {
		m.http.register(reg)
		m.tcp.register(reg)
		m.upstream.register(reg)
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

// Forget drops the series of a cluster that is no longer configured: its
// circuit-breaker and outlier counters. Request series are labelled by
// service, not cluster, and stay.
func (m *Metrics) Forget(cluster string) {
	m.upstream.forget(prometheus.Labels{"cluster": cluster})
}

// label returns v, or Unknown for "".
func label(v string) string {
	if v == "" {
		return Unknown
	}
	return v
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
