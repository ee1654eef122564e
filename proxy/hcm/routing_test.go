package hcm

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/filter/fault"
	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/stats"
)

// backend starts an app and returns a cluster of it.
func backend(t testing.TB, name string, h http.HandlerFunc) *cluster.Cluster {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return clusterAt(t, name, srv.Listener.Addr().String())
}

func clusterAt(t testing.TB, name string, addrs ...string) *cluster.Cluster {
	var specs []cluster.EndpointSpec
	for _, a := range addrs {
		specs = append(specs, cluster.EndpointSpec{Address: a, Healthy: true})
	}
	pool := cluster.NewPool(cluster.Settings{Name: name})
	t.Cleanup(pool.Close)
	return cluster.New(name, pool, lb.Get("round_robin"), specs)
}

// routed builds a connection manager over one virtual host "app" with the
// given route, resolving cluster names in clusters.
func routed(t testing.TB, r *routev3.Route, clusters map[string]*cluster.Cluster, cfg Config) *ConnectionManager {
	t.Helper()
	m := stats.New(nil)
	if r.Match == nil {
		r.Match = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	}
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "app", Domains: []string{"app"}, Routes: []*routev3.Route{r}}}}
	tab, err := route.Compile(rc, func(name string) *Upstream {
		up := &Upstream{Name: name, Cluster: clusters[name]}
		if svc, ns := stats.ClusterService(name); svc != stats.Unknown {
			up.Destination = observe.Peer{Service: svc, Namespace: ns}
		}
		return up
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Routes = tab
	cfg.Observers = append(cfg.Observers, m.HTTPObserver())
	cm := New(cfg)
	t.Cleanup(cm.WaitShadows)
	return cm
}

func action(cluster string, edit func(*routev3.RouteAction)) *routev3.Route {
	a := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}
	if edit != nil {
		edit(a)
	}
	return &routev3.Route{Action: &routev3.Route_Route{Route: a}}
}

func retryPolicy(on string, n uint32) *routev3.RetryPolicy {
	return &routev3.RetryPolicy{RetryOn: on, NumRetries: wrapperspb.UInt32(n),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
}

// flaky answers fails times with status (and grpc-status when set), then
// 200 with the request body echoed.
func flaky(fails int32, status int, grpcStatus string, seen *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if seen.Add(1) <= fails {
			if grpcStatus != "" {
				w.Header().Set("Grpc-Status", grpcStatus)
			}
			w.WriteHeader(status)
			return
		}
		w.Write(body)
	}
}

func TestRetries(t *testing.T) {
	big := strings.Repeat("x", maxReplayBody+1)
	tests := []struct {
		name       string
		policy     *routev3.RetryPolicy
		fails      int32
		status     int
		grpcStatus string
		body       string
		wantCode   int
		wantSeen   int32
	}{
		{"5xx recovers", retryPolicy("5xx", 3), 2, 503, "", "hello", 200, 3},
		{"5xx exhausted", retryPolicy("5xx", 2), 10, 500, "", "hello", 500, 3},
		{"gateway-error skips 500", retryPolicy("gateway-error", 2), 1, 500, "", "", 500, 1},
		{"gateway-error retries 502", retryPolicy("gateway-error", 2), 1, 502, "", "", 200, 2},
		{"status codes", func() *routev3.RetryPolicy {
			p := retryPolicy("retriable-status-codes", 1)
			p.RetriableStatusCodes = []uint32{409}
			return p
		}(), 1, 409, "", "", 200, 2},
		{"4xx not retried", retryPolicy("5xx", 2), 1, 404, "", "", 404, 1},
		{"grpc unavailable", retryPolicy("unavailable,cancelled", 1), 1, 200, "14", "", 200, 2},
		{"grpc internal not listed", retryPolicy("unavailable", 1), 1, 200, "13", "", 200, 1},
		{"body over the buffer is not retried", retryPolicy("5xx", 2), 1, 503, "", big, 503, 1},
		{"zero retries", retryPolicy("5xx", 0), 1, 503, "", "", 503, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen atomic.Int32
			c := backend(t, "app", flaky(tt.fails, tt.status, tt.grpcStatus, &seen))
			reg := prometheus.NewRegistry()
			retries := stats.RetriesOn(reg)
			m := routed(t, action("app", func(a *routev3.RouteAction) { a.RetryPolicy = tt.policy }),
				map[string]*cluster.Cluster{"app": c}, Config{Retries: retries})
			req := httptest.NewRequest("POST", "http://app/x", strings.NewReader(tt.body))
			w := serve(m, req)
			if w.Code != tt.wantCode {
				t.Errorf("code = %d, want %d", w.Code, tt.wantCode)
			}
			if got := seen.Load(); got != tt.wantSeen {
				t.Errorf("upstream saw %d requests, want %d", got, tt.wantSeen)
			}
			if w.Code == 200 && tt.status != 200 && w.Body.String() != tt.body {
				t.Errorf("replayed body = %q, want %q", w.Body.String(), tt.body)
			}
			if got := retryCount(t, reg, "app"); got != float64(tt.wantSeen-1) {
				t.Errorf("weft_retries_total = %v, want %d", got, tt.wantSeen-1)
			}
		})
	}
}

