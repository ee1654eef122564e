package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/internal/testpki"
	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/lb"
)

// captureResources is the translator's transparent-mode outbound shape: a
// capture listener with one chain for svcWeb's VIP 240.240.0.1:80 (routed to
// the app through a static cluster) and a passthrough default chain.
func captureResources(t *testing.T, app string) *Resources {
	r := emptyResources()
	static := inboundCluster(t, svcWeb, app)
	r.Clusters[static.Name] = static
	rc := outboundRoute(svcWeb)
	rc.VirtualHosts[0].Routes[0] = routeToCluster(static.Name)
	r.Routes[rc.Name] = rc
	r.Clusters[xdsmeta.PassthroughCluster] = &clusterv3.Cluster{
		Name:                 xdsmeta.PassthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(time.Second),
	}
	l := &listenerv3.Listener{
		Name:             xdsmeta.OutboundCaptureListener,
		Address:          socketAddr(t, clientIP+":0"),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		UseOriginalDst:   wrapperspb.Bool(true),
		FilterChains: []*listenerv3.FilterChain{{
			Name: "web",
			FilterChainMatch: &listenerv3.FilterChainMatch{
				PrefixRanges:    []*corev3.CidrRange{{AddressPrefix: "240.240.0.1", PrefixLen: wrapperspb.UInt32(32)}},
				DestinationPort: wrapperspb.UInt32(80),
			},
			Filters: []*listenerv3.Filter{hcmFilter(t, &hcmv3.HttpConnectionManager{
				StatPrefix: "web",
				RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
					ConfigSource: ads(), RouteConfigName: rc.Name,
				}},
				HttpFilters: []*hcmv3.HttpFilter{routerFilter(t)},
			})},
		}},
		DefaultFilterChain: &listenerv3.FilterChain{
			Name:    xdsmeta.PassthroughCluster,
			Filters: []*listenerv3.Filter{tcpFilter(t, "passthrough", xdsmeta.PassthroughCluster)},
		},
	}
	r.Listeners[l.Name] = l
	return r
}

func TestCaptureListenerApplies(t *testing.T) {
	app := startWebApp(t)
	rt := New(Options{})
	defer rt.Close()
	if err := rt.Apply(captureResources(t, app.addr)); err != nil {
		t.Fatal(err)
	}
	// A connection that was not redirected has no original destination: it
	// is the capture port's own address, which no chain matches, and the
	// passthrough must not connect the listener to itself.
	c, err := net.DialTimeout("tcp", rt.ListenerAddr(xdsmeta.OutboundCaptureListener).String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Closed with the request unread: EOF, or a reset.
	if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("an unredirected connection got %d bytes, err %v; want it closed", n, err)
	}
}

func TestCaptureValidation(t *testing.T) {
	app := startWebApp(t)
	tests := []struct {
		name string
		edit func(r *Resources)
		want string
	}{{
		name: "original_dst cluster with a balancer",
		edit: func(r *Resources) { r.Clusters[xdsmeta.PassthroughCluster].LbPolicy = clusterv3.Cluster_ROUND_ROBIN },
		want: `cluster "PassthroughCluster": lb_policy`,
	}, {
		name: "original_dst cluster with endpoints",
		edit: func(r *Resources) {
			r.Clusters[xdsmeta.PassthroughCluster].LoadAssignment = loadAssignment(t, xdsmeta.PassthroughCluster, "127.0.0.1:1")
		},
		want: `cluster "PassthroughCluster": load_assignment`,
	}, {
		name: "passthrough without use_original_dst",
		edit: func(r *Resources) { r.Listeners[xdsmeta.OutboundCaptureListener].UseOriginalDst = nil },
		want: `default_filter_chain`,
	}, {
		name: "default chain with a match",
		edit: func(r *Resources) {
			r.Listeners[xdsmeta.OutboundCaptureListener].DefaultFilterChain.FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(1)}
		},
		want: `default_filter_chain.filter_chain_match`,
	}, {
		name: "malformed external hosts",
		edit: func(r *Resources) {
			l := r.Listeners[xdsmeta.OutboundCaptureListener]
			l.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				xdsmeta.ExternalHostsMetadataNamespace: {Fields: map[string]*structpb.Value{"api.partner.example": structpb.NewStringValue("192.0.2.1")}},
			}}
		},
		want: `metadata.filter_metadata["weft.external_hosts"]: external hosts: "api.partner.example": want a non-empty list`,
	}, {
		name: "malformed VIP table",
		edit: func(r *Resources) {
			l := r.Listeners[xdsmeta.OutboundCaptureListener]
			l.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				xdsmeta.VIPMetadataNamespace: {Fields: map[string]*structpb.Value{"web.default": structpb.NewStringValue("not-an-ip")}},
			}}
		},
		want: `metadata.filter_metadata["weft.vips"]`,
	}, {
		name: "only a default chain",
		edit: func(r *Resources) { r.Listeners[xdsmeta.OutboundCaptureListener].FilterChains = nil },
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := New(Options{})
			defer rt.Close()
			r := captureResources(t, app.addr)
			tc.edit(r)
			err := rt.Apply(r)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want it to name %s", err, tc.want)
			}
		})
	}
}

