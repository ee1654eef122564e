package hcm

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/lb"
	_ "github.com/weftmesh/weft/proxy/lb/roundrobin"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/route"
	"github.com/weftmesh/weft/proxy/stats"
)

func upstreamApp(t testing.TB) string {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.Header().Set("X-Forwarded-Proto-Seen", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Request-Id-Seen", r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Hop-Seen", r.Header.Get("X-Hop"))
		w.Header().Set("Connection", "X-Upstream-Hop")
		w.Header().Set("X-Upstream-Hop", "hidden")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// manager builds a connection manager whose only route sends everything to
// a cluster with the given endpoints (none: the cluster is not configured).
func manager(t testing.TB, endpoints []string, edit func(*routev3.Route)) *ConnectionManager {
	m := stats.New(nil)
	var c *cluster.Cluster
	if endpoints != nil {
		var specs []cluster.EndpointSpec
		for _, e := range endpoints {
			specs = append(specs, cluster.EndpointSpec{Address: e, Healthy: true})
		}
		pool := cluster.NewPool(cluster.Settings{Name: "app"})
		t.Cleanup(pool.Close)
		c = cluster.New("app", pool, lb.Get("round_robin"), specs)
	}
	r := &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "app"}}},
	}
	if edit != nil {
		edit(r)
	}
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "app", Domains: []string{"app"}, Routes: []*routev3.Route{r}}}}
	tab, err := route.Compile(rc, func(name string) *Upstream {
		return &Upstream{Name: name, Cluster: c}
	})
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Routes: tab, RequestID: true, Direction: observe.Outbound, Observers: []observe.Observer{m.HTTPObserver()}})
}

func serve(m *ConnectionManager, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	m.ServeHTTP(w, req)
	return w
}

func TestForward(t *testing.T) {
	m := manager(t, []string{upstreamApp(t)}, nil)
	req := httptest.NewRequest(http.MethodGet, "http://app/a/b?c=d", nil)
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "hidden")
	w := serve(m, req)
	if w.Code != 200 || w.Body.String() != "ok" {
		t.Fatalf("%d %q", w.Code, w.Body)
	}
	want := map[string]string{
		"X-Path": "/a/b?c=d", "X-Forwarded-Proto-Seen": "http", "X-Hop-Seen": "", "X-Upstream-Hop": "", "Connection": "",
	}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if id := w.Header().Get("X-Request-Id-Seen"); len(id) != 36 || id[14] != '4' {
		t.Errorf("generated request id %q is not a v4 UUID", id)
	}
	if w := serve(m, httptest.NewRequest(http.MethodGet, "http://app/status", nil)); w.Code != http.StatusTeapot {
		t.Errorf("upstream status: %d", w.Code)
	}
}

func TestLocalReplies(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	app := upstreamApp(t)
	tests := []struct {
		name   string
		m      *ConnectionManager
		host   string
		path   string
		header http.Header
		code   int
		reason string
	}{
		{"no virtual host", manager(t, []string{app}, nil), "other", "/", nil, 404, "route_not_found"},
		{"no routes yet", New(Config{}), "app", "/", nil, 404, "route_not_found"},
		{"cluster not configured", manager(t, nil, nil), "app", "/", nil, 503, "cluster_not_found"},
		{"cluster not found code", manager(t, nil, func(r *routev3.Route) {
			r.GetRoute().ClusterNotFoundResponseCode = routev3.RouteAction_NOT_FOUND
		}), "app", "/", nil, 404, "cluster_not_found"},
		{"no endpoints", manager(t, []string{}, nil), "app", "/", nil, 503, "no_healthy_upstream"},
		{"connect failure", manager(t, []string{deadAddr}, nil), "app", "/", nil, 503, "upstream_connect_failure"},
		{"timeout", manager(t, []string{app}, func(r *routev3.Route) {
			r.GetRoute().Timeout = durationpb.New(50 * time.Millisecond)
		}), "app", "/slow", nil, 504, "upstream_timeout"},
		{"upgrade not enabled", manager(t, []string{app}, nil), "app", "/", http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
		}, 403, "upgrade_failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://"+tt.host+tt.path, nil)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			w := serve(tt.m, req)
			if w.Code != tt.code || w.Header().Get("X-Weft-Error") != tt.reason {
				t.Fatalf("got %d %q, want %d %q", w.Code, w.Header().Get("X-Weft-Error"), tt.code, tt.reason)
			}
		})
	}
}

func TestRequestPath(t *testing.T) {
	tests := map[string]string{
		"/a?b=c":                  "/a?b=c",
		"http://web.default/x?y":  "/x?y",
		"http://web.default":      "/",
		"http://web.default?q=1":  "/?q=1",
		"https://web:8443/p/q#fr": "/p/q#fr",
	}
	for uri, want := range tests {
		r := &http.Request{RequestURI: uri}
		if got := requestPath(r); got != want {
			t.Errorf("requestPath(%q) = %q, want %q", uri, got, want)
		}
	}
}

