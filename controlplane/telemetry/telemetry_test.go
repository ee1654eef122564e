package telemetry

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/tap"
)

// proxyMetrics are the contract's series, registered the way proxy/stats
// exposes them, behind a real /metrics handler.
type proxyMetrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	opened   *prometheus.CounterVec
	sent     *prometheus.CounterVec
}

var reqLabels = []string{"direction", "source_service", "source_namespace", "source_version",
	"destination_service", "destination_namespace", "destination_version", "response_code", "grpc_status", "mtls"}

var tcpLabels = []string{"direction", "source_service", "source_namespace", "destination_service", "destination_namespace", "mtls"}

func newProxyMetrics() *proxyMetrics {
	m := &proxyMetrics{
		reg:      prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_requests_total"}, reqLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "weft_request_duration_seconds",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}},
			reqLabels),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_tcp_connections_opened_total"}, tcpLabels),
		sent:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_tcp_sent_bytes_total"}, tcpLabels),
	}
	m.reg.MustRegister(m.requests, m.duration, m.opened, m.sent)
	return m
}

// serve records n requests from src to dst with the given code, each
// taking latency.
func (m *proxyMetrics) serve(direction, src, dst, code, mtls string, n int, latency time.Duration) {
	l := prometheus.Labels{"direction": direction, "source_service": src, "source_namespace": "shop", "source_version": "",
		"destination_service": dst, "destination_namespace": "shop", "destination_version": "v1",
		"response_code": code, "grpc_status": "", "mtls": mtls}
	m.requests.With(l).Add(float64(n))
	for range n {
		m.duration.With(l).Observe(latency.Seconds())
	}
}

type workloadList struct {
	mu sync.Mutex
	ws []*meshv1.Workload
}