func TestRetryPerTryTimeout(t *testing.T) {
	var seen atomic.Int32
	c := backend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) == 1 {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		io.WriteString(w, "second")
	})
	p := retryPolicy("5xx", 1)
	p.PerTryTimeout = durationpb.New(100 * time.Millisecond)
	m := routed(t, action("app", func(a *routev3.RouteAction) { a.RetryPolicy = p }), map[string]*cluster.Cluster{"app": c}, Config{})
	w := serve(m, httptest.NewRequest("GET", "http://app/", nil))
	if w.Code != 200 || w.Body.String() != "second" {
		t.Fatalf("got %d %q, want 200 second", w.Code, w.Body.String())
	}
}

func TestRetryConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer live.Close()
	c := clusterAt(t, "app", dead, live.Listener.Addr().String())
	m := routed(t, action("app", func(a *routev3.RouteAction) { a.RetryPolicy = retryPolicy("connect-failure", 1) }),
		map[string]*cluster.Cluster{"app": c}, Config{})
	for i := 0; i < 6; i++ {
		if w := serve(m, httptest.NewRequest("GET", "http://app/", nil)); w.Code != 200 {
			t.Fatalf("request %d: code %d (%s)", i, w.Code, w.Header().Get("X-Weft-Error"))
		}
	}
}

func TestReplayBodyStreamsPastLimit(t *testing.T) {
	src := bytes.Repeat([]byte("a"), 3*maxReplayBody)
	b := newReplayBody(bytes.NewReader(src))
	got, err := io.ReadAll(b.attempt())
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("read %d bytes, err %v", len(got), err)
	}
	if b.replayable() {
		t.Error("a body over the limit must not be replayable")
	}
	small := newReplayBody(strings.NewReader("hello"))
	first := small.attempt()
	buf := make([]byte, 2)
	first.Read(buf)
	first.Close()
	if _, err := first.Read(buf); err == nil {
		t.Error("a closed attempt still reads")
	}
	if got, _ := io.ReadAll(small.attempt()); string(got) != "hello" {
		t.Errorf("second attempt read %q", got)
	}
	if b, ok := small.complete(); !ok || string(b) != "hello" {
		t.Errorf("complete = %q, %v", b, ok)
	}
}

func TestWeightedClusters(t *testing.T) {
	var a, b atomic.Int32
	clusters := map[string]*cluster.Cluster{
		"a": backend(t, "a", func(w http.ResponseWriter, r *http.Request) { a.Add(1) }),
		"b": backend(t, "b", func(w http.ResponseWriter, r *http.Request) { b.Add(1) }),
	}
	r := &routev3.Route{Action: &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
			Clusters: []*routev3.WeightedCluster_ClusterWeight{
				{Name: "a", Weight: wrapperspb.UInt32(75)}, {Name: "b", Weight: wrapperspb.UInt32(25)}}}}}}}
	m := routed(t, r, clusters, Config{})
	const n = 2000
	for i := 0; i < n; i++ {
		serve(m, httptest.NewRequest("GET", "http://app/", nil))
	}
	// 25% of 2000: mean 500, standard deviation about 19; allow 5.
	if got := b.Load(); got < 400 || got > 600 || a.Load()+got != n {
		t.Errorf("split a=%d b=%d, want about 1500/500", a.Load(), got)
	}
}