// fakeOriginalDst stands in for iptables: the capture listener's
// connections were going to *dst (none: not redirected) while the test
// runs. Tests in this package do not run in parallel.
func fakeOriginalDst(t *testing.T) *atomic.Pointer[netip.AddrPort] {
	t.Helper()
	var dst atomic.Pointer[netip.AddrPort]
	prev := lookupOriginalDst
	lookupOriginalDst = func(net.Conn) (netip.AddrPort, error) {
		if d := dst.Load(); d != nil {
			return *d, nil
		}
		return netip.AddrPort{}, errors.New("not redirected")
	}
	t.Cleanup(func() { lookupOriginalDst = prev })
	return &dst
}

// captureGolden is the translator's transparent-mode output in
// controlplane/translate/testdata/<file>, reduced to the outbound capture
// listener, bound on loopback, and with the endpoints of its STATIC
// clusters moved to the addresses in endpoints (cluster name to
// address): what a captured pod's proxy runs, minus the iptables.
func captureGolden(t *testing.T, file string, endpoints map[string]string) *Resources {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(translatorGoldens, file))
	if err != nil {
		t.Fatal(err)
	}
	res := parseGolden(t, string(b))
	l := res.Listeners[xdsmeta.OutboundCaptureListener]
	if l == nil {
		t.Fatalf("%s: no %s listener", file, xdsmeta.OutboundCaptureListener)
	}
	l.Address = socketAddr(t, clientIP+":0")
	res.Listeners = map[string]*listenerv3.Listener{l.Name: l}
	for name, addr := range endpoints {
		c := res.Clusters[name]
		if c == nil {
			t.Fatalf("%s: no cluster %s", file, name)
		}
		c.LoadAssignment = loadAssignment(t, name, addr)
	}
	for _, sec := range res.Secrets {
		if vc := sec.GetValidationContext(); vc != nil {
			vc.TrustedCa = rootCA(testpki.NewCA(t, "root").PEM()).GetValidationContext().GetTrustedCa()
		}
	}
	return res
}

