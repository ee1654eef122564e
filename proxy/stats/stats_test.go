package stats

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/proxy/observe"
)

// series returns the series of the named family whose labels include want.
func series(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) []*dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.Metric
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func one(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) *dto.Metric {
	t.Helper()
	s := series(t, reg, name, want)
	if len(s) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, want, len(s))
	}
	return s[0]
}

func inboundRequest(code int, grpc string) *observe.Request {
	return &observe.Request{
		Direction:   observe.Inbound,
		Source:      observe.Peer{Service: "web", Namespace: "shop", Version: "v1"},
		Destination: observe.Peer{Service: "cart", Namespace: "shop", Version: "v2"},
		MTLS:        true, Status: code, GRPCStatus: grpc,
		RequestBytes: 10, ResponseBytes: 100, Duration: 3 * time.Millisecond,
	}
}

func TestRequestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	if n := len(series(t, reg, "weft_requests_total", nil)); n != 0 {
		t.Fatalf("%d series before any request", n)
	}
	o := m.HTTPObserver()
	o.Done(inboundRequest(200, ""))
	o.Done(inboundRequest(200, ""))
	o.Done(inboundRequest(200, "14"))
	// A plaintext client outside the mesh: its labels are "unknown".
	o.Done(&observe.Request{Direction: observe.Outbound, Status: 404})

	want := map[string]string{
		"direction": "inbound", "source_service": "web", "source_namespace": "shop", "source_version": "v1",
		"destination_service": "cart", "destination_namespace": "shop", "destination_version": "v2",
		"response_code": "200", "grpc_status": "unknown", "mtls": "true",
	}
	if got := one(t, reg, "weft_requests_total", want).GetCounter().GetValue(); got != 2 {
		t.Errorf("requests = %v, want 2", got)
	}
	if got := one(t, reg, "weft_request_duration_seconds", want).GetHistogram().GetSampleCount(); got != 2 {
		t.Errorf("duration count = %v, want 2", got)
	}
	if got := one(t, reg, "weft_request_bytes_total", want).GetCounter().GetValue(); got != 20 {
		t.Errorf("request bytes = %v, want 20", got)
	}
	if got := one(t, reg, "weft_response_bytes_total", want).GetCounter().GetValue(); got != 200 {
		t.Errorf("response bytes = %v, want 200", got)
	}
	want["grpc_status"] = "14"
	if got := one(t, reg, "weft_requests_total", want).GetCounter().GetValue(); got != 1 {
		t.Errorf("grpc 14 requests = %v, want 1", got)
	}
	unknown := map[string]string{"direction": "outbound", "source_service": "unknown", "destination_version": "unknown",
		"response_code": "404", "mtls": "false"}
	if got := one(t, reg, "weft_requests_total", unknown).GetCounter().GetValue(); got != 1 {
		t.Errorf("unknown peers = %v, want 1", got)
	}
}

func TestConnMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	o := m.ConnObserver()
	c := &observe.Conn{Direction: observe.Outbound, Source: observe.Peer{Service: "web", Namespace: "shop"},
		Destination: observe.Peer{Service: "db", Namespace: "data"}, MTLS: true}
	o.ConnStart(c)
	want := map[string]string{"direction": "outbound", "source_service": "web", "source_namespace": "shop",
		"destination_service": "db", "destination_namespace": "data", "mtls": "true"}
	if got := one(t, reg, "weft_tcp_connections_opened_total", want).GetCounter().GetValue(); got != 1 {
		t.Errorf("opened = %v", got)
	}
	if n := len(series(t, reg, "weft_tcp_connections_closed_total", nil)); n != 1 {
		// The series exists from the first connection on, at zero.
		t.Errorf("%d closed series, want 1", n)
	}
	c.Sent, c.Received = 5, 7
	o.ConnDone(c)
	if got := one(t, reg, "weft_tcp_connections_closed_total", want).GetCounter().GetValue(); got != 1 {
		t.Errorf("closed = %v", got)
	}
	if got := one(t, reg, "weft_tcp_sent_bytes_total", want).GetCounter().GetValue(); got != 5 {
		t.Errorf("sent = %v", got)
	}
	if got := one(t, reg, "weft_tcp_received_bytes_total", want).GetCounter().GetValue(); got != 7 {
		t.Errorf("received = %v", got)
	}
}

