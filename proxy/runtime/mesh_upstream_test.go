package runtime

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// A second web workload whose /healthz the test controls, behind its own
// server proxy: the client proxy's health checks reach it over mTLS and
// HTTP/2 through that proxy. Once its check fails it stops receiving
// traffic, and it returns once healthy.
// startFlakyWeb starts a second web workload behind its own server proxy;
// its /healthz answers 503 while sick is set, and every other path 500
// while failing is set. It returns the proxy's inbound address.
func startFlakyWeb(t *testing.T, m *mesh, sick, failing *atomic.Bool) string {
	ln := listen(t, backendIP)
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if sick.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		w.Header().Set("X-App", "flaky")
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	srv := New(Options{Identity: newIdentity(t, m.ca, svcWeb), Metrics: prometheus.NewRegistry()})
	t.Cleanup(func() { srv.Close() })
	if err := srv.Apply(serverResources(t, svcWeb, serverIP+":0", ln.Addr().String(), m.ca.PEM())); err != nil {
		t.Fatal(err)
	}
	return srv.ListenerAddr(xdsmeta.InboundListener).String()
}

func TestMeshHealthCheck(t *testing.T) {
	m := newMesh(t)
	var sick, failing atomic.Bool
	flakyInbound := startFlakyWeb(t, m, &sick, &failing)

	res := m.clientResources(t)
	name := xdsmeta.OutboundCluster(svcWeb.name, svcWeb.namespace)
	res.Endpoints[name] = loadAssignment(t, name, m.inbound[svcWeb], flakyInbound)
	res.Clusters[name].HealthChecks = []*corev3.HealthCheck{{
		Interval: durationpb.New(20 * time.Millisecond), Timeout: durationpb.New(time.Second),
		HealthyThreshold: wrapperspb.UInt32(2), UnhealthyThreshold: wrapperspb.UInt32(3),
		HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
			Path: "/healthz", CodecClientType: typev3.CodecClientType_HTTP2,
			ExpectedStatuses: []*typev3.Int64Range{{Start: 200, End: 201}},
		}},
	}}
	if err := m.client.Apply(res); err != nil {
		t.Fatal(err)
	}
	m.local[svcWeb] = m.client.ListenerAddr(outboundListener(t, svcWeb, clientIP+":0").Name).String()
	client := h1Client(t)
	flakyShare := func() int {
		n := 0
		for i := 0; i < 20; i++ {
			r, _ := get(t, client, "http://"+m.local[svcWeb]+"/")
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d", r.StatusCode)
			}
			if r.Header.Get("X-App") == "flaky" {
				n++
			}
		}
		return n
	}
	within := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	st := m.client.cur.Load().clusters[name]
	flaky := st.c.Endpoints()[1]
	if flaky.Address() != flakyInbound {
		t.Fatalf("endpoint order: %s", flaky.Address())
	}
	if n := flakyShare(); n != 10 {
		t.Fatalf("healthy: the flaky workload got %d of 20 requests", n)
	}
	sick.Store(true)
	within("the check to fail", flaky.FailedHealthCheck)
	if n := flakyShare(); n != 0 {
		t.Fatalf("failing its check, the workload still got %d requests", n)
	}
	sick.Store(false)
	within("the check to pass", func() bool { return !flaky.FailedHealthCheck() })
	if n := flakyShare(); n != 10 {
		t.Fatalf("back to health: the workload got %d of 20 requests", n)
	}
}

// Outlier detection through the mesh: the flaky workload answers 500 three
// times in a row, is ejected (counted in weft_outlier_ejections_total) and
// gets no traffic until its ejection time is over.
func TestMeshOutlierDetection(t *testing.T) {
	m := newMesh(t)
	var sick, failing atomic.Bool
	flakyInbound := startFlakyWeb(t, m, &sick, &failing)
	res := m.clientResources(t)
	name := xdsmeta.OutboundCluster(svcWeb.name, svcWeb.namespace)
	res.Endpoints[name] = loadAssignment(t, name, m.inbound[svcWeb], flakyInbound)
	res.Clusters[name].OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx: wrapperspb.UInt32(3), Interval: durationpb.New(50 * time.Millisecond),
		BaseEjectionTime: durationpb.New(time.Second), MaxEjectionPercent: wrapperspb.UInt32(50),
	}
	if err := m.client.Apply(res); err != nil {
		t.Fatal(err)
	}
	local := m.client.ListenerAddr(outboundListener(t, svcWeb, clientIP+":0").Name).String()
	client := h1Client(t)
	failing.Store(true)
	flaky := m.client.cur.Load().clusters[name].c.Endpoints()[1]
	errors := 0
	deadline := time.Now().Add(10 * time.Second)
	for !flaky.Ejected() {
		if time.Now().After(deadline) {
			t.Fatalf("not ejected after %d errors", errors)
		}
		if r, _ := get(t, client, "http://"+local+"/"); r.StatusCode == http.StatusInternalServerError {
			errors++
		}
	}
	// The third consecutive 5xx ejects it (proxy/cluster's tests count that
	// exactly); requests already picked while the picker is rebuilt may
	// still fail on a busy machine, so only the lower bound is certain here.
	if errors < 3 {
		t.Fatalf("ejected after %d errors, want at least 3", errors)
	}
	if f := flaky.HealthFlags(); f != "/failed_outlier_check" {
		t.Fatalf("health flags %q", f)
	}
	for i := 0; i < 20; i++ {
		if r, _ := get(t, client, "http://"+local+"/"); r.StatusCode != http.StatusOK || r.Header.Get("X-App") == "flaky" {
			t.Fatalf("request %d while ejected: %d from %q", i, r.StatusCode, r.Header.Get("X-App"))
		}
	}
	if v := metric(t, m, "weft_outlier_ejections_total", map[string]string{"cluster": name}); v != 1 {
		t.Fatalf("weft_outlier_ejections_total = %v", v)
	}
	failing.Store(false)
	deadline = time.Now().Add(10 * time.Second)
	for flaky.Ejected() {
		if time.Now().After(deadline) {
			t.Fatal("never returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A request over max_requests gets a local 503 marked x-weft-overloaded,
// counted by kind.
func TestMeshCircuitBreaker(t *testing.T) {
	m := newMesh(t)
	res := m.clientResources(t)
	name := xdsmeta.OutboundCluster(svcWeb.name, svcWeb.namespace)
	res.Clusters[name].CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxRequests: wrapperspb.UInt32(0),
	}}}
	if err := m.client.Apply(res); err != nil {
		t.Fatal(err)
	}
	local := m.client.ListenerAddr(outboundListener(t, svcWeb, clientIP+":0").Name).String()
	r, _ := get(t, h1Client(t), "http://"+local+"/")
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("X-Weft-Overloaded") != "true" {
		t.Fatalf("%d %v", r.StatusCode, r.Header)
	}
	if v := metric(t, m, "weft_upstream_overflow_total", map[string]string{"cluster": name, "kind": "requests"}); v != 1 {
		t.Fatalf("weft_upstream_overflow_total = %v", v)
	}
}