// startH2CApp answers HTTP/1.1 and h2c with the protocol and Host it saw,
// and counts its requests.
func startH2CApp(t *testing.T) (string, *atomic.Int64) {
	ln := listen(t, backendIP)
	var n atomic.Int64
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fmt.Fprintf(w, "%s %s %s", r.Proto, r.Host, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &n
}

// TestCapturePassthroughHTTP: under ALLOW_ANY, HTTP/1.1 and h2c to a
// destination outside the mesh are detected, routed by the passthrough
// route's catch-all to PassthroughCluster, and reach the connection's
// original destination in the protocol they came in, counted as requests
// to PassthroughCluster. A connection that was not redirected, or whose
// original destination is the listener itself, gets 503 and never a
// connection to the listener.
func TestCapturePassthroughHTTP(t *testing.T) {
	app, hits := startH2CApp(t)
	dst := fakeOriginalDst(t)
	reg := prometheus.NewRegistry()
	rt := New(Options{Metrics: reg})
	t.Cleanup(func() { rt.Close() })
	if err := rt.Apply(captureGolden(t, "capture.golden", nil)); err != nil {
		t.Fatal(err)
	}
	addr := rt.ListenerAddr(xdsmeta.OutboundCaptureListener).String()
	to := func(a string) { ap := netip.MustParseAddrPort(a); dst.Store(&ap) }

	to(app)
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/h1", nil)
	req.Host = "plain.world.example:8081"
	res, err := h1Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "HTTP/1.1 plain.world.example:8081 /h1" {
		t.Fatalf("HTTP/1.1 passthrough: %d %q", res.StatusCode, body)
	}
	if res, body := get(t, h2cClient(t), "http://"+addr+"/h2"); res.StatusCode != 200 || !strings.HasPrefix(body, "HTTP/2.0 ") {
		t.Fatalf("h2c passthrough: %d %q", res.StatusCode, body)
	}
	labels := map[string]string{"direction": "outbound", "destination_service": xdsmeta.PassthroughCluster, "response_code": "200"}
	if got := metricIn(t, reg, "weft_requests_total", labels); got != 2 {
		t.Errorf("weft_requests_total%v = %v, want 2", labels, got)
	}

	// Never to the listener itself: neither unredirected, nor
	// redirected to its own address.
	before := hits.Load()
	for _, self := range []string{"", addr} {
		if self == "" {
			dst.Store(nil)
		} else {
			to(self)
		}
		res, _ := get(t, h1Client(t), "http://"+addr+"/loop")
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("X-Weft-Error") == "" {
			t.Errorf("original destination %q: %d %v, want a 503 with its reason", self, res.StatusCode, res.Header)
		}
	}
	if hits.Load() != before {
		t.Errorf("a request without an original destination reached the app")
	}
}

// TestCaptureRegistryOnly: under REGISTRY_ONLY, HTTP to an unlisted host
// gets 502 egress_denied and reaches nothing, an ExternalService host is
// routed to its cluster, TLS to a listed SNI passes through and other TLS
// and TCP are closed, and an ExternalService's tcp endpoint goes to its
// cluster at once, without waiting for protocol detection.
func TestCaptureRegistryOnly(t *testing.T) {
	app, hits := startH2CApp(t)
	greeter, echo := startGreeter(t), startEchoApp(t)
	dst := fakeOriginalDst(t)
	reg := prometheus.NewRegistry()
	rt := New(Options{Metrics: reg})
	t.Cleanup(func() { rt.Close() })
	res := captureGolden(t, "capture-egress.golden", map[string]string{
		"outbound|api.partner.example:80":  app,
		"outbound|db.partner.example:3306": greeter,
	})
	// The TLS chain of port 443, moved to the echo app's port.
	echoPort := netip.MustParseAddrPort(echo).Port()
	for _, fc := range res.Listeners[xdsmeta.OutboundCaptureListener].GetFilterChains() {
		if fc.GetName() == xdsmeta.PassthroughCluster+"|tls|443" {
			fc.FilterChainMatch.DestinationPort = wrapperspb.UInt32(uint32(echoPort))
		}
	}
	if err := rt.Apply(res); err != nil {
		t.Fatal(err)
	}
	addr := rt.ListenerAddr(xdsmeta.OutboundCaptureListener).String()
	to := func(a string) { ap := netip.MustParseAddrPort(a); dst.Store(&ap) }

	to(app)
	do := func(host string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/r", nil)
		req.Host = host
		res, err := h1Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	if res, body := do("plain.world.example:8081"); res.StatusCode != http.StatusBadGateway || res.Header.Get("X-Weft-Error") != "egress_denied" {
		t.Errorf("unlisted host: %d %v %q, want 502 egress_denied", res.StatusCode, res.Header, body)
	}
	if hits.Load() != 0 {
		t.Errorf("a refused request reached the app")
	}
	if res, body := do("api.partner.example"); res.StatusCode != 200 || body != "HTTP/1.1 api.partner.example /r" {
		t.Errorf("ExternalService host: %d %q", res.StatusCode, body)
	}

	exchange := func(first []byte, wantReply string) error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if len(first) > 0 {
			if _, err := c.Write(first); err != nil {
				return err
			}
		}
		got := make([]byte, len(wantReply))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if string(got) != wantReply {
			return fmt.Errorf("got %q, want %q", got, wantReply)
		}
		return nil
	}
	// TLS by SNI: a listed host passes through (the echo app returns the
	// hello), another is closed.
	to(echo)
	hello := clientHello(t, "secure.partner.example", []string{"h2"})
	if err := exchange(hello, string(hello)); err != nil {
		t.Errorf("TLS to a listed SNI: %v", err)
	}
	if err := exchange(clientHello(t, "other.world.example", nil), "x"); err == nil {
		t.Errorf("TLS to an unlisted SNI went through")
	}
	// TCP to an unlisted destination: refused.
	to(greeter)
	if err := exchange(nil, "hello"); err == nil {
		t.Errorf("TCP to an unlisted destination went through")
	}
	// An ExternalService's tcp endpoint (a server-first protocol): its
	// cluster, at once.
	to("192.0.2.12:3306")
	start := time.Now()
	if err := exchange(nil, "hello"); err != nil {
		t.Errorf("ExternalService tcp endpoint: %v", err)
	}
	if waited := time.Since(start); waited >= 100*time.Millisecond {
		t.Errorf("the tcp port waited %v for protocol detection", waited)
	}
	if got := counterValue(t, detectFallbacks(reg).WithLabelValues(xdsmeta.OutboundCaptureListener, "timeout")); got != 1 {
		// One: the refused TCP connection above, on an undeclared port.
		t.Errorf("detection fallbacks %v, want 1", got)
	}
}

// TestOriginalDstClusterPick: an ORIGINAL_DST cluster picks the original
// destination its request's context carries, one endpoint per destination
// (its connections and counters shared), refuses a request without one,
// and forgets idle destinations once it holds many.
func TestOriginalDstClusterPick(t *testing.T) {
	pool := cluster.NewPool(cluster.Settings{Name: xdsmeta.PassthroughCluster, Protocol: cluster.Downstream})
	defer pool.Close()
	c := cluster.Build(cluster.Config{Name: xdsmeta.PassthroughCluster, Pool: pool, OriginalDst: true, Balancer: lb.Get("round_robin")})
	if _, err := c.PickFor(context.Background(), lb.PickInfo{}); !errors.Is(err, cluster.ErrNoOriginalDestination) || !errors.Is(err, lb.ErrNoEndpoint) {
		t.Fatalf("no original destination: %v", err)
	}
	at := func(port int) context.Context {
		return cluster.WithOriginalDestination(context.Background(), netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(port)))
	}
	first, err := c.PickFor(at(1), lb.PickInfo{})
	if err != nil || first.Address() != "192.0.2.1:1" || !first.Healthy() {
		t.Fatalf("pick: %v %v", first, err)
	}
	if again, _ := c.PickFor(at(1), lb.PickInfo{}); again != first {
		t.Fatal("a destination got a second endpoint")
	}
	// A destination in use is kept however many others come and go.
	first.RequestStarted()
	for port := 2; port <= 3000; port++ {
		if _, err := c.PickFor(at(port), lb.PickInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	if again, _ := c.PickFor(at(1), lb.PickInfo{}); again != first {
		t.Fatal("a destination in use was forgotten")
	}
	first.RequestFinished(false)
	second, _ := c.PickFor(at(2), lb.PickInfo{})
	for port := 3001; port <= 5000; port++ {
		_, _ = c.PickFor(at(port), lb.PickInfo{})
	}
	if again, _ := c.PickFor(at(2), lb.PickInfo{}); again == second {
		t.Fatal("idle destinations are never forgotten")
	}
}