func TestHeaderEdits(t *testing.T) {
	c := backend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Seen-Env"] = r.Header["X-Env"]
		w.Header()["X-Seen-Tag"] = r.Header["X-Tag"]
		w.Header().Set("X-Seen-Secret", r.Header.Get("X-Secret"))
		w.Header().Set("Server", "app")
		w.Header().Set("X-Internal", "1")
	})
	add := func(k, v string, act corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: act}
	}
	r := action("app", nil)
	r.Match = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	r.RequestHeadersToAdd = []*corev3.HeaderValueOption{
		add("x-env", "route", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		add("x-tag", "a", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
	}
	r.RequestHeadersToRemove = []string{"x-secret"}
	r.ResponseHeadersToAdd = []*corev3.HeaderValueOption{add("x-served-by", "100%% weft", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)}
	r.ResponseHeadersToRemove = []string{"x-internal"}
	m := stats.New(nil)
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
		Name: "app", Domains: []string{"app"}, Routes: []*routev3.Route{r},
		// The virtual host's edits come after the route's: its overwrite wins.
		RequestHeadersToAdd:  []*corev3.HeaderValueOption{add("x-env", "vhost", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)},
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{add("server", "weft", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)},
	}}}
	tab, err := route.Compile(rc, func(name string) *Upstream {
		return &Upstream{Name: name, Cluster: c}
	})
	if err != nil {
		t.Fatal(err)
	}
	cm := New(Config{Routes: tab, Observers: []observe.Observer{m.HTTPObserver()}})
	req := httptest.NewRequest("GET", "http://app/", nil)
	req.Header.Set("X-Env", "client")
	req.Header.Set("X-Tag", "client")
	req.Header.Set("X-Secret", "s3cret")
	w := serve(cm, req)
	h := w.Header()
	if got := h["X-Seen-Env"]; len(got) != 1 || got[0] != "vhost" {
		t.Errorf("x-env upstream = %q, want [vhost]", got)
	}
	if got := h["X-Seen-Tag"]; len(got) != 2 || got[0] != "client" || got[1] != "a" {
		t.Errorf("x-tag upstream = %q, want [client a]", got)
	}
	if h.Get("X-Seen-Secret") != "" {
		t.Error("x-secret reached the upstream")
	}
	if h.Get("X-Served-By") != "100% weft" || h.Get("Server") != "weft" || h.Get("X-Internal") != "" {
		t.Errorf("response headers = %v", h)
	}
	if req.Header.Get("X-Tag") != "client" {
		// Appending must not write into the client's backing array.
		t.Errorf("request header changed: %v", req.Header["X-Tag"])
	}
}

func TestMirrorDoesNotAffectCaller(t *testing.T) {
	release := make(chan struct{})
	got := make(chan *http.Request, 4)
	shadowBody := make(chan string, 4)
	shadow := backend(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		shadowBody <- string(b)
		got <- r
		<-release
		w.WriteHeader(http.StatusInternalServerError)
	})
	defer close(release)
	app := backend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	m := routed(t, action("app", func(a *routev3.RouteAction) {
		a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow"}}
	}), map[string]*cluster.Cluster{"app": app, "shadow": shadow}, Config{})
	start := time.Now()
	w := serve(m, httptest.NewRequest("POST", "http://app/x", strings.NewReader("payload")))
	if w.Code != 200 || w.Body.String() != "payload" {
		t.Fatalf("caller got %d %q", w.Code, w.Body.String())
	}
	select {
	case r := <-got:
		if r.Host != "app-shadow" {
			t.Errorf("shadow Host = %q, want app-shadow", r.Host)
		}
		if b := <-shadowBody; b != "payload" {
			t.Errorf("shadow body = %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the shadow got nothing")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("caller took %v while the shadow hangs", d)
	}
}

func TestMirrorToDeadShadow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	app := backend(t, "app", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	m := routed(t, action("app", func(a *routev3.RouteAction) {
		a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow"}, {Cluster: "missing"}}
	}), map[string]*cluster.Cluster{"app": app, "shadow": clusterAt(t, "shadow", dead)}, Config{})
	for i := 0; i < 20; i++ {
		if w := serve(m, httptest.NewRequest("GET", "http://app/", nil)); w.Code != 200 || w.Body.String() != "ok" {
			t.Fatalf("caller got %d %q", w.Code, w.Body.String())
		}
	}
}

