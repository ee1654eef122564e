package stats

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/proxy/observe"
)

// tcpMetrics are the opaque TCP connection metrics, labelled by ConnLabels.
type tcpMetrics struct {
	opened, closed, sent, received *prometheus.CounterVec

	series seriesCache[connKey, *connSeries]
}

type connKey struct {
	direction                observe.Direction
	srcService, srcNamespace string
	dstService, dstNamespace string
	mtls                     bool
}

type connSeries struct{ opened, closed, sent, received prometheus.Counter }

func newTCPMetrics() tcpMetrics {
	return tcpMetrics{
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_connections_opened_total",
			Help: "Opaque TCP connections opened through the proxy.",
		}, ConnLabels),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_connections_closed_total",
			Help: "Opaque TCP connections closed.",
		}, ConnLabels),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_sent_bytes_total",
			Help: "Bytes sent from downstream to upstream on closed TCP connections.",
		}, ConnLabels),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_received_bytes_total",
			Help: "Bytes received from upstream and sent downstream on closed TCP connections.",
		}, ConnLabels),
	}
}

func (t *tcpMetrics) register(reg prometheus.Registerer) {
	t.opened = register(reg, t.opened)
	t.closed = register(reg, t.closed)
	t.sent = register(reg, t.sent)
	t.received = register(reg, t.received)
}

func connKeyOf(c *observe.Conn) connKey {
	return connKey{c.Direction, c.Source.Service, c.Source.Namespace, c.Destination.Service, c.Destination.Namespace, c.MTLS}
}

// ConnOpened records a connection's start.
func (m *Metrics) ConnOpened(c *observe.Conn) { m.tcp.get(connKeyOf(c)).opened.Inc() }

// ConnClosed records a connection's end and the bytes it carried.
func (m *Metrics) ConnClosed(c *observe.Conn) {
	s := m.tcp.get(connKeyOf(c))
	s.closed.Inc()
	if c.Sent > 0 {
		s.sent.Add(float64(c.Sent))
	}
	if c.Received > 0 {
		s.received.Add(float64(c.Received))
	}
}

func (t *tcpMetrics) get(k connKey) *connSeries { return t.series.get(k, t.newSeries) }

// newSeries makes the handles of one label set.
func (t *tcpMetrics) newSeries(k connKey) *connSeries {
	values := []string{label(string(k.direction)), label(k.srcService), label(k.srcNamespace),
		label(k.dstService), label(k.dstNamespace), boolLabel(k.mtls)}
	s := &connSeries{
		opened:   t.opened.WithLabelValues(values...),
		closed:   t.closed.WithLabelValues(values...),
		sent:     t.sent.WithLabelValues(values...),
		received: t.received.WithLabelValues(values...),
	}
	return s
}

// ConnObserver records every TCP connection it sees in m.
func (m *Metrics) ConnObserver() observe.ConnObserver { return connObserver{m} }

type connObserver struct{ m *Metrics }

func (o connObserver) ConnStart(c *observe.Conn) { o.m.ConnOpened(c) }
func (o connObserver) ConnDone(c *observe.Conn)  { o.m.ConnClosed(c) }

var _ observe.ConnObserver = connObserver{}
