package admin_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/proxy/admin"
)

// source is what the admin endpoint reports on, set by each test.
type source struct {
	ready    bool
	why      string
	dump     any
	clusters string
	certs    any

	mu     sync.Mutex
	drains int
}

func (s *source) Ready() (bool, string)     { return s.ready, s.why }
func (s *source) ConfigDump() any           { return s.dump }
func (s *source) WriteClusters(w io.Writer) { io.WriteString(w, s.clusters) }
func (s *source) Certificates() any         { return s.certs }

func (s *source) Drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drains++
}

func (s *source) drained() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drains
}

var _ admin.Source = (*source)(nil)

func newSource() *source {
	return &source{
		ready: true,
		dump: map[string]any{
			"versions":  map[string]any{"type.googleapis.com/envoy.config.cluster.v3.Cluster": "1a2b"},
			"resources": map[string]any{"clusters": []any{"outbound|payments.default"}},
		},
		clusters: "outbound|payments.default::127.0.1.2:15006::healthy\n",
		certs: map[string]any{
			"svid":        map[string]any{"spiffeID": "spiffe://weft.local/ns/default/sa/web", "serial": "ab12"},
			"trustBundle": []any{map[string]any{"subject": "CN=weft root"}},
		},
	}
}

// serve starts the admin handler over real HTTP.
func serve(t *testing.T, src admin.Source, log *slog.Logger) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_test_updates_total", Help: "Updates."})
	reg.MustRegister(c)
	c.Add(3)
	srv := httptest.NewServer(admin.Handler(src, reg, log))
	t.Cleanup(srv.Close)
	return srv.URL
}

type response struct {
	status int
	header http.Header
	body   string
}

func call(t *testing.T, method, url string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func TestRoutes(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name   string
		change func(*source)
		method string
		path   string
		status int
		// body is the exact body, or with contains, a part of it.
		body     string
		contains bool
		ctype    string // prefix of Content-Type
		json     func(*source) any
		drains   int
	}{
		{name: "healthz", method: "GET", path: "/healthz", status: 200, body: "ok\n"},
		{name: "ready", method: "GET", path: "/ready", status: 200, body: "ready\n"},
		{
			name: "not ready", method: "GET", path: "/ready",
			change: func(s *source) { s.ready, s.why = false, "waiting for the first complete xDS config" },
			status: 503, body: "not ready: waiting for the first complete xDS config\n",
		},
		{name: "metrics", method: "GET", path: "/metrics", status: 200, body: "weft_test_updates_total 3\n", contains: true, ctype: "text/plain"},
		{name: "config dump", method: "GET", path: "/config_dump", status: 200, ctype: "application/json", json: func(s *source) any { return s.dump }},
		{name: "clusters", method: "GET", path: "/clusters", status: 200, body: "outbound|payments.default::127.0.1.2:15006::healthy\n", ctype: "text/plain"},
		{name: "certs", method: "GET", path: "/certs", status: 200, ctype: "application/json", json: func(s *source) any { return s.certs }},
		{name: "certs before joining", method: "GET", path: "/certs", change: func(s *source) { s.certs = map[string]any{"svid": nil} },
			status: 200, ctype: "application/json", json: func(s *source) any { return s.certs }},
		{name: "drain", method: "POST", path: "/drain", status: 200, body: "draining\n", drains: 1},
		{name: "drain with GET", method: "GET", path: "/drain", status: 405},
		{name: "healthz with POST", method: "POST", path: "/healthz", status: 405},
		{name: "unknown path", method: "GET", path: "/stats", status: 404},
		{
			name: "config dump that cannot be encoded", method: "GET", path: "/config_dump",
			change: func(s *source) { s.dump = map[string]any{"weight": math.Inf(1)} },
			status: 500, body: "admin: encode JSON", contains: true, ctype: "text/plain",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource()
			if tc.change != nil {
				tc.change(src)
			}
			resp := call(t, tc.method, serve(t, src, quiet)+tc.path)
			if resp.status != tc.status {
				t.Fatalf("%s %s: status %d, want %d; body %q", tc.method, tc.path, resp.status, tc.status, resp.body)
			}
			if ct := resp.header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %s", ct, tc.ctype)
			}
			switch {
			case tc.json != nil:
				var got any
				if err := json.Unmarshal([]byte(resp.body), &got); err != nil {
					t.Fatalf("body is not JSON: %v\n%s", err, resp.body)
				}
				if diff := cmp.Diff(roundTrip(t, tc.json(src)), got); diff != "" {
					t.Errorf("JSON (-want +got):\n%s", diff)
				}
			case tc.contains:
				if !strings.Contains(resp.body, tc.body) {
					t.Errorf("body %q does not contain %q", resp.body, tc.body)
				}
			case tc.body != "":
				if resp.body != tc.body {
					t.Errorf("body %q, want %q", resp.body, tc.body)
				}
			}
			if tc.status == 405 {
				if allow := resp.header.Get("Allow"); allow == "" {
					t.Error("405 without an Allow header")
				}
			}
			if got := src.drained(); got != tc.drains {
				t.Errorf("Drain called %d times, want %d", got, tc.drains)
			}
		})
	}
}