func TestRequestHeader(t *testing.T) {
	m := New(Config{RequestID: false})
	r := httptest.NewRequest(http.MethodPost, "http://app/", nil)
	r.Header = http.Header{
		"Connection":   {"keep-alive, X-Custom-Hop"},
		"X-Custom-Hop": {"1"}, "Keep-Alive": {"300"}, "Te": {"trailers, deflate"},
		"Transfer-Encoding": {"chunked"}, "Upgrade": {"h2c"}, "Proxy-Authorization": {"secret"},
		"Content-Type": {"application/grpc"},
	}
	in := r.Header.Clone()
	h := m.requestHeader(r)
	if !reflect.DeepEqual(r.Header, in) {
		t.Errorf("requestHeader changed the request's header: %v", r.Header)
	}
	inPlace := r.Header.Clone()
	m.rewriteRequestHeader(inPlace, false)
	if !reflect.DeepEqual(inPlace, h) {
		t.Errorf("in place %v, copied %v", inPlace, h)
	}
	want := http.Header{
		"Content-Type": {"application/grpc"}, "Te": {"trailers"},
		"X-Forwarded-Proto": {"http"}, "User-Agent": {""},
	}
	if len(h) != len(want) {
		t.Fatalf("header %v, want %v", h, want)
	}
	for k, v := range want {
		if strings.Join(h[k], ",") != strings.Join(v, ",") {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
}

// BenchmarkRequestHeader rewrites a typical downstream request head (a
// load generator's) into the upstream one, in place as the forwarding path
// does.
func BenchmarkRequestHeader(b *testing.B) {
	m := New(Config{RequestID: true})
	h := http.Header{
		"Accept": {"*/*"}, "User-Agent": {"fortio.org/fortio-1.68.2"}, "X-Request-Id": {"given"},
		"Content-Type": {"application/json"}, "Content-Length": {"1024"},
	}
	b.ReportAllocs()
	for b.Loop() {
		// What the previous rewrite removed or added, as a new request has.
		h["Connection"] = []string{"keep-alive"}
		delete(h, "X-Forwarded-Proto")
		m.rewriteRequestHeader(h, false)
	}
}

// BenchmarkResponseHeader copies a typical upstream response head (an
// echo app's, plus a hop-by-hop header named by Connection) downstream.
func BenchmarkResponseHeader(b *testing.B) {
	src := http.Header{
		"Content-Type": {"application/octet-stream"}, "Content-Length": {"1024"},
		"Date": {"Sat, 21 Nov 2026 12:00:00 GMT"}, "Connection": {"X-Hop"}, "X-Hop": {"gone"},
	}
	dst := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		clear(dst)
		copyResponseHeader(dst, src)
	}
}

func BenchmarkRequestID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		newRequestID()
	}
}

// BenchmarkForward measures a whole request through the connection
// manager to a loopback HTTP/1.1 upstream: routing, pick, header rewrite,
// the pooled round trip and the body copy. Most allocations are net/http's
// client and the upstream server's.
func BenchmarkForward(b *testing.B) {
	m := manager(b, []string{upstreamApp(b)}, nil)
	req := httptest.NewRequest(http.MethodGet, "http://app/bench", nil)
	req.Header.Set("X-Request-Id", "fixed")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		m.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatal(w.code)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func TestUpstreamAbortsMidBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}))
	defer srv.Close()
	m := manager(t, []string{srv.Listener.Addr().String()}, nil)
	w := httptest.NewRecorder()
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Fatalf("recovered %v, want http.ErrAbortHandler", p)
			}
		}()
		m.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://app/", nil))
	}()
	if w.Code != 200 || w.Body.String() != "partial" {
		t.Fatalf("downstream got %d %q before the abort", w.Code, w.Body)
	}
	ep := m.Routes().Match("app", "/").Target.Cluster.Endpoints()[0]
	if st := ep.Stats(); st.ActiveRequests != 0 || st.FailedRequests != 1 {
		t.Fatalf("endpoint stats after an abort: %+v", st)
	}
}

func FuzzRequestPath(f *testing.F) {
	for _, s := range []string{"/a?b", "http://h/p", "http://h?q", "*", "h:443", "https://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		p := requestPath(&http.Request{RequestURI: uri, URL: &url.URL{Path: "/"}})
		if strings.Contains(uri, "://") && !strings.HasPrefix(p, "/") {
			t.Fatalf("requestPath(%q) = %q, not origin form", uri, p)
		}
	})
}

// TestRequestIDs: request IDs are version 4, variant 1 UUIDs, and do not
// repeat.
func TestRequestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := newRequestID()
		if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("%q is not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%q repeated", id)
		}
		seen[id] = true
	}
}

// releaseRecorder is a ResponseWriter of a server that can reuse requests.
type releaseRecorder struct {
	*httptest.ResponseRecorder
	released int
}

func (r *releaseRecorder) ReleaseRequest() { r.released++ }

// The server may reuse a request once the connection manager is done with
// it: after an exchange over the lean HTTP/1.1 transport, not after one
// whose transport may still write the request from a goroutine of its own.
func TestReleasesRequestOnlyWhenDone(t *testing.T) {
	m := manager(t, []string{upstreamApp(t)}, nil)
	for _, tc := range []struct {
		name string
		body io.Reader
		want int
	}{
		{"no body", nil, 1},
		{"small body", strings.NewReader("abc"), 1},
		{"body of unknown length", io.NopCloser(strings.NewReader("abc")), 0},
	} {
		req := httptest.NewRequest("POST", "http://app/x", tc.body)
		if _, ok := tc.body.(io.ReadCloser); ok {
			req.ContentLength = -1
		}
		w := &releaseRecorder{ResponseRecorder: httptest.NewRecorder()}
		m.ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.released != tc.want {
			t.Errorf("%s: status %d, released %d times, want %d", tc.name, w.Code, w.released, tc.want)
		}
	}
}
