package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/ca"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// resources is an in-memory ResourceLister.
type resources []*v1alpha1.Object

func (r resources) List(_ context.Context, kind, namespace string) ([]*v1alpha1.Object, error) {
	var out []*v1alpha1.Object
	for _, o := range r {
		if o.Kind == kind && (namespace == "" || o.Metadata.Namespace == namespace) {
			out = append(out, o)
		}
	}
	return out, nil
}

// workloads is an in-memory WorkloadLister.
type workloads []*meshv1.Workload

func (ws workloads) ListWorkloads(_ context.Context, namespace, service string) ([]*meshv1.Workload, error) {
	var out []*meshv1.Workload
	for _, w := range ws {
		if (namespace == "" || w.Namespace == namespace) && (service == "" || w.Service == service) {
			out = append(out, w)
		}
	}
	return out, nil
}

type statsFunc func(time.Duration) (*client.Stats, error)

func (f statsFunc) Stats(w time.Duration) (*client.Stats, error) { return f(w) }

type statuses struct {
	routes   []client.RouteStatus
	policies []client.PolicyStatus
	err      error
}

func (s statuses) RouteStatuses(_ context.Context, ns string) ([]client.RouteStatus, error) {
	return s.routes, s.err
}

func (s statuses) PolicyStatuses(_ context.Context, kind, ns string) ([]client.PolicyStatus, error) {
	return s.policies, s.err
}

type caStatus struct{ st *ca.Status }

func (c caStatus) Status(context.Context) (*ca.Status, error) { return c.st, nil }

func obj(kind, ns, name string, spec v1alpha1.Spec) *v1alpha1.Object {
	o := &v1alpha1.Object{APIVersion: v1alpha1.APIVersion, Kind: kind, Spec: spec}
	o.Metadata.Namespace, o.Metadata.Name = ns, name
	o.Default()
	return o
}

func rate(v float64) *float64 { return &v }

func golden(rps, success, p99 float64) client.Golden {
	return client.Golden{Requests: rps * 30, RPS: rps, SuccessRate: rate(success), P50Ms: rate(p99 / 4), P95Ms: rate(p99 / 2), P99Ms: rate(p99)}
}

