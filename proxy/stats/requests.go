package stats

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/proxy/observe"
)

// httpMetrics are the request metrics, labelled by RequestLabels.
type httpMetrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	reqBytes  *prometheus.CounterVec
	respBytes *prometheus.CounterVec

	series seriesCache[httpKey, *httpSeries]
}

// httpKey is one label set; a comparable value, so that looking it up in
// a map allocates nothing.
type httpKey struct {
	direction observe.Direction
	src, dst  peerKey
	code      int
	grpc      string
	mtls      bool
}

type peerKey struct{ service, namespace, version string }

type httpSeries struct {
	requests, reqBytes, respBytes prometheus.Counter
	duration                      prometheus.Observer
}

func newHTTPMetrics() httpMetrics {
	return httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_requests_total",
			Help: "HTTP requests proxied, by direction, source and destination workload, response code, gRPC status and mTLS.",
		}, RequestLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its response.",
			Buckets: DurationBuckets,
		}, RequestLabels),
		reqBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_request_bytes_total",
			Help: "Request body bytes received from downstream.",
		}, RequestLabels),
		respBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_response_bytes_total",
			Help: "Response body bytes sent downstream.",
		}, RequestLabels),
	}
}

func (h *httpMetrics) register(reg prometheus.Registerer) {
	h.requests = register(reg, h.requests)
	h.duration = register(reg, h.duration)
	h.reqBytes = register(reg, h.reqBytes)
	h.respBytes = register(reg, h.respBytes)
}

// Request records a finished request.
func (m *Metrics) Request(r *observe.Request) {
	k := httpKey{
		direction: r.Direction,
		src:       peerKey{r.Source.Service, r.Source.Namespace, r.Source.Version},
		dst:       peerKey{r.Destination.Service, r.Destination.Namespace, r.Destination.Version},
		code:      r.Status,
		grpc:      r.GRPCStatus,
		mtls:      r.MTLS,
	}
	s := m.http.get(k)
	s.requests.Inc()
	s.duration.Observe(r.Duration.Seconds())
	if r.RequestBytes > 0 {
		s.reqBytes.Add(float64(r.RequestBytes))
	}
	if r.ResponseBytes > 0 {
		s.respBytes.Add(float64(r.ResponseBytes))
	}
}

func (h *httpMetrics) get(k httpKey) *httpSeries { return h.series.get(k, h.newSeries) }

// newSeries makes the handles of one label set.
func (h *httpMetrics) newSeries(k httpKey) *httpSeries {
	code := Unknown
	if k.code > 0 {
		code = strconv.Itoa(k.code)
	}
	values := []string{
		label(string(k.direction)),
		label(k.src.service), label(k.src.namespace), label(k.src.version),
		label(k.dst.service), label(k.dst.namespace), label(k.dst.version),
		code, label(k.grpc), boolLabel(k.mtls),
	}
	s := &httpSeries{
		requests:  h.requests.WithLabelValues(values...),
		duration:  h.duration.WithLabelValues(values...),
		reqBytes:  h.reqBytes.WithLabelValues(values...),
		respBytes: h.respBytes.WithLabelValues(values...),
	}
	return s
}

// HTTPObserver records every request it sees in m.
func (m *Metrics) HTTPObserver() observe.Observer { return httpObserver{m} }

type httpObserver struct{ m *Metrics }

func (httpObserver) Start(*observe.Request)    {}
func (o httpObserver) Done(r *observe.Request) { o.m.Request(r) }

var _ observe.Observer = httpObserver{}
