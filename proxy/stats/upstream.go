package stats

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// upstreamMetrics count what a cluster's own protections do: circuit
// breakers refusing work and outlier detection ejecting endpoints.
type upstreamMetrics struct {
	overflow  *prometheus.CounterVec
	ejections *prometheus.CounterVec
}

func newUpstreamMetrics() upstreamMetrics {
	return upstreamMetrics{
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_upstream_overflow_total",
			Help: "Requests and retries refused at once by a cluster's circuit breaker, by kind of limit.",
		}, []string{"cluster", "destination_service", "destination_namespace", "kind"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_outlier_ejections_total",
			Help: "Endpoints ejected by outlier detection.",
		}, []string{"cluster", "destination_service", "destination_namespace"}),
	}
}

func (u *upstreamMetrics) register(reg prometheus.Registerer) {
	u.overflow = register(reg, u.overflow)
	u.ejections = register(reg, u.ejections)
}

func (u *upstreamMetrics) forget(l prometheus.Labels) {
	u.overflow.DeletePartialMatch(l)
	u.ejections.DeletePartialMatch(l)
}

// Overflow returns the function a cluster calls when its circuit breaker
// refuses a request or retry of the given kind. Counters are resolved once
// per kind; later calls take no registry lock.
func (m *Metrics) Overflow(cluster string) func(kind string) {
	var counters sync.Map // kind -> prometheus.Counter
	svc, ns := ClusterService(cluster)
	return func(kind string) {
		c, ok := counters.Load(kind)
		if !ok {
			c, _ = counters.LoadOrStore(kind, m.upstream.overflow.WithLabelValues(cluster, svc, ns, kind))
		}
		c.(prometheus.Counter).Inc()
	}
}

// OutlierEjection returns the function a cluster calls when outlier
// detection ejects one of its endpoints.
func (m *Metrics) OutlierEjection(cluster string) func() {
	svc, ns := ClusterService(cluster)
	c := m.upstream.ejections.WithLabelValues(cluster, svc, ns)
	return c.Inc
}

// ClusterService returns the service and namespace a cluster named by
// api/xdsmeta serves ("outbound|<svc>.<ns>[|<subset>]", "inbound|<svc>.<ns>"),
// or "unknown" twice for any other cluster.
func ClusterService(cluster string) (service, namespace string) {
	rest, ok := strings.CutPrefix(cluster, "outbound|")
	if !ok {
		if rest, ok = strings.CutPrefix(cluster, "inbound|"); !ok {
			return Unknown, Unknown
		}
	}
	if i := strings.IndexByte(rest, '|'); i >= 0 {
		rest = rest[:i]
	}
	svc, ns, ok := strings.Cut(rest, ".")
	if !ok || svc == "" || ns == "" {
		return Unknown, Unknown
	}
	return svc, ns
}