// demoMesh is loadgen → frontend → catalog (v1, v2), frontend → ledger,
// plus callers from outside the mesh, with catalog failing.
func demoMesh() Options {
	res := resources{
		obj("Service", "default", "frontend", &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "http", Port: 8080, Protocol: "http"}}}),
		obj("Service", "default", "catalog", &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "http", Port: 8080, Protocol: "http"}}}),
		obj("Service", "default", "quiet", &v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Port: 8080}}}),
		obj("Route", "default", "catalog-split", &v1alpha1.RouteSpec{Service: "catalog", Rules: []v1alpha1.RouteRule{{}}}),
		obj("Route", "default", "frontend", &v1alpha1.RouteSpec{Service: "frontend", Rules: []v1alpha1.RouteRule{{}}}),
		obj("DestinationPolicy", "default", "catalog", &v1alpha1.DestinationPolicySpec{Subsets: []v1alpha1.Subset{
			{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}}),
		obj("AccessPolicy", "default", "catalog-readers", &v1alpha1.AccessPolicySpec{Service: "catalog", Rules: []v1alpha1.AccessRule{{}}}),
		obj("AccessPolicy", "other", "catalog-readers", &v1alpha1.AccessPolicySpec{Service: "catalog", Rules: []v1alpha1.AccessRule{{}}}),
	}
	wl := workloads{
		{Id: "catalog.default@127.0.1.2:15006", Service: "catalog", Namespace: "default", Version: "v1", Address: "127.0.1.2:15006", Ready: true},
		{Id: "catalog.default@127.0.1.3:15006", Service: "catalog", Namespace: "default", Version: "v2", Address: "127.0.1.3:15006", Ready: true},
		{Id: "frontend.default@127.0.1.6:15006", Service: "frontend", Namespace: "default", Version: "v1", Address: "127.0.1.6:15006", Ready: true},
		{Id: "loadgen.default@127.0.1.7:15006", Service: "loadgen", Namespace: "default", Version: "v1", Address: "127.0.1.7:15006", Ready: true},
		{Id: "ledger.default@127.0.1.4:15006", Service: "ledger", Namespace: "default", Version: "v1", Address: "127.0.1.4:15006", Ready: false},
	}
	stats := statsFunc(func(w time.Duration) (*client.Stats, error) {
		return &client.Stats{
			Window: w.String(), At: time.Now(),
			Services: []client.ServiceStats{
				{Namespace: "default", Name: "frontend", Golden: golden(20, 1, 12), Instances: 1, Versions: []string{"v1"}},
				{Namespace: "default", Name: "catalog", Golden: golden(20, 0.9, 40), Instances: 2, Versions: []string{"v1", "v2"}},
				{Namespace: "default", Name: "ledger", Golden: golden(10, 0.97, 5), Instances: 1},
			},
			Edges: []client.EdgeStats{
				{From: "loadgen.default", To: "frontend.default", Golden: golden(20, 1, 12)},
				{From: "frontend.default", To: "catalog.default", Golden: golden(20, 0.9, 40)},
				{From: "frontend.default", To: "ledger.default", Golden: golden(10, 0.97, 5)},
				{From: "unknown", To: "frontend.default", Golden: golden(1, 1, 3)},
			},
			Workloads: []client.WorkloadStats{
				{ID: "catalog.default@127.0.1.2:15006", Service: "catalog", Namespace: "default", Version: "v1", Golden: golden(10, 1, 10)},
				{ID: "catalog.default@127.0.1.3:15006", Service: "catalog", Namespace: "default", Version: "v2", Golden: golden(10, 0.8, 60), Error: "last scrape: connection refused"},
			},
		}, nil
	})
	one, two := 1, 2
	return Options{
		Resources: res, Workloads: wl, Stats: stats, Log: slog.New(slog.DiscardHandler),
		Statuses: statuses{
			routes: []client.RouteStatus{
				{Namespace: "default", Name: "catalog-split", Service: "catalog", Phase: client.RoutePending, Accepted: true, Proxies: &two, Applied: &one},
				{Namespace: "default", Name: "frontend", Service: "frontend", Phase: client.RouteApplied, Accepted: true, Proxies: &one, Applied: &one},
			},
			policies: []client.PolicyStatus{
				{Kind: "AccessPolicy", Namespace: "default", Name: "catalog-readers", Service: "catalog", Phase: client.RouteRejected, Accepted: true,
					Proxies: &two, Applied: &one, Errors: []string{"listener inbound: boom"}, Warnings: []string{"rule 0 is shadowed"}},
			},
		},
	}
}

func get(t *testing.T, h http.Handler, path string, wantStatus int, into any) http.Header {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = "127.0.0.1:15014"
	h.ServeHTTP(rec, req)
	if rec.Code != wantStatus {
		t.Fatalf("GET %s: status %d, want %d: %s", path, rec.Code, wantStatus, rec.Body)
	}
	if into != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), into); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, rec.Body)
		}
	}
	return rec.Header()
}

