package hcm

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/filter"
	"github.com/weftmesh/weft/proxy/observe"
)

// recorder keeps a copy of every record it is shown.
type recorder struct {
	started int
	done    []observe.Request
}

func (r *recorder) Start(rec *observe.Request) {
	r.started++
	rec.Request.Header.Set("X-Added-In-Start", "yes")
}

func (r *recorder) Done(rec *observe.Request) { r.done = append(r.done, *rec) }

// last serves req and returns its record.
func last(t *testing.T, m *ConnectionManager, rec *recorder, req *http.Request) (observe.Request, *httptest.ResponseRecorder) {
	t.Helper()
	rec.done = nil
	w := serve(m, req)
	if len(rec.done) != 1 {
		t.Fatalf("%d records, want 1", len(rec.done))
	}
	return rec.done[0], w
}

func refuse(status int, reason string) filter.HTTP {
	return filter.HTTPFunc(func(*http.Request, *filter.Stream, any) filter.Decision {
		return filter.Decision{Reply: &filter.Reply{Status: status, Reason: reason}}
	})
}

func TestRecordFlags(t *testing.T) {
	var seen atomic.Int32
	app := backend(t, "outbound|cart.shop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Start-Seen", r.Header.Get("X-Added-In-Start"))
		w.Header().Set("X-Peer-Seen", r.Header.Get(PeerHeader))
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/flaky":
			if seen.Add(1)%2 == 1 {
				w.WriteHeader(503)
				return
			}
		case "/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			return
		case "/grpc":
			w.Header().Set("Trailer", "Grpc-Status")
			w.Header().Set("Content-Type", "application/grpc")
			w.WriteHeader(200)
			w.Write([]byte("12345"))
			w.Header().Set("Grpc-Status", "5")
			return
		}
		w.Write(body)
		w.Write(body)
	})
	local := observe.Peer{Service: "web", Namespace: "shop", Version: "v3"}
	newManager := func(r *routev3.Route, clusters map[string]*cluster.Cluster, filters ...Filter) (*ConnectionManager, *recorder) {
		rec := &recorder{}
		m := routed(t, r, clusters, Config{Direction: observe.Outbound, Listener: "outbound|cart.shop", Local: local,
			Observers: []observe.Observer{rec}, Filters: filters})
		return m, rec
	}

	t.Run("forwarded", func(t *testing.T) {
		m, rec := newManager(action("outbound|cart.shop", nil), map[string]*cluster.Cluster{"outbound|cart.shop": app})
		req := httptest.NewRequest("POST", "http://app/echo", strings.NewReader("hello"))
		req.Header.Set(PeerHeader, "service=forged,namespace=shop,version=v9")
		got, w := last(t, m, rec, req)
		if w.Header().Get("X-Start-Seen") != "yes" {
			t.Error("a header added in Start did not reach the upstream")
		}
		if v := w.Header().Get("X-Peer-Seen"); v != "" {
			t.Errorf("the app's own %s reached the upstream: %q", PeerHeader, v)
		}
		want := observe.Request{Direction: observe.Outbound, Listener: "outbound|cart.shop", Source: local,
			Destination: observe.Peer{Service: "cart", Namespace: "shop"}, Cluster: "outbound|cart.shop",
			Status: 200, RequestBytes: 5, ResponseBytes: 10, Attempts: 1}
		if got.Direction != want.Direction || got.Listener != want.Listener || got.Source != want.Source ||
			got.Destination != want.Destination || got.Cluster != want.Cluster || got.Status != want.Status ||
			got.RequestBytes != want.RequestBytes || got.ResponseBytes != want.ResponseBytes || got.Attempts != want.Attempts ||
			got.Flags != 0 || got.Reason != "" || got.Upstream == "" || got.Duration <= 0 || got.UpstreamLatency <= 0 ||
			got.UpstreamLatency > got.Duration || got.Request == nil || got.ResponseHeader == nil || got.Start.IsZero() {
			t.Errorf("record %+v\nwant like %+v", got, want)
		}
		if rec.started != 1 {
			t.Errorf("Start called %d times", rec.started)
		}
	})

	t.Run("retried", func(t *testing.T) {
		m, rec := newManager(action("outbound|cart.shop", func(a *routev3.RouteAction) { a.RetryPolicy = retryPolicy("5xx", 2) }),
			map[string]*cluster.Cluster{"outbound|cart.shop": app})
		got, _ := last(t, m, rec, httptest.NewRequest("GET", "http://app/flaky", nil))
		if got.Status != 200 || got.Attempts != 2 || got.Flags != observe.Retried {
			t.Errorf("status %d, attempts %d, flags %v; want 200 after 2 attempts, retried", got.Status, got.Attempts, got.Flags.Names())
		}
	})

	t.Run("timeout", func(t *testing.T) {
		m, rec := newManager(action("outbound|cart.shop", func(a *routev3.RouteAction) { a.Timeout = durationpb.New(50 * time.Millisecond) }),
			map[string]*cluster.Cluster{"outbound|cart.shop": app})
		got, _ := last(t, m, rec, httptest.NewRequest("GET", "http://app/slow", nil))
		if got.Status != 504 || got.Flags != observe.UpstreamTimeout || got.Reason != "upstream_timeout" {
			t.Errorf("status %d, flags %v, reason %q", got.Status, got.Flags.Names(), got.Reason)
		}
	})

	t.Run("grpc trailer", func(t *testing.T) {
		m, rec := newManager(action("outbound|cart.shop", nil), map[string]*cluster.Cluster{"outbound|cart.shop": app})
		got, _ := last(t, m, rec, httptest.NewRequest("POST", "http://app/grpc", nil))
		if got.GRPCStatus != "5" || got.ResponseBytes != 5 {
			t.Errorf("grpc status %q, %d bytes; want 5, 5", got.GRPCStatus, got.ResponseBytes)
		}
	})

	t.Run("connect failure", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		m, rec := newManager(action("c", nil), map[string]*cluster.Cluster{"c": clusterAt(t, "c", dead)})
		got, _ := last(t, m, rec, httptest.NewRequest("GET", "http://app/", nil))
		if got.Status != 503 || got.Flags != observe.UpstreamConnectFailure || got.Upstream != dead {
			t.Errorf("status %d, flags %v, upstream %q", got.Status, got.Flags.Names(), got.Upstream)
		}
	})

	t.Run("no healthy upstream", func(t *testing.T) {
		m, rec := newManager(action("c", nil), map[string]*cluster.Cluster{"c": clusterAt(t, "c")})
		got, _ := last(t, m, rec, httptest.NewRequest("GET", "http://app/", nil))
		if got.Status != 503 || got.Flags != observe.NoHealthyUpstream || got.Reason != "no_healthy_upstream" {
			t.Errorf("status %d, flags %v, reason %q", got.Status, got.Flags.Names(), got.Reason)
		}
	})

	t.Run("no route", func(t *testing.T) {
		m, rec := newManager(action("c", nil), nil)
		got, _ := last(t, m, rec, httptest.NewRequest("GET", "http://elsewhere/", nil))
		if got.Status != 404 || got.Flags != observe.NoRoute || got.Reason != "route_not_found" || got.Route != "" {
			t.Errorf("status %d, flags %v, reason %q", got.Status, got.Flags.Names(), got.Reason)
		}
	})

	for _, c := range []struct {
		filter string
		status int
		want   observe.Flags
	}{
		{"envoy.filters.http.rbac", 403, observe.Denied},
		{"envoy.filters.http.jwt_authn", 401, observe.Unauthenticated},
		{"envoy.filters.http.local_ratelimit", 429, observe.RateLimited},
		{"envoy.filters.http.ratelimit", 429, observe.RateLimited},
		{"envoy.filters.http.fault", 503, observe.FaultInjected},
		{"example.custom_authz", 403, observe.Denied},
	} {
		t.Run(c.filter, func(t *testing.T) {
			m, rec := newManager(action("outbound|cart.shop", nil), map[string]*cluster.Cluster{"outbound|cart.shop": app},
				Filter{Name: c.filter, Filter: refuse(c.status, "refused_by_test")})
			got, _ := last(t, m, rec, httptest.NewRequest("GET", "http://app/", nil))
			if got.Status != c.status || got.Flags != c.want || got.Reason != "refused_by_test" || got.Attempts != 0 {
				t.Errorf("status %d, flags %v, reason %q, attempts %d; want %d, %v", got.Status, got.Flags.Names(), got.Reason, got.Attempts,
					c.status, c.want.Names())
			}
		})
	}
}

