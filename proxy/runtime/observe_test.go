package runtime

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
	"github.com/weftmesh/weft/proxy/observe"
)

// metric returns the value of the client proxy's series of name whose
// labels include want.
func metric(t *testing.T, m *mesh, name string, want map[string]string) float64 {
	t.Helper()
	return metricIn(t, m.clientReg, name, want)
}

// metricIn returns the value of reg's series of name whose labels include want.
func metricIn(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
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
	pair := map[string]string{"direction": "outbound", "source_service": "a", "source_namespace": "default", "source_version": "v7",
		"destination_service": "web", "destination_namespace": "default", "destination_version": "v1",
		"response_code": "200", "grpc_status": "unknown", "mtls": "true"}
	if got := metric(t, m, "weft_requests_total", pair); got != 3 {
		t.Errorf("weft_requests_total%v = %v, want 3", pair, got)
	}
	if got := metric(t, m, "weft_request_duration_seconds", pair); got != 3 {
		t.Errorf("weft_request_duration_seconds count = %v, want 3", got)
	}
	if got := metric(t, m, "weft_response_bytes_total", pair); got <= 0 {
		t.Errorf("weft_response_bytes_total = %v, want > 0", got)
	}
	// The server side knows the caller from its certificate, and its
	// version from the header the client proxy sent over mutual TLS.
	pair["direction"] = "inbound"
	if got := metricIn(t, m.serverReg[svcWeb], "weft_requests_total", pair); got != 3 {
		t.Errorf("server weft_requests_total%v = %v, want 3", pair, got)
	}
	tcpPair := map[string]string{"direction": "outbound", "source_service": "a", "destination_service": "echo",
		"destination_namespace": "default", "mtls": "true"}
	if got := metric(t, m, "weft_tcp_connections_opened_total", tcpPair); got != 1 {
		t.Errorf("weft_tcp_connections_opened_total = %v, want 1", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, m, "weft_tcp_connections_closed_total", tcpPair) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := metric(t, m, "weft_tcp_sent_bytes_total", tcpPair); got != 1 {
		t.Errorf("weft_tcp_sent_bytes_total = %v, want 1", got)
	}
	// The server side names the caller from its certificate.
	tcpPair["direction"] = "inbound"
	if got := metricIn(t, m.serverReg[svcEcho], "weft_tcp_connections_opened_total", tcpPair); got != 1 {
		t.Errorf("server weft_tcp_connections_opened_total%v = %v, want 1", tcpPair, got)
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
		webCluster + "::protocol::DOWNSTREAM",
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

// A TCP connection a network RBAC filter refuses is still seen: opened and
// closed, from the caller its certificate names, with no bytes through.
func TestTCPDenialObserved(t *testing.T) {
	ca := testpki.NewCA(t, "root")
	reg := prometheus.NewRegistry()
	server := New(Options{Identity: newIdentity(t, ca, svcEcho), Metrics: reg,
		Workload: observe.Peer{Service: svcEcho.name, Namespace: svcEcho.namespace, Version: "v1"}})
	defer server.Close()
	res := serverResources(t, svcEcho, serverIP+":0", startEchoApp(t), ca.PEM())
	fc := res.Listeners[xdsmeta.InboundListener].FilterChains[0]
	deny := &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_DENY, Policies: map[string]*rbacconfigv3.Policy{"deny-all": {
		Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_Any{Any: true}}},
		Principals:  []*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_Any{Any: true}}},
	}}}
	fc.Filters = append([]*listenerv3.Filter{{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{
		TypedConfig: mustAny(t, &rbacnetworkv3.RBAC{Rules: deny, StatPrefix: "inbound."}),
	}}}, fc.Filters...)
	if err := server.Apply(res); err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", server.ListenerAddr(xdsmeta.InboundListener).String(), &tls.Config{
		Certificates: []tls.Certificate{ca.Issue(t, svcA.id(), testpki.Options{})}, InsecureSkipVerify: true,
		MinVersion: tls.VersionTLS13, NextProtos: []string{"weft-tcp"},
	})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "let me in")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _ := io.Copy(io.Discard, conn); n != 0 {
		t.Errorf("a denied connection got %d bytes back", n)
	}
	conn.Close()
	want := map[string]string{"direction": "inbound", "source_service": "a", "source_namespace": "default",
		"destination_service": "echo", "destination_namespace": "default", "mtls": "true"}
	deadline := time.Now().Add(5 * time.Second)
	for metricIn(t, reg, "weft_tcp_connections_closed_total", want) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := metricIn(t, reg, "weft_tcp_connections_closed_total", want); got != 1 {
		t.Errorf("weft_tcp_connections_closed_total%v = %v, want 1", want, got)
	}
	if got := metricIn(t, reg, "weft_tcp_sent_bytes_total", want); got > 0 {
		t.Errorf("weft_tcp_sent_bytes_total = %v, want nothing", got)
	}
}
