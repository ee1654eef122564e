package tcp

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/weftmesh/weft/internal/testnet"
	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/lb"
	_ "github.com/weftmesh/weft/proxy/lb/roundrobin"
	"github.com/weftmesh/weft/proxy/observe"
)

type connRecorder struct {
	mu      sync.Mutex
	started int
	done    []observe.Conn
}

func (r *connRecorder) ConnStart(*observe.Conn) { r.mu.Lock(); r.started++; r.mu.Unlock() }
func (r *connRecorder) ConnDone(c *observe.Conn) {
	r.mu.Lock()
	r.done = append(r.done, *c)
	r.mu.Unlock()
}

func TestServeRecordsConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(s)
		io.WriteString(s, "got "+string(b))
		s.Close()
	}()
	pool := cluster.NewPool(cluster.Settings{Name: "outbound|db.data"})
	defer pool.Close()
	c := cluster.New("outbound|db.data", pool, lb.Get("round_robin"),
		[]cluster.EndpointSpec{{Address: ln.Addr().String(), Healthy: true}})
	rec := &connRecorder{}
	local := observe.Peer{Service: "web", Namespace: "shop", Version: "v1"}
	p := &Proxy{Backend: Backend{Name: "outbound|db.data", Cluster: c, Destination: observe.Peer{Service: "db", Namespace: "data"}},
		Direction: observe.Outbound, Listener: "outbound|db.data", Local: local, Observers: []observe.ConnObserver{rec}}

	client, down := testnet.TCPPair(t)
	done := make(chan struct{})
	go func() { p.Serve(context.Background(), down); close(done) }()
	io.WriteString(client, "hello")
	client.CloseWrite()
	b, _ := io.ReadAll(client)
	client.Close()
	<-done
	if string(b) != "got hello" {
		t.Fatalf("got %q", b)
	}
	if rec.started != 1 || len(rec.done) != 1 {
		t.Fatalf("%d started, %d done; want 1, 1", rec.started, len(rec.done))
	}
	got := rec.done[0]
	if got.Source != local || got.Destination.Service != "db" || got.Cluster != "outbound|db.data" || got.Upstream != ln.Addr().String() ||
		got.Sent != 5 || got.Received != int64(len("got hello")) || got.Duration <= 0 || got.Denied || got.Listener != "outbound|db.data" {
		t.Errorf("record %+v", got)
	}

	// A connection a network filter refused is recorded as denied.
	client2, down2 := testnet.TCPPair(t)
	defer client2.Close()
	p.Refused(down2, "rbac_access_denied_matched_policy[deny-all]")
	down2.Close()
	if len(rec.done) != 2 || !rec.done[1].Denied || !strings.Contains(rec.done[1].Reason, "deny-all") || rec.done[1].Sent != 0 {
		t.Errorf("refused connection: %+v", rec.done[len(rec.done)-1])
	}
}