func TestGraph(t *testing.T) {
	d := New(demoMesh())
	var g Graph
	get(t, d, "/dashboard/api/graph?window=1m", http.StatusOK, &g)
	if g.Window != "1m0s" || !g.Telemetry.Available {
		t.Errorf("window %q, telemetry %+v", g.Window, g.Telemetry)
	}
	type summary struct {
		ID, Health       string
		Declared         bool
		Instances, Ready int
		Versions         string
		External         bool
	}
	var got []summary
	for _, n := range g.Nodes {
		got = append(got, summary{n.ID, n.Health, n.Declared, n.Instances, n.Ready, strings.Join(n.Versions, ","), n.External})
	}
	want := []summary{
		{ID: "catalog.default", Health: HealthFailing, Declared: true, Instances: 2, Ready: 2, Versions: "v1,v2"},
		{ID: "frontend.default", Health: HealthHealthy, Declared: true, Instances: 1, Ready: 1, Versions: "v1"},
		// No instance is ready: failing whatever its success rate.
		{ID: "ledger.default", Health: HealthFailing, Instances: 1, Versions: "v1"},
		{ID: "loadgen.default", Health: HealthIdle, Instances: 1, Ready: 1, Versions: "v1"},
		{ID: "quiet.default", Health: HealthIdle, Declared: true},
		{ID: "unknown", Health: HealthIdle, External: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	var edges []string
	for _, e := range g.Edges {
		edges = append(edges, e.From+">"+e.To+":"+e.Health)
	}
	wantEdges := []string{
		"frontend.default>catalog.default:failing",
		"frontend.default>ledger.default:degraded",
		"loadgen.default>frontend.default:healthy",
		"unknown>frontend.default:healthy",
	}
	if diff := cmp.Diff(wantEdges, edges); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	if g.Edges[0].Golden.RPS != 20 || *g.Edges[0].Golden.P99Ms != 40 {
		t.Errorf("edge golden metrics lost: %+v", g.Edges[0].Golden)
	}
}

func TestGraphWithoutTelemetry(t *testing.T) {
	for name, stats := range map[string]StatsSource{
		"none":   nil,
		"broken": statsFunc(func(time.Duration) (*client.Stats, error) { return nil, errors.New("scrape: no proxies yet") }),
	} {
		t.Run(name, func(t *testing.T) {
			opts := demoMesh()
			opts.Stats = stats
			var g Graph
			get(t, New(opts), "/dashboard/api/graph", http.StatusOK, &g)
			if g.Telemetry.Available || g.Telemetry.Error == "" {
				t.Errorf("telemetry %+v, want unavailable with a reason", g.Telemetry)
			}
			if len(g.Edges) != 0 || len(g.Nodes) != 5 {
				t.Errorf("%d nodes, %d edges; want the 5 services known from the store and no edge", len(g.Nodes), len(g.Edges))
			}
			if g.Window != "30s0ms" && g.Window != "30s" {
				t.Errorf("default window %q", g.Window)
			}
		})
	}
}

func TestWindowBounds(t *testing.T) {
	d := New(demoMesh())
	for _, w := range []string{"1s", "2h", "soon"} {
		var e Error
		get(t, d, "/dashboard/api/graph?window="+w, http.StatusBadRequest, &e)
		if !strings.Contains(e.Error, "window") {
			t.Errorf("window=%s: error %q", w, e.Error)
		}
	}
}

func TestService(t *testing.T) {
	d := New(demoMesh())
	var s Service
	get(t, d, "/dashboard/api/services/default/catalog", http.StatusOK, &s)
	if !s.Declared || len(s.Ports) != 1 || s.Ports[0].Port != 8080 || s.Health != HealthFailing || s.Golden == nil || s.Golden.RPS != 20 {
		t.Errorf("service head: %+v", s)
	}
	if len(s.Instances) != 2 || s.Instances[0].Version != "v1" || s.Instances[0].Golden == nil || s.Instances[1].Error == "" {
		t.Errorf("instances: %+v", s.Instances)
	}
	if len(s.Versions) != 2 || s.Versions[1].Version != "v2" || s.Versions[1].RPS != 10 || *s.Versions[1].SuccessRate != 0.8 {
		t.Errorf("versions: %+v", s.Versions)
	}
	if len(s.Inbound) != 1 || s.Inbound[0].From != "frontend.default" || len(s.Outbound) != 0 {
		t.Errorf("calls: in %+v out %+v", s.Inbound, s.Outbound)
	}
	type pol struct {
		Kind, Name, Phase, Summary string
		Tracked                    bool
	}
	var got []pol
	for _, p := range s.Policies {
		got = append(got, pol{p.Kind, p.Name, p.Phase, p.Summary, p.Tracked})
	}
	// The Route first, then the policies in a fixed order; a DestinationPolicy
	// has no tracked status, so it is only checked for validity.
	want := []pol{
		{"Route", "catalog-split", client.RoutePending, "1 rule", true},
		{"DestinationPolicy", "catalog", PhaseValid, "2 subsets, roundRobin", false},
		{"AccessPolicy", "catalog-readers", client.RouteRejected, "ALLOW, 1 rule", true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	ap := s.Policies[2]
	if *ap.Proxies != 2 || *ap.Applied != 1 || len(ap.Errors) != 1 || len(ap.Warnings) != 1 || len(ap.Spec) == 0 {
		t.Errorf("AccessPolicy status lost: %+v", ap)
	}
}

func TestServiceStatusUnavailable(t *testing.T) {
	opts := demoMesh()
	opts.Statuses = statuses{err: errors.New("etcd: deadline exceeded")}
	var s Service
	get(t, New(opts), "/dashboard/api/services/default/catalog", http.StatusOK, &s)
	if !strings.Contains(s.StatusError, "deadline") || len(s.Policies) != 3 || s.Policies[0].Tracked {
		t.Errorf("status error %q, policies %+v", s.StatusError, s.Policies)
	}
}

func TestServiceErrors(t *testing.T) {
	d := New(demoMesh())
	var e Error
	get(t, d, "/dashboard/api/services/default/nothing", http.StatusNotFound, &e)
	get(t, d, "/dashboard/api/services/default/Bad_Name", http.StatusBadRequest, &e)
	get(t, d, "/dashboard/api/nope", http.StatusNotFound, &e)
	// A service known only from its workloads has a page.
	var s Service
	get(t, d, "/dashboard/api/services/default/loadgen", http.StatusOK, &s)
	if s.Declared || len(s.Instances) != 1 || len(s.Outbound) != 1 {
		t.Errorf("loadgen: %+v", s)
	}
}

func TestCerts(t *testing.T) {
	now := time.Now()
	st := &ca.Status{
		TrustDomain: "weft.local", Mode: "managed",
		Roots: []ca.Certificate{
			{Subject: "CN=new", SHA256: "aa", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), Signing: true, SVIDs: 3},
			{Subject: "CN=old", SHA256: "bb", NotBefore: now.Add(-300 * 24 * time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)},
		},
		Intermediates: []ca.Certificate{{Subject: "CN=gone", SHA256: "cc", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}},
		Rotation:      &ca.Rotation{ID: "r1", Phase: ca.PhaseReissue, Propagation: 30 * time.Second, Grace: time.Hour},
		Warnings:      []string{"root \"old\" expires in 10 days"},
	}
	opts := demoMesh()
	opts.CA = caStatus{st}
	var c Certs
	get(t, New(opts), "/dashboard/api/certs", http.StatusOK, &c)
	states := []string{c.Roots[0].State, c.Roots[1].State, c.Intermediates[0].State}
	if diff := cmp.Diff([]string{CertValid, CertExpiring, CertExpired}, states); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if c.Roots[0].Left < 0.99 || c.Intermediates[0].Left != 0 || !c.Roots[0].Signing || c.Roots[0].SVIDs != 3 {
		t.Errorf("roots %+v, intermediates %+v", c.Roots, c.Intermediates)
	}
	if c.Rotation == nil || c.Rotation.Phase != ca.PhaseReissue || c.Rotation.Propagation != "30s" || c.Rotation.Grace != "1h0m0s" {
		t.Errorf("rotation %+v", c.Rotation)
	}
	if len(c.Warnings) != 1 {
		t.Errorf("warnings %v", c.Warnings)
	}

	var e Error
	get(t, New(demoMesh()), "/dashboard/api/certs", http.StatusNotImplemented, &e)
}

func TestAssets(t *testing.T) {
	d := New(demoMesh())
	srv := httptest.NewServer(d)
	defer srv.Close()
	for path, want := range map[string]string{
		"/dashboard/":          "text/html",
		"/dashboard/app.js":    "text/javascript",
		"/dashboard/graph.js":  "text/javascript",
		"/dashboard/style.css": "text/css",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || len(body) == 0 {
			t.Errorf("GET %s: %s, %q", path, resp.Status, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	// Every module the page imports is embedded.
	resp, _ := http.Get(srv.URL + "/dashboard/app.js")
	app, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range strings.Split(string(app), "\n") {
		if _, mod, ok := strings.Cut(line, "from './"); ok {
			mod = strings.TrimSuffix(strings.TrimSpace(mod), "';")
			if r, err := http.Get(srv.URL + "/dashboard/" + mod); err != nil || r.StatusCode != http.StatusOK {
				t.Errorf("module %s is not served", mod)
			} else {
				r.Body.Close()
			}
		}
	}
}

// tapSource hands out one channel per tap and records the filters.
type tapSource struct {
	mu      sync.Mutex
	filters []TapFilter
	events  chan client.TapEvent
}

func (s *tapSource) Tap(ctx context.Context, f TapFilter) (<-chan client.TapEvent, error) {
	s.mu.Lock()
	s.filters = append(s.filters, f)
	s.mu.Unlock()
	if f.Name == "broken" {
		return nil, errors.New("no proxy of broken is registered")
	}
	out := make(chan client.TapEvent)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-s.events:
				if !ok {
					return
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// sseEvent reads the next event of a stream, skipping comments.
func sseEvent(t *testing.T, r *bufio.Reader) (name, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func TestTapStreamsRedactedEvents(t *testing.T) {
	src := &tapSource{events: make(chan client.TapEvent)}
	opts := demoMesh()
	opts.Tap, opts.MaxTaps = src, 1
	d := New(opts)
	srv := httptest.NewServer(d)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/dashboard/api/tap?namespace=default&service=catalog")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	// A second tap is refused while the first is open (MaxTaps 1).
	second, err := http.Get(srv.URL + "/dashboard/api/tap?service=frontend")
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if second.StatusCode != http.StatusTooManyRequests {
		t.Errorf("second tap: %s, want 429", second.Status)
	}

	src.events <- client.TapEvent{
		Method: "GET", Path: "/items", Status: 200, Destination: "catalog.default",
		RequestHdr:  map[string][]string{"Authorization": {"Bearer secret"}, "Cookie": {"s=1"}, "accept": {"*/*"}},
		ResponseHdr: map[string][]string{"set-cookie": {"s=2"}, "content-type": {"text/plain"}},
	}
	r := bufio.NewReader(resp.Body)
	name, data := sseEvent(t, r)
	if name != "tap" {
		t.Fatalf("event %q, want tap", name)
	}
	if strings.Contains(data, "secret") || strings.Contains(data, "s=1") || strings.Contains(data, "s=2") {
		t.Errorf("a credential reached the page: %s", data)
	}
	var ev client.TapEvent
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.RequestHdr["Authorization"][0] != redacted || ev.RequestHdr["accept"][0] != "*/*" || ev.ResponseHdr["set-cookie"][0] != redacted {
		t.Errorf("headers: %v %v", ev.RequestHdr, ev.ResponseHdr)
	}
	src.mu.Lock()
	f := src.filters[0]
	src.mu.Unlock()
	if f != (TapFilter{Namespace: "default", Name: "catalog", Direction: Inbound}) {
		t.Errorf("filter %+v", f)
	}

	// Closing the dashboard (the server shutting down) ends the stream.
	d.Close()
	if name, _ := sseEvent(t, r); name != "end" {
		t.Errorf("event %q after Close, want end", name)
	}
}

func TestTapErrors(t *testing.T) {
	opts := demoMesh()
	var e Error
	get(t, New(opts), "/dashboard/api/tap", http.StatusNotImplemented, &e)
	opts.Tap = &tapSource{events: make(chan client.TapEvent)}
	d := New(opts)
	get(t, d, "/dashboard/api/tap?service=Bad", http.StatusBadRequest, &e)
	get(t, d, "/dashboard/api/tap?service=catalog&direction=sideways", http.StatusBadRequest, &e)
	get(t, d, "/dashboard/api/tap?service=broken", http.StatusServiceUnavailable, &e)
	if !strings.Contains(e.Error, "no proxy") {
		t.Errorf("error %q", e.Error)
	}
}

func TestTapEndsWhenSourceStops(t *testing.T) {
	src := &tapSource{events: make(chan client.TapEvent)}
	opts := demoMesh()
	opts.Tap = src
	srv := httptest.NewServer(New(opts))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/dashboard/api/tap?service=catalog&direction=outbound")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	close(src.events)
	if name, data := sseEvent(t, bufio.NewReader(resp.Body)); name != "end" || !strings.Contains(data, "stopped") {
		t.Errorf("event %q %s, want end", name, data)
	}
}

func TestInfo(t *testing.T) {
	opts := demoMesh()
	opts.Version = "v0.test"
	var info Info
	get(t, New(opts), "/dashboard/api/info", http.StatusOK, &info)
	want := Info{Version: "v0.test", Window: "30s", Telemetry: true, Statuses: true}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}
}

func TestHosts(t *testing.T) {
	opts := demoMesh()
	opts.Hosts = []string{"control.example"}
	d := New(opts)
	for host, want := range map[string]int{
		"127.0.0.1:15014":       http.StatusOK,
		"[::1]:15014":           http.StatusOK,
		"10.1.2.3":              http.StatusOK,
		"localhost:15014":       http.StatusOK,
		"Control.Example:15014": http.StatusOK,
		// A name rebound to 127.0.0.1 by someone's DNS is refused.
		"attacker.example:15014": http.StatusForbidden,
		"":                       http.StatusForbidden,
	} {
		req := httptest.NewRequest(http.MethodGet, "/dashboard/api/info", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}
