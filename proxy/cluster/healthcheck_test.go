package cluster

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weftmesh/weft/proxy/lb"
)

func TestHealthRecord(t *testing.T) {
	netErr := errors.New("connection refused")
	bad := errUnhealthy
	tests := []struct {
		name    string
		results []error
		failed  []bool // after each result
	}{
		{"first success", []error{nil}, []bool{false}},
		{"first failure decides at once", []error{netErr}, []bool{true}},
		{"network failures count to 3", []error{nil, netErr, netErr, netErr}, []bool{false, false, false, true}},
		{"bad answer is immediate", []error{nil, bad}, []bool{false, true}},
		{"success resets the count", []error{nil, netErr, netErr, nil, netErr, netErr}, []bool{false, false, false, false, false, false}},
		{"two successes to return", []error{bad, nil, nil}, []bool{true, true, false}},
		{"a failure restarts the climb", []error{bad, nil, bad, nil, nil}, []bool{true, true, true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &healthChecker{cfg: HealthCheck{HealthyThreshold: 2, UnhealthyThreshold: 3}}
			host := &hostStats{}
			for i, r := range tt.results {
				h.record(host, r)
				if got := host.hc.failed.Load(); got != tt.failed[i] {
					t.Fatalf("after result %d (%v): failed = %v, want %v", i, r, got, tt.failed[i])
				}
			}
		})
	}
}

func TestExpectedStatuses(t *testing.T) {
	ranges := [][2]int{{200, 201}, {204, 205}}
	for code, want := range map[int]bool{200: true, 201: false, 204: true, 205: false, 503: false} {
		if expected(code, ranges) != want {
			t.Errorf("%d: %v", code, !want)
		}
	}
	if !expected(200, nil) || expected(204, nil) {
		t.Error("default is 200 only")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Real backends: an endpoint whose /healthz starts failing leaves the
// picker and stops receiving traffic; it returns once healthy again.
func TestHTTPHealthCheckWithBackends(t *testing.T) {
	for _, proto := range []Protocol{HTTP1, HTTP2} {
		var sick atomic.Bool
		var hits atomic.Int64
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if r.Host != "catalog" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if sick.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
		flaky := httptest.NewUnstartedServer(mux)
		flaky.Config.Protocols = new(http.Protocols)
		flaky.Config.Protocols.SetHTTP1(true)
		flaky.Config.Protocols.SetUnencryptedHTTP2(true)
		flaky.Start()
		defer flaky.Close()
		steady := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}))
		steady.Config.Protocols = flaky.Config.Protocols
		steady.Start()
		defer steady.Close()

		hc := &HealthCheck{
			Interval: 20 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 3,
			HTTP:      &HTTPHealthCheck{Path: "/healthz", Expected: [][2]int{{200, 201}, {204, 205}}, Protocol: proto},
			Authority: "catalog",
		}
		pool := NewPool(Settings{Name: "app", HealthCheck: hc})
		c := New("app", pool, roundRobin(), []EndpointSpec{
			{Address: flaky.Listener.Addr().String(), Healthy: true},
			{Address: steady.Listener.Addr().String(), Healthy: true},
		})
		pool.Retain(c.Endpoints())
		ep := c.Endpoints()[0]

		sick.Store(true)
		waitUntil(t, "the sick endpoint to fail its check", ep.FailedHealthCheck)
		if f := ep.HealthFlags(); f != "/failed_active_hc" {
			t.Fatalf("health flags %q", f)
		}
		before := hits.Load()
		for i := 0; i < 20; i++ {
			request(t, c)
		}
		if n := hits.Load() - before; n != 0 {
			t.Fatalf("%v: the failing endpoint received %d requests", proto, n)
		}
		sick.Store(false)
		waitUntil(t, "the endpoint to return", func() bool { return !ep.FailedHealthCheck() })
		before = hits.Load()
		for i := 0; i < 20; i++ {
			request(t, c)
		}
		if n := hits.Load() - before; n != 10 {
			t.Fatalf("%v: the returned endpoint received %d of 20 requests, want 10", proto, n)
		}
		pool.Close()
	}
}

// A gRPC health check over h2c, with the service name asked for.
func TestGRPCHealthCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus("catalog", healthpb.HealthCheckResponse_SERVING)
	go srv.Serve(ln)
	defer srv.Stop()

	hc := &HealthCheck{Interval: 20 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 3,
		GRPC: &GRPCHealthCheck{Service: "catalog"}, Authority: "catalog"}
	pool := NewPool(Settings{Name: "app", Protocol: HTTP2, HealthCheck: hc})
	defer pool.Close()
	c := New("app", pool, roundRobin(), []EndpointSpec{{Address: ln.Addr().String(), Healthy: true}})
	pool.Retain(c.Endpoints())
	ep := c.Endpoints()[0]
	h := pool.checker
	if err := h.check(t.Context(), ep.addr); err != nil {
		t.Fatalf("SERVING: %v", err)
	}
	hs.SetServingStatus("catalog", healthpb.HealthCheckResponse_NOT_SERVING)
	waitUntil(t, "NOT_SERVING to fail the check", ep.FailedHealthCheck)
	if _, err := c.Pick(lb.PickInfo{}); !errors.Is(err, lb.ErrNoEndpoint) {
		t.Fatalf("Pick with the only endpoint failing: %v", err)
	}
	hs.SetServingStatus("catalog", healthpb.HealthCheckResponse_SERVING)
	waitUntil(t, "SERVING to pass the check", func() bool { return !ep.FailedHealthCheck() })
	h.cfg.GRPC = &GRPCHealthCheck{Service: "nope"}
	if err := h.check(t.Context(), ep.addr); !errors.Is(err, errUnhealthy) {
		t.Fatalf("unknown service: %v", err)
	}
}

func TestHealthCheckerStopsWithPool(t *testing.T) {
	hc := &HealthCheck{Interval: time.Millisecond, Timeout: 10 * time.Millisecond, HTTP: &HTTPHealthCheck{Path: "/"}}
	pool := NewPool(Settings{Name: "app", HealthCheck: hc})
	c := New("app", pool, roundRobin(), []EndpointSpec{{Address: "127.0.0.1:1", Healthy: true}})
	pool.Retain(c.Endpoints())
	// An endpoint update stops the goroutines of endpoints that left.
	c2 := New("app", pool, roundRobin(), nil)
	pool.Retain(c2.Endpoints())
	pool.Close()
	if n := len(pool.checker.running); n != 0 {
		t.Fatalf("%d checkers left running", n)
	}
}
