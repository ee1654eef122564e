package telemetry

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The proxy metrics read (see proxy/stats).
const (
	metricRequests     = "weft_requests_total"
	metricDuration     = "weft_request_duration_seconds"
	metricTCPOpened    = "weft_tcp_connections_opened_total"
	metricTCPClosed    = "weft_tcp_connections_closed_total"
	metricTCPSent      = "weft_tcp_sent_bytes_total"
	metricTCPReceived  = "weft_tcp_received_bytes_total"
	labelDirection     = "direction"
	labelSrcService    = "source_service"
	labelSrcNamespace  = "source_namespace"
	labelDstService    = "destination_service"
	labelDstNamespace  = "destination_namespace"
	labelResponseCode  = "response_code"
	labelGRPCStatus    = "grpc_status"
	labelMTLS          = "mtls"
	directionInbound   = "inbound"
	maxMetricsBodySize = 16 << 20
)

// reqKey is one weft_requests_total series, less the labels not used.
type reqKey struct {
	direction        string
	srcSvc, srcNS    string
	dstSvc, dstNS    string
	code, grpc, mtls string
}

// latKey is one latency histogram, by what Stats groups on.
type latKey struct {
	direction     string
	srcSvc, srcNS string
	dstSvc, dstNS string
}

// tcpKey is one TCP series.
type tcpKey struct {
	direction     string
	srcSvc, srcNS string
	dstSvc, dstNS string
	mtls          string
}

type tcpCounts struct{ opened, closed, sent, received float64 }

// histogram holds cumulative bucket counts by upper bound.
type histogram map[float64]float64

// sample is what one scrape of one proxy found.
type sample struct {
	requests map[reqKey]float64
	latency  map[latKey]histogram
	tcp      map[tcpKey]*tcpCounts
}

func newSample() *sample {
	return &sample{requests: map[reqKey]float64{}, latency: map[latKey]histogram{}, tcp: map[tcpKey]*tcpCounts{}}
}

// parseMetrics reads the Prometheus text exposition of a proxy's /metrics.
func parseMetrics(r io.Reader) (*sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(io.LimitReader(r, maxMetricsBodySize))
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	s := newSample()
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			l := labels(m)
			switch name {
			case metricRequests:
				k := reqKey{direction: l[labelDirection], srcSvc: l[labelSrcService], srcNS: l[labelSrcNamespace],
					dstSvc: l[labelDstService], dstNS: l[labelDstNamespace], code: l[labelResponseCode],
					grpc: l[labelGRPCStatus], mtls: l[labelMTLS]}
				s.requests[k] += value(m)
			case metricDuration:
				h := m.GetHistogram()
				if h == nil {
					continue
				}
				k := latKey{direction: l[labelDirection], srcSvc: l[labelSrcService], srcNS: l[labelSrcNamespace],
					dstSvc: l[labelDstService], dstNS: l[labelDstNamespace]}
				hist := s.latency[k]
				if hist == nil {
					hist = histogram{}
					s.latency[k] = hist
				}
				for _, b := range h.GetBucket() {
					if !math.IsInf(b.GetUpperBound(), 1) { // the text format lists +Inf; the count is the same
						hist[b.GetUpperBound()] += float64(b.GetCumulativeCount())
					}
				}
				hist[math.Inf(1)] += float64(h.GetSampleCount())
			case metricTCPOpened, metricTCPClosed, metricTCPSent, metricTCPReceived:
				k := tcpKey{direction: l[labelDirection], srcSvc: l[labelSrcService], srcNS: l[labelSrcNamespace],
					dstSvc: l[labelDstService], dstNS: l[labelDstNamespace], mtls: l[labelMTLS]}
				c := s.tcp[k]
				if c == nil {
					c = &tcpCounts{}
					s.tcp[k] = c
				}
				switch name {
				case metricTCPOpened:
					c.opened += value(m)
				case metricTCPClosed:
					c.closed += value(m)
				case metricTCPSent:
					c.sent += value(m)
				default:
					c.received += value(m)
				}
			}
		}
	}
	return s, nil
}

// unknownLabel is the proxies' value of a label they do not know (a
// caller outside the mesh, a response without grpc-status); read as "".
const unknownLabel = "unknown"

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		if v := lp.GetValue(); v != unknownLabel {
			out[lp.GetName()] = v
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

// counterDelta is how much a counter grew from prev to cur; a counter that
// went down was reset (the proxy restarted) and grew by cur since.
func counterDelta(cur, prev float64, hadPrev bool) float64 {
	if !hadPrev || cur < prev {
		return cur
	}
	return cur - prev
}

// delta is the growth of a histogram between two scrapes.
func (h histogram) delta(prev histogram) histogram {
	out := histogram{}
	reset := prev != nil && h[math.Inf(1)] < prev[math.Inf(1)]
	for le, c := range h {
		p, ok := prev[le]
		if reset {
			ok = false
		}
		out[le] = counterDelta(c, p, ok)
	}
	return out
}

func (h histogram) add(o histogram) {
	for le, c := range o {
		h[le] += c
	}
}

// quantile interpolates the q-quantile linearly within its bucket, as
// Prometheus's histogram_quantile does; NaN when the histogram is empty.
func (h histogram) quantile(q float64) float64 {
	bounds := make([]float64, 0, len(h))
	for le := range h {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return math.NaN()
	}
	total := h[bounds[len(bounds)-1]]
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, le := range bounds {
		c := h[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				// Above the highest finite bound: report that bound.
				return prevBound
			}
			if c == prevCount {
				return le
			}
			return prevBound + (le-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = le, c
	}
	return prevBound
}

// success says whether a response counts as a success: not a 5xx, and for
// gRPC not a status that means the server failed.
func success(code, grpcStatus string) bool {
	if n, err := strconv.Atoi(code); err == nil && n >= 500 {
		return false
	}
	switch grpcStatus {
	case "2", "4", "12", "13", "14", "15": // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
		return false
	}
	return true
}
