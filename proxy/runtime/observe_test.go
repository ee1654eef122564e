package runtime

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
)

// metric returns the value of the series of name whose labels include want.
func metric(t *testing.T, m *mesh, name string, want map[string]string) float64 {
	t.Helper()
	families, err := m.clientReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			return value(s)
		}
	}
	return -1
}

func value(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	}
	return -1
}

func TestObservability(t *testing.T) {
	m := newMesh(t)
	c := h1Client(t)
	for i := 0; i < 3; i++ {
		get(t, c, "http://"+m.local[svcWeb]+"/")
	}
	conn, err := net.Dial("tcp", m.local[svcEcho])
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "x")
	conn.(*net.TCPConn).CloseWrite()
	io.ReadAll(conn)
	conn.Close()

	webCluster := xdsmeta.OutboundCluster(svcWeb.name, svcWeb.namespace)
	if got := metric(t, m, "weft_requests_total", map[string]string{"direction": "outbound", "cluster": webCluster, "code": "200"}); got != 3 {
		t.Errorf("weft_requests_total = %v, want 3", got)
	}
	if got := metric(t, m, "weft_request_duration_seconds", map[string]string{"direction": "outbound", "cluster": webCluster}); got != 3 {
		t.Errorf("weft_request_duration_seconds count = %v, want 3", got)
	}
	if got := metric(t, m, "weft_tcp_connections_total", map[string]string{"direction": "outbound", "cluster": xdsmeta.OutboundCluster(svcEcho.name, svcEcho.namespace)}); got != 1 {
		t.Errorf("weft_tcp_connections_total = %v, want 1", got)
	}
	// The HTTP client keeps its connection: one is open.
	if got := metric(t, m, "weft_active_connections", map[string]string{"direction": "outbound"}); got < 1 {
		t.Errorf("weft_active_connections = %v, want ≥ 1", got)
	}

	var buf bytes.Buffer
	m.client.WriteClusters(&buf)
	out := buf.String()
	for _, want := range []string{
		webCluster + "::type::EDS",
		webCluster + "::lb_policy::round_robin",
		webCluster + "::protocol::HTTP2",
		webCluster + "::transport::mtls",
		webCluster + "::" + m.inbound[svcWeb] + "::health_flags::healthy",
		webCluster + "::" + m.inbound[svcWeb] + "::rq_total::3",
		webCluster + "::" + m.inbound[svcWeb] + "::cx_active::1",
		webCluster + "::" + m.inbound[svcWeb] + "::version::v1",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("/clusters lacks %q:\n%s", want, out)
		}
	}

	b, err := json.Marshal(m.client.ConfigDump())
	if err != nil {
		t.Fatal(err)
	}
	var dump struct {
		Listeners      map[string]map[string]any
		Clusters       map[string]map[string]any
		BoundListeners map[string]string `json:"bound_listeners"`
	}
	if err := json.Unmarshal(b, &dump); err != nil {
		t.Fatal(err)
	}
	if dump.Clusters[webCluster]["name"] != webCluster {
		t.Errorf("config dump cluster: %v", dump.Clusters[webCluster])
	}
	if dump.BoundListeners[xdsmeta.HTTPProxyListener] != m.httpProxy {
		t.Errorf("bound listeners: %v", dump.BoundListeners)
	}
}

// A new ROOTCA applies to the next handshakes: peers of the old root are
// refused on new connections once it is gone, and trusted again once back.
func TestTrustBundleUpdate(t *testing.T) {
	m := newMesh(t)
	server := m.servers[svcWeb]
	peer := m.ca.Issue(t, svcA.id(), testpki.Options{})
	res := serverResources(t, svcWeb, serverIP+":0", m.web.addr, testpki.NewCA(t, "next root").PEM())
	if err := server.Apply(res); err != nil {
		t.Fatal(err)
	}
	if err := tlsGet(m.inbound[svcWeb], peer); err == nil {
		t.Fatal("a peer of the removed root was accepted")
	}
	res.Secrets[xdsmeta.SecretRootCA] = rootCA(m.ca.PEM())
	if err := server.Apply(res); err != nil {
		t.Fatal(err)
	}
	if err := tlsGet(m.inbound[svcWeb], peer); err != nil {
		t.Fatalf("after restoring the root: %v", err)
	}
}

// Removing a listener closes its socket at once but lets the request in
// flight on it finish.
func TestListenerRemovalDrains(t *testing.T) {
	m := newMesh(t)
	addr := m.local[svcWeb]
	done := make(chan string, 1)
	go func() {
		res, err := h1Client(t).Get("http://" + addr + "/slow?d=500ms")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		done <- string(b)
	}()
	<-m.web.slowStarted
	res := m.clientResources(t)
	delete(res.Listeners, outboundListener(t, svcWeb, clientIP+":0").Name)
	if err := m.client.Apply(res); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the removed listener still accepts")
	}
	if got := <-done; got != "slow done" {
		t.Fatalf("in-flight request on a removed listener: %q", got)
	}
}

// An SVID rotated on the client side is what the next connection presents.
func TestIdentityRotation(t *testing.T) {
	ca := testpki.NewCA(t, "root")
	app := startWebApp(t)
	id := newIdentity(t, ca, svcWeb)
	server := New(Options{Identity: id})
	defer server.Close()
	if err := server.Apply(serverResources(t, svcWeb, serverIP+":0", app.addr, ca.PEM())); err != nil {
		t.Fatal(err)
	}
	addr := server.ListenerAddr(xdsmeta.InboundListener).String()
	serial := func() string {
		conn, err := tlsDial(addr, ca.Issue(t, svcA.id(), testpki.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	next := ca.Issue(t, svcWeb.id(), testpki.Options{})
	id.cur.Store(&next)
	if after := serial(); after == before || after != next.Leaf.SerialNumber.String() {
		t.Fatalf("serial before %s, after %s, want %s", before, after, next.Leaf.SerialNumber)
	}
}
