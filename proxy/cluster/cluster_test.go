package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/lb/roundrobin"
)

func roundRobin() lb.Builder { return lb.Get(roundrobin.Name) }

func request(t *testing.T, c *Cluster) (*http.Response, *Endpoint) {
	t.Helper()
	ep, err := c.Pick(lb.PickInfo{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://ignored/x", nil)
	res, err := c.RoundTrip(req, ep)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res, ep
}

func TestHTTP1Pool(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	pool := NewPool(Settings{Name: "app"})
	defer pool.Close()
	c := New("app", pool, roundRobin(), []EndpointSpec{{Address: addr, Healthy: true, Workload: "w", Version: "v1"}})
	for i := 0; i < 3; i++ {
		res, _ := request(t, c)
		if res.ProtoMajor != 1 {
			t.Fatalf("proto %s", res.Proto)
		}
	}
	st := c.Endpoints()[0].Stats()
	if st.TotalConnections != 1 || st.ActiveConnections != 1 {
		t.Fatalf("keep-alive pooling: %+v", st)
	}
	if e := c.Endpoints()[0]; e.Workload() != "w" || e.Version() != "v1" || !e.Healthy() {
		t.Fatalf("metadata: %+v", e)
	}
	pool.Close()
	if st := c.Endpoints()[0].Stats(); st.ActiveConnections != 0 {
		t.Fatalf("after Close: %+v", st)
	}
}

// h2cCluster is a cluster of one h2c (prior knowledge) server serving h.
func h2cCluster(t *testing.T, h http.Handler) *Cluster {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	pool := NewPool(Settings{Name: "grpc", Protocol: HTTP2})
	t.Cleanup(func() { pool.Close() })
	return New("grpc", pool, roundRobin(), []EndpointSpec{{Address: srv.Listener.Addr().String(), Healthy: true}})
}

func TestH2CPool(t *testing.T) {
	c := h2cCluster(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	res, _ := request(t, c)
	if res.ProtoMajor != 2 {
		t.Fatalf("proto %s, want HTTP/2 with prior knowledge", res.Proto)
	}
}

func TestConnectError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c := New("dead", NewPool(Settings{Name: "dead"}), roundRobin(), []EndpointSpec{{Address: addr, Healthy: true}})
	ep, _ := c.Pick(lb.PickInfo{})
	req, _ := http.NewRequest(http.MethodGet, "http://ignored/", nil)
	_, err := c.RoundTrip(req, ep)
	if !IsConnectError(err) {
		t.Fatalf("RoundTrip: %v, want a ConnectError", err)
	}
	if _, err := c.DialStream(context.Background(), ep); !IsConnectError(err) {
		t.Fatalf("DialStream: %v, want a ConnectError", err)
	}
	if st := ep.Stats(); st.ConnectFailures != 2 {
		t.Fatalf("connect failures %d, want 2", st.ConnectFailures)
	}
}

func TestPickSkipsUnhealthy(t *testing.T) {
	pool := NewPool(Settings{Name: "c"})
	c := New("c", pool, roundRobin(), []EndpointSpec{
		{Address: "10.0.0.1:80", Healthy: false},
		{Address: "10.0.0.2:80", Healthy: true},
	})
	for i := 0; i < 4; i++ {
		if ep, _ := c.Pick(lb.PickInfo{}); ep.Address() != "10.0.0.2:80" {
			t.Fatalf("picked %s", ep.Address())
		}
	}
	none := New("c", pool, roundRobin(), []EndpointSpec{{Address: "10.0.0.1:80"}})
	if _, err := none.Pick(lb.PickInfo{}); !errors.Is(err, lb.ErrNoEndpoint) {
		t.Fatalf("no healthy endpoint: %v", err)
	}
}

// Counters survive a rebuild of the cluster on the same pool.
func TestEndpointStatsSurviveRebuild(t *testing.T) {
	pool := NewPool(Settings{Name: "c"})
	first := New("c", pool, roundRobin(), []EndpointSpec{{Address: "10.0.0.1:80", Healthy: true}})
	first.Endpoints()[0].RequestStarted()
	second := New("c", pool, roundRobin(), []EndpointSpec{{Address: "10.0.0.1:80", Healthy: true}, {Address: "10.0.0.2:80", Healthy: true}})
	pool.Retain(second.Endpoints())
	if got := second.Endpoints()[0].ActiveRequests(); got != 1 {
		t.Fatalf("active requests after rebuild: %d", got)
	}
	first.Endpoints()[0].RequestFinished(true)
	if st := second.Endpoints()[0].Stats(); st.ActiveRequests != 0 || st.FailedRequests != 1 || st.TotalRequests != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestDialStreamKeepsSocket(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c := New("tcp", NewPool(Settings{Name: "tcp"}), roundRobin(), []EndpointSpec{{Address: ln.Addr().String(), Healthy: true}})
	ep, _ := c.Pick(lb.PickInfo{})
	conn, err := c.DialStream(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := conn.(interface{ Socket() *net.TCPConn })
	if !ok || s.Socket() == nil {
		t.Fatalf("%T does not expose its socket for splicing", conn)
	}
	if _, ok := conn.(interface{ CloseWrite() error }); !ok {
		t.Fatalf("%T cannot half-close", conn)
	}
	if ep.Stats().ActiveConnections != 1 {
		t.Fatal("connection not counted")
	}
	conn.Close()
	conn.Close()
	if ep.Stats().ActiveConnections != 0 {
		t.Fatal("connection counted after close")
	}
}
