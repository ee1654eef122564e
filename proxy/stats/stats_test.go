package stats

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// count returns the number of series of the named families.
func count(t *testing.T, reg *prometheus.Registry, names ...string) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		for _, name := range names {
			if f.GetName() == name {
				n += len(f.GetMetric())
			}
		}
	}
	return n
}

func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestClusterMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	c := m.Cluster(Outbound, "outbound|web.default")
	if m.Cluster(Outbound, "outbound|web.default") != c {
		t.Fatal("handles are not cached")
	}
	// Nothing is exported before the first request.
	if n := count(t, reg, "weft_requests_total"); n != 0 {
		t.Fatalf("%d series before any request", n)
	}
	c.Request(200, time.Millisecond)
	c.Request(200, 2*time.Millisecond)
	c.Request(503, time.Microsecond)
	c.TCPConnection()
	if got := value(t, m.requests.WithLabelValues(Outbound, "outbound|web.default", "200")); got != 2 {
		t.Errorf("200s = %v", got)
	}
	if got := value(t, m.requests.WithLabelValues(Outbound, "outbound|web.default", "503")); got != 1 {
		t.Errorf("503s = %v", got)
	}
	if got := value(t, m.tcpConns.WithLabelValues(Outbound, "outbound|web.default")); got != 1 {
		t.Errorf("tcp connections = %v", got)
	}
	m.Forget("outbound|web.default")
	if n := count(t, reg, "weft_requests_total", "weft_request_duration_seconds"); n != 0 {
		t.Fatalf("%d series after Forget", n)
	}
}

func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := New(reg), New(reg)
	a.Cluster(Inbound, "x").Request(200, 0)
	b.Cluster(Inbound, "x").Request(200, 0)
	if got := value(t, a.requests.WithLabelValues(Inbound, "x", "200")); got != 2 {
		t.Fatalf("two runtimes on one registry count %v, want 2", got)
	}
}

func BenchmarkRequest(b *testing.B) {
	c := New(prometheus.NewRegistry()).Cluster(Outbound, "c")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Request(200, 300*time.Microsecond)
		}
	})
}

func TestUpstreamCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	over := m.Overflow("outbound|a.ns")
	over("requests")
	over("requests")
	over("retries")
	m.OutlierEjection("outbound|a.ns")()
	value := func(c prometheus.Counter) float64 {
		var d dto.Metric
		c.Write(&d)
		return d.GetCounter().GetValue()
	}
	if got := value(m.upstream.overflow.WithLabelValues("outbound|a.ns", "requests")); got != 2 {
		t.Fatalf("overflow requests = %v", got)
	}
	if got := value(m.upstream.ejections.WithLabelValues("outbound|a.ns")); got != 1 {
		t.Fatalf("ejections = %v", got)
	}
	if n := count(t, reg, "weft_upstream_overflow_total"); n != 2 {
		t.Fatalf("%d overflow series, want 2", n)
	}
	m.Forget("outbound|a.ns")
	if n := count(t, reg, "weft_upstream_overflow_total", "weft_outlier_ejections_total"); n != 0 {
		t.Fatalf("%d series left after Forget", n)
	}
}