func TestMirrorDropsWhenFull(t *testing.T) {
	var up Upstream
	for i := 0; i < maxShadowsInFlight; i++ {
		if !up.shadows.acquire() {
			t.Fatalf("slot %d refused", i)
		}
	}
	if up.shadows.acquire() {
		t.Error("a slot beyond the limit was granted")
	}
	up.shadows.release()
	if !up.shadows.acquire() {
		t.Error("a released slot was not reusable")
	}
}

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{"app": "app-shadow", "app:8080": "app-shadow:8080", "[::1]:80": "[::1]-shadow:80"} {
		if got := shadowHost(in); got != want {
			t.Errorf("shadowHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func faultRoute(t testing.TB, f *faultv3.HTTPFault) *routev3.Route {
	a, err := anypb.New(f)
	if err != nil {
		t.Fatal(err)
	}
	r := action("app", nil)
	r.TypedPerFilterConfig = map[string]*anypb.Any{fault.Name: a}
	return r
}

func faultFilter(t testing.TB) Filter {
	fac, ok := filter.ByConfig("envoy.extensions.filters.http.fault.v3.HTTPFault")
	if !ok {
		t.Fatal("fault filter not registered")
	}
	f, err := fac.New(&faultv3.HTTPFault{}, filter.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return Filter{Name: fault.Name, Filter: f}
}

func TestFaultAbort(t *testing.T) {
	var seen atomic.Int32
	c := backend(t, "app", func(w http.ResponseWriter, r *http.Request) { seen.Add(1) })
	r := faultRoute(t, &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
		ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
		Percentage: &typev3.FractionalPercent{Numerator: 30}}})
	m := routed(t, r, map[string]*cluster.Cluster{"app": c}, Config{Filters: []Filter{faultFilter(t)}})
	const n = 2000
	aborted := 0
	for i := 0; i < n; i++ {
		w := serve(m, httptest.NewRequest("GET", "http://app/", nil))
		if w.Code == 503 {
			aborted++
			if w.Body.String() != "fault filter abort" {
				t.Fatalf("abort body %q", w.Body.String())
			}
		}
	}
	// 30% of 2000: mean 600, standard deviation about 20.
	if aborted < 500 || aborted > 700 || int(seen.Load())+aborted != n {
		t.Errorf("aborted %d of %d (upstream saw %d), want about 600", aborted, n, seen.Load())
	}
}

func TestFaultGRPCAbortAndDelay(t *testing.T) {
	c := backend(t, "app", func(w http.ResponseWriter, r *http.Request) {})
	r := faultRoute(t, &faultv3.HTTPFault{
		Delay: faultDelay(50*time.Millisecond, 100),
		Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14},
			Percentage: &typev3.FractionalPercent{Numerator: 100}}})
	m := routed(t, r, map[string]*cluster.Cluster{"app": c}, Config{Filters: []Filter{faultFilter(t)}})
	req := httptest.NewRequest("POST", "http://app/pkg.Svc/Method", nil)
	req.Header.Set("Content-Type", "application/grpc")
	start := time.Now()
	w := serve(m, req)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("delay not applied: %v", d)
	}
	if w.Code != 200 || w.Header().Get("Grpc-Status") != "14" || w.Header().Get("Content-Type") != "application/grpc" {
		t.Errorf("got %d %v, want a trailers-only UNAVAILABLE", w.Code, w.Header())
	}
	// An HTTP abort of a gRPC request is mapped as Envoy maps local replies.
	r = faultRoute(t, &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 404},
		Percentage: &typev3.FractionalPercent{Numerator: 100}}})
	m = routed(t, r, map[string]*cluster.Cluster{"app": c}, Config{Filters: []Filter{faultFilter(t)}})
	w = serve(m, req)
	if w.Code != 200 || w.Header().Get("Grpc-Status") != "12" {
		t.Errorf("got %d grpc-status %q, want 200 and 12", w.Code, w.Header().Get("Grpc-Status"))
	}
}