// TestDrainWithoutLogger: a nil logger is allowed.
func TestDrainWithoutLogger(t *testing.T) {
	src := newSource()
	if resp := call(t, "POST", serve(t, src, nil)+"/drain"); resp.status != 200 || src.drained() != 1 {
		t.Fatalf("POST /drain: status %d, %d drains; want 200 and one drain", resp.status, src.drained())
	}
}

func TestNewServer(t *testing.T) {
	h := http.NotFoundHandler()
	srv := admin.NewServer("127.0.0.1:15000", h)
	if srv.Addr != "127.0.0.1:15000" || srv.Handler == nil {
		t.Errorf("server for %q with handler %v", srv.Addr, srv.Handler)
	}
	if srv.ReadHeaderTimeout <= 0 || srv.ReadHeaderTimeout > time.Minute {
		t.Errorf("ReadHeaderTimeout %v, want a short bound against slow clients", srv.ReadHeaderTimeout)
	}
}

// roundTrip returns v as encoding/json decodes it into an any.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestProfilesLoopbackOnly: the Go profiles are served to a caller on
// loopback, as a real profile, and refused to any other caller.
func TestProfilesLoopbackOnly(t *testing.T) {
	url := serve(t, newSource(), nil)
	resp := call(t, "GET", url+"/debug/pprof/heap")
	if resp.status != http.StatusOK {
		t.Fatalf("heap profile from loopback: status %d: %s", resp.status, resp.body)
	}
	// A profile is a gzipped profile.proto; a heap profile's string table
	// names its sample types.
	zr, err := gzip.NewReader(strings.NewReader(resp.body))
	if err != nil {
		t.Fatalf("heap profile from loopback is not gzipped: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil || !bytes.Contains(raw, []byte("inuse_space")) {
		t.Fatalf("heap profile from loopback: %d bytes (err %v), want a profile.proto with inuse_space", len(raw), err)
	}

	h := admin.Handler(newSource(), prometheus.NewRegistry(), nil)
	for _, remote := range []string{"192.0.2.7:4321", "[2001:db8::1]:4321", "not-an-address"} {
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/cmdline"} {
			req := httptest.NewRequest("GET", path, nil)
			req.RemoteAddr = remote
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "loopback") {
				t.Errorf("GET %s from %s: status %d, body %q; want 403 naming loopback", path, remote, rec.Code, rec.Body.String())
			}
		}
	}
	for _, remote := range []string{"127.0.0.1:4321", "[::1]:4321", "[::ffff:127.0.0.9]:4321"} {
		req := httptest.NewRequest("GET", "/debug/pprof/cmdline", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("GET /debug/pprof/cmdline from %s: status %d; want 200", remote, rec.Code)
		}
	}
}