func (l *workloadList) ListWorkloads(_ context.Context, ns, svc string) ([]*meshv1.Workload, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*meshv1.Workload
	for _, w := range l.ws {
		if (ns == "" || w.GetNamespace() == ns) && (svc == "" || w.GetService() == svc) {
			out = append(out, w)
		}
	}
	return out, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func adminServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestStatsFromCounterDeltas(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	catalog1, catalog2, web := newProxyMetrics(), newProxyMetrics(), newProxyMetrics()
	wl := &workloadList{ws: []*meshv1.Workload{
		{Id: "catalog.shop@127.0.0.1:1", Service: "catalog", Namespace: "shop", Version: "v1", Address: "127.0.0.1:1",
			AdminAddress: adminServer(t, promhttp.HandlerFor(catalog1.reg, promhttp.HandlerOpts{}))},
		{Id: "catalog.shop@127.0.0.1:2", Service: "catalog", Namespace: "shop", Version: "v2", Address: "127.0.0.1:2",
			AdminAddress: adminServer(t, promhttp.HandlerFor(catalog2.reg, promhttp.HandlerOpts{}))},
		{Id: "web.shop@127.0.0.1:3", Service: "web", Namespace: "shop", Address: "127.0.0.1:3",
			AdminAddress: adminServer(t, promhttp.HandlerFor(web.reg, promhttp.HandlerOpts{}))},
		{Id: "gone.shop@127.0.0.1:4", Service: "gone", Namespace: "shop", Address: "127.0.0.1:4", AdminAddress: "127.0.0.1:1"},
	}}
	a := New(Options{Workloads: wl, Now: c.now})
	ctx := context.Background()

	// Traffic before the window must not count.
	catalog1.serve("inbound", "web", "catalog", "200", "true", 500, 3*time.Millisecond)
	a.ScrapeOnce(ctx)
	if _, err := a.Stats(time.Minute); err != nil {
		t.Fatal(err)
	}

	c.t = c.t.Add(10 * time.Second)
	catalog1.serve("inbound", "web", "catalog", "200", "true", 90, 3*time.Millisecond)
	catalog1.serve("inbound", "web", "catalog", "503", "true", 5, 40*time.Millisecond)
	catalog2.serve("inbound", "unknown", "unknown", "200", "false", 5, 3*time.Millisecond) // a plaintext caller outside the mesh
	web.serve("outbound", "web", "catalog", "200", "true", 95, 4*time.Millisecond)
	a.ScrapeOnce(ctx)
	// catalog2 was first seen at t0 with no series: its 5 requests are new.

	st, err := a.Stats(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 3 {
		t.Fatalf("services: %+v", st.Services)
	}
	cat := st.Services[0]
	if cat.Name != "catalog" || cat.Instances != 2 || strings.Join(cat.Versions, ",") != "v1,v2" {
		t.Fatalf("catalog: %+v", cat)
	}
	if cat.Requests != 100 || cat.RPS != 10 {
		t.Fatalf("catalog requests %v rps %v, want 100 and 10", cat.Requests, cat.RPS)
	}
	if *cat.SuccessRate != 0.95 || *cat.MTLSShare != 0.95 {
		t.Fatalf("catalog success %v mtls %v, want 0.95 both", *cat.SuccessRate, *cat.MTLSShare)
	}
	// 95 requests at 3ms (bucket 2.5–5ms), 5 at 40ms (25–50ms).
	if p50 := *cat.P50Ms; p50 <= 2.5 || p50 > 5 {
		t.Errorf("p50 %vms, want within the 2.5–5ms bucket", p50)
	}
	if p99 := *cat.P99Ms; p99 <= 25 || p99 > 50 {
		t.Errorf("p99 %vms, want within the 25–50ms bucket", p99)
	}
	web0 := st.Services[2]
	if web0.Name != "web" || web0.Requests != 0 || web0.SuccessRate != nil || web0.Instances != 1 {
		t.Fatalf("web (called by nobody): %+v", web0)
	}
	if len(st.Edges) != 2 || st.Edges[0].From != "unknown" || st.Edges[0].To != "catalog.shop" || st.Edges[0].Requests != 5 ||
		st.Edges[1].From != "web.shop" || st.Edges[1].Requests != 95 {
		t.Fatalf("edges: %+v", st.Edges)
	}
	var gone bool
	for _, w := range st.Workloads {
		if w.ID == "gone.shop@127.0.0.1:4" {
			gone = w.Error != ""
		}
	}
	if !gone {
		t.Errorf("the unreachable workload has no error: %+v", st.Workloads)
	}

	// A proxy restart resets its counters: the new values are the delta.
	catalog1.reg.Unregister(catalog1.requests)
	catalog1.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_requests_total"}, reqLabels)
	catalog1.reg.MustRegister(catalog1.requests)
	c.t = c.t.Add(10 * time.Second)
	catalog1.serve("inbound", "web", "catalog", "200", "true", 20, time.Millisecond)
	a.ScrapeOnce(ctx)
	st, err = a.Stats(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Services[0].Requests; got != 20 {
		t.Fatalf("after a reset: %v requests, want 20", got)
	}
	if _, err := a.Stats(time.Hour); err == nil {
		t.Fatal("a window longer than the history was accepted")
	}
}

func TestQuantile(t *testing.T) {
	h := histogram{0.1: 10, 0.2: 20, 0.4: 40, math.Inf(1): 40}
	if got := h.quantile(0.75); math.Abs(got-0.3) > 1e-9 {
		t.Errorf("p75 = %v, want 0.3", got)
	}
	if got := h.quantile(0.25); math.Abs(got-0.1) > 1e-9 {
		t.Errorf("p25 = %v, want 0.1", got)
	}
	if got := h.quantile(0.05); math.Abs(got-0.02) > 1e-9 {
		t.Errorf("p5 = %v, want 0.02", got)
	}
	over := histogram{0.1: 0, 30: 0, math.Inf(1): 4}
	if got := over.quantile(0.5); got != 30 {
		t.Errorf("above the highest bound: %v, want 30", got)
	}
	if got := (histogram{}).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("empty: %v, want NaN", got)
	}
}

func TestSuccess(t *testing.T) {
	for _, c := range []struct {
		code, grpc string
		want       bool
	}{{"200", "", true}, {"404", "", true}, {"503", "", false}, {"200", "0", true}, {"200", "5", true}, {"200", "14", false}, {"200", "13", false}, {"200", "unknown", true}} {
		if got := success(c.code, c.grpc); got != c.want {
			t.Errorf("success(%q, %q) = %v", c.code, c.grpc, got)
		}
	}
}

func TestTapMergesProxies(t *testing.T) {
	hubs := []*tap.Hub{tap.NewHub(nil, ""), tap.NewHub(nil, "")}
	admin := func(h *tap.Hub) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("GET /tap", h.Handler())
		return mux
	}
	wl := &workloadList{ws: []*meshv1.Workload{
		{Id: "catalog.shop@a", Service: "catalog", Namespace: "shop", AdminAddress: adminServer(t, admin(hubs[0]))},
		{Id: "catalog.shop@b", Service: "catalog", Namespace: "shop", AdminAddress: adminServer(t, admin(hubs[1]))},
		{Id: "web.shop@c", Service: "web", Namespace: "shop", AdminAddress: "127.0.0.1:1"},
	}}
	a := New(Options{Workloads: wl})
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- a.Run(runCtx) }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events, err := a.Tap(ctx, TapFilter{Service: "catalog", Namespace: "shop", PathPrefix: "/items"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hubs {
		for !h.Active() {
			time.Sleep(time.Millisecond)
		}
	}
	rec := func(path string) *observe.Request {
		return &observe.Request{Direction: observe.Inbound, Request: httptest.NewRequest("GET", path, nil), Status: 200}
	}
	hubs[0].Publish(rec("/items/1"))
	hubs[1].Publish(rec("/other"))
	hubs[1].Publish(rec("/items/2"))
	got := map[string]string{}
	for range 2 {
		ev := <-events
		got[ev.Path] = ev.Workload
	}
	if got["/items/1"] != "catalog.shop@a" || got["/items/2"] != "catalog.shop@b" {
		t.Fatalf("merged events: %v", got)
	}

	// Stopping the aggregator ends the tap and closes the stream.
	stopRun()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	for range events {
	}

	if _, err := a.Tap(ctx, TapFilter{Service: "nobody", Namespace: "shop"}); err == nil {
		t.Fatal("tap of a service with no proxy did not fail")
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add("# TYPE weft_requests_total counter\nweft_requests_total{direction=\"inbound\",response_code=\"200\"} 3\n")
	f.Add("# TYPE weft_request_duration_seconds histogram\nweft_request_duration_seconds_bucket{le=\"0.1\"} 1\nweft_request_duration_seconds_bucket{le=\"+Inf\"} 2\nweft_request_duration_seconds_sum 0.3\nweft_request_duration_seconds_count 2\n")
	f.Add("weft_tcp_sent_bytes_total{direction=\"inbound\"} 1e3\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := parseMetrics(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, h := range s.latency {
			v := h.quantile(0.99)
			_ = v
		}
	})
}

// TestStatsLongLivedTCP: connections opened before the window and still
// open keep their edge, with no request and no new connection in it.
func TestStatsLongLivedTCP(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	cache := newProxyMetrics()
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_tcp_connections_closed_total"}, tcpLabels)
	cache.reg.MustRegister(closed)
	wl := &workloadList{ws: []*meshv1.Workload{{Id: "cache.shop@127.0.0.1:1", Service: "cache", Namespace: "shop", Address: "127.0.0.1:1",
		AdminAddress: adminServer(t, promhttp.HandlerFor(cache.reg, promhttp.HandlerOpts{}))}}}
	a := New(Options{Workloads: wl, Now: c.now})
	l := prometheus.Labels{"direction": "inbound", "source_service": "web", "source_namespace": "shop",
		"destination_service": "cache", "destination_namespace": "shop", "mtls": "true"}
	cache.opened.With(l).Add(4)
	closed.With(l).Add(1)
	a.ScrapeOnce(context.Background())
	c.t = c.t.Add(10 * time.Second)
	a.ScrapeOnce(context.Background())

	st, err := a.Stats(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Edges) != 1 || st.Edges[0].From != "web.shop" || st.Edges[0].TCPOpen != 3 || st.Edges[0].TCPConnections != 0 {
		t.Fatalf("edges %+v, want web.shop -> cache.shop with 3 open connections and none opened in the window", st.Edges)
	}
}