func TestHashPolicy(t *testing.T) {
	var mu sync.Mutex
	var hashes []uint64
	addr := upstreamApp(t)
	capture := lb.BuilderFunc(func(eps []lb.Endpoint) lb.Picker {
		return lb.PickerFunc(func(info lb.PickInfo) (lb.Endpoint, error) {
			mu.Lock()
			hashes = append(hashes, info.Hash)
			mu.Unlock()
			return eps[0], nil
		})
	})
	pool := cluster.NewPool(cluster.Settings{Name: "app"})
	t.Cleanup(pool.Close)
	c := cluster.New("app", pool, capture, []cluster.EndpointSpec{{Address: addr, Healthy: true}})
	m := routed(t, action("app", func(a *routev3.RouteAction) {
		a.HashPolicy = []*routev3.RouteAction_HashPolicy{
			{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{
				Name: "session", Ttl: durationpb.New(time.Hour), Path: "/"}}, Terminal: true},
			{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}},
		}
	}), map[string]*cluster.Cluster{"app": c}, Config{})

	req := httptest.NewRequest("GET", "http://app/", nil)
	w := serve(m, req)
	set := w.Header().Get("Set-Cookie")
	if !strings.HasPrefix(set, "session=") || !strings.Contains(set, "Max-Age=3600") {
		t.Fatalf("Set-Cookie = %q", set)
	}
	// The client sends the cookie back: same hash.
	req2 := httptest.NewRequest("GET", "http://app/", nil)
	req2.Header.Set("Cookie", strings.SplitN(set, ";", 2)[0])
	w2 := serve(m, req2)
	if w2.Header().Get("Set-Cookie") != "" {
		t.Error("cookie set again although the client sent it")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hashes) != 2 || hashes[0] == 0 || hashes[0] != hashes[1] {
		t.Errorf("hashes = %v, want two equal non-zero", hashes)
	}
}

func TestRequestHashCombines(t *testing.T) {
	header := route.HashPolicy{Kind: route.HashHeader, Name: "X-User"}
	ip := route.HashPolicy{Kind: route.HashSourceIP}
	req := httptest.NewRequest("GET", "http://app/", nil)
	req.RemoteAddr = "10.0.0.1:5555"
	if _, ok, _ := requestHash([]route.HashPolicy{header}, req); ok {
		t.Error("a missing header produced a hash")
	}
	h1, _, _ := requestHash([]route.HashPolicy{header, ip}, req)
	req.RemoteAddr = "10.0.0.1:6666"
	h2, _, _ := requestHash([]route.HashPolicy{header, ip}, req)
	if h1 != h2 || h1 != hashString("10.0.0.1") {
		t.Errorf("source ip hash depends on the port: %x %x", h1, h2)
	}
	req.Header.Set("X-User", "ann")
	h3, _, _ := requestHash([]route.HashPolicy{header, ip}, req)
	want := hashString("ann")
	want = (want<<1 | want>>63) ^ hashString("10.0.0.1")
	if h3 != want {
		t.Errorf("combined hash = %x, want %x", h3, want)
	}
	header.Terminal = true
	if h4, _, _ := requestHash([]route.HashPolicy{header, ip}, req); h4 != hashString("ann") {
		t.Error("a terminal policy did not stop the walk")
	}
}

func faultDelay(d time.Duration, percent uint32) *commonfaultv3.FaultDelay {
	return &commonfaultv3.FaultDelay{FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)},
		Percentage: &typev3.FractionalPercent{Numerator: percent}}
}

func retryCount(t *testing.T, reg *prometheus.Registry, cluster string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "weft_retries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cluster" && l.GetValue() == cluster {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// BenchmarkForwardRouting forwards a POST through a route with a retry
// policy, header edits and a hash policy: the cost of the routing features
// on a request that needs no retry.
func BenchmarkForwardRouting(b *testing.B) {
	c := backend(b, "app", func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	r := action("app", func(a *routev3.RouteAction) {
		a.RetryPolicy = retryPolicy("5xx", 2)
		a.HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}}
	})
	r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-env", Value: "prod"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}
	m := routed(b, r, map[string]*cluster.Cluster{"app": c}, Config{})
	w := &discardWriter{h: http.Header{}}
	body := []byte(`{"item":42}`)
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		req := httptest.NewRequest(http.MethodPost, "http://app/bench", bytes.NewReader(body))
		req.Header.Set("X-User", "ann")
		req.Header.Set("X-Request-Id", "fixed")
		m.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatal(w.code)
		}
	}
}