// TestInboundPeer checks the inbound side's view of the caller: from its
// certificate, with the version its proxy claimed only when the claim
// names the certificate's own service.
func TestInboundPeer(t *testing.T) {
	var seenPeer atomic.Value
	app := backend(t, "inbound|cart.shop", func(w http.ResponseWriter, r *http.Request) {
		seenPeer.Store(r.Header.Get(PeerHeader))
	})
	rec := &recorder{}
	local := observe.Peer{Service: "cart", Namespace: "shop", Version: "v1"}
	m := routed(t, action("inbound|cart.shop", nil), map[string]*cluster.Cluster{"inbound|cart.shop": app},
		Config{Direction: observe.Inbound, Local: local, Observers: []observe.Observer{rec}})
	id, _ := url.Parse("spiffe://weft.local/ns/shop/sa/web")
	cert := &x509.Certificate{URIs: []*url.URL{id}}
	for _, c := range []struct {
		claim, version string
	}{
		{"service=web,namespace=shop,version=v2", "v2"},
		{"service=admin,namespace=shop,version=v2", ""}, // not the certificate's service
		{"service=web,namespace=other,version=v2", ""},
		{"", ""},
	} {
		req := httptest.NewRequest("GET", "http://app/", nil)
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
		if c.claim != "" {
			req.Header.Set(PeerHeader, c.claim)
		}
		got, _ := last(t, m, rec, req)
		want := observe.Peer{ID: id.String(), Service: "web", Namespace: "shop", Version: c.version}
		if got.Source != want || got.Destination != local || !got.MTLS {
			t.Errorf("claim %q: source %+v, destination %+v, mtls %v", c.claim, got.Source, got.Destination, got.MTLS)
		}
		if v, _ := seenPeer.Load().(string); v != "" {
			t.Errorf("claim %q reached the app", v)
		}
	}
	// A plaintext caller (PERMISSIVE) is unknown.
	got, _ := last(t, m, rec, httptest.NewRequest("GET", "http://app/", strings.NewReader("")))
	if got.Source != (observe.Peer{}) || got.MTLS {
		t.Errorf("plaintext caller: source %+v, mtls %v", got.Source, got.MTLS)
	}
	if !slices.Equal(observe.Flags(0).Names(), nil) {
		t.Error("no flags should have no names")
	}
}

// TestPeerCache looks up more certificates than the cache has slots, in
// turns: whatever shares a slot, each lookup names its own certificate's
// workload.
func TestPeerCache(t *testing.T) {
	var c peerCache
	certs := make([]*x509.Certificate, 3*peerCacheSlots)
	for i := range certs {
		id := spiffe.ID{TrustDomain: "weft.local", Namespace: "ns", Service: fmt.Sprintf("svc-%d", i)}
		certs[i] = &x509.Certificate{URIs: []*url.URL{id.URL()}}
	}
	for round := range 3 {
		for k := range certs {
			i := (k*7 + round) % len(certs) // another order each round
			want := fmt.Sprintf("svc-%d", i)
			if p := c.peer(certs[i]); p.Service != want || p.Namespace != "ns" || p.ID != "spiffe://weft.local/ns/ns/sa/"+want {
				t.Fatalf("round %d: peer of %s's certificate = %+v", round, want, p)
			}
		}
	}
	if p := c.peer(&x509.Certificate{}); p != (observe.Peer{}) {
		t.Fatalf("a certificate without a SPIFFE ID: %+v", p)
	}
}