func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := New(reg), New(reg)
	a.Request(inboundRequest(200, ""))
	b.Request(inboundRequest(200, ""))
	if got := one(t, reg, "weft_requests_total", map[string]string{"response_code": "200"}).GetCounter().GetValue(); got != 2 {
		t.Fatalf("two runtimes on one registry count %v, want 2", got)
	}
}

func TestClusterService(t *testing.T) {
	for _, c := range []struct{ cluster, svc, ns string }{
		{"outbound|web.shop", "web", "shop"},
		{"outbound|web.shop|v2", "web", "shop"},
		{"inbound|cart.default", "cart", "default"},
		{"jwks|issuer|443", "unknown", "unknown"},
		{"outbound|nodots", "unknown", "unknown"},
	} {
		if svc, ns := ClusterService(c.cluster); svc != c.svc || ns != c.ns {
			t.Errorf("ClusterService(%q) = %q, %q; want %q, %q", c.cluster, svc, ns, c.svc, c.ns)
		}
	}
}

func BenchmarkRequest(b *testing.B) {
	m := New(prometheus.NewRegistry())
	r := inboundRequest(200, "")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request(r)
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
	if got := one(t, reg, "weft_upstream_overflow_total", map[string]string{"cluster": "outbound|a.ns", "kind": "requests",
		"destination_service": "a", "destination_namespace": "ns"}).GetCounter().GetValue(); got != 2 {
		t.Fatalf("overflow requests = %v", got)
	}
	if got := one(t, reg, "weft_outlier_ejections_total", map[string]string{"destination_service": "a"}).GetCounter().GetValue(); got != 1 {
		t.Fatalf("ejections = %v", got)
	}
	m.Forget("outbound|a.ns")
	if n := len(series(t, reg, "weft_upstream_overflow_total", nil)) + len(series(t, reg, "weft_outlier_ejections_total", nil)); n != 0 {
		t.Fatalf("%d series left after Forget", n)
	}
}

func TestRetries(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := RetriesOn(reg)
	r.Retry("outbound|a.ns|v2")
	if got := one(t, reg, "weft_retries_total", map[string]string{"cluster": "outbound|a.ns|v2", "destination_service": "a",
		"destination_namespace": "ns"}).GetCounter().GetValue(); got != 1 {
		t.Fatalf("retries = %v", got)
	}
	r.Forget("outbound|a.ns|v2")
	if n := len(series(t, reg, "weft_retries_total", nil)); n != 0 {
		t.Fatalf("%d series after Forget", n)
	}
}

// Recording a request or a connection of a label set already seen
// allocates nothing: the hot path only loads the cached handles.
func TestRecordingDoesNotAllocate(t *testing.T) {
	m := New(prometheus.NewRegistry())
	r := &observe.Request{Direction: observe.Inbound, Status: 200, Duration: time.Millisecond,
		Source: observe.Peer{Service: "web", Namespace: "shop"}, Destination: observe.Peer{Service: "catalog", Namespace: "shop", Version: "v1"}}
	c := &observe.Conn{Direction: observe.Inbound, Source: observe.Peer{Service: "web", Namespace: "shop"}, Sent: 10, Received: 20}
	m.Request(r)
	m.ConnOpened(c)
	if n := testing.AllocsPerRun(100, func() { m.Request(r) }); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
	if n := testing.AllocsPerRun(100, func() { m.ConnOpened(c); m.ConnClosed(c) }); n != 0 {
		t.Errorf("%v allocations per connection", n)
	}
}
