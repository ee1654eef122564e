package runtime

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsmeta"
)

// clientHello captures the first TLS record a real crypto/tls client sends.
func clientHello(t testing.TB, serverName string, alpn []string) []byte {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(client, &tls.Config{ServerName: serverName, NextProtos: alpn, InsecureSkipVerify: true}).Handshake()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(server, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(server, body); err != nil {
		t.Fatal(err)
	}
	server.Close()
	client.Close()
	<-done
	return append(hdr, body...)
}

// curlGET is the request curl 8 sends for `curl http://payments/`.
const curlGET = "GET / HTTP/1.1\r\nHost: payments\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"

func TestClassify(t *testing.T) {
	hello := clientHello(t, "payments.default.svc.weft", []string{"h2", "http/1.1"})
	helloNoSNI := clientHello(t, "", nil)
	raw := detection{transport: transportRaw}
	for _, tc := range []struct {
		name  string
		in    []byte
		final bool
		want  detection
		more  bool // needMore expected
	}{
		{"curl GET", []byte(curlGET), false, detection{transportRaw, []string{protoHTTP11}, ""}, false},
		{"HTTP/1.0 POST", []byte("POST /x HTTP/1.0\r\n"), false, detection{transportRaw, []string{protoHTTP10}, ""}, false},
		{"request line cut short", []byte("GET /some/long/pa"), false, raw, true},
		{"request line cut short, final", []byte("GET /some/long/pa"), true, detection{transportRaw, []string{protoHTTP11}, ""}, false},
		{"method only", []byte("GE"), false, raw, true},
		{"h2 preface", []byte(string(h2Preface) + "\x00\x00\x12\x04"), false, detection{transportRaw, []string{protoH2C}, ""}, false},
		{"h2 preface cut short", h2Preface[:10], false, raw, true},
		{"TLS ClientHello", hello, false, detection{transportTLS, []string{"h2", "http/1.1"}, "payments.default.svc.weft"}, false},
		{"TLS ClientHello without SNI or ALPN", helloNoSNI, false, detection{transportTLS, nil, ""}, false},
		{"TLS ClientHello cut short", hello[:40], false, detection{transport: transportTLS}, true},
		{"TLS ClientHello cut short, final", hello[:40], true, detection{transport: transportTLS}, false},
		{"MySQL server-first: nothing sent", nil, true, raw, false},
		{"nothing yet", nil, false, raw, true},
		{"Redis inline command", []byte("PING\r\n"), false, raw, false},
		{"Redis SET", []byte("SET key value\r\n"), false, raw, false},
		{"binary garbage", []byte{0x00, 0x01, 0xff, 0x20}, false, raw, false},
		{"0x16 but not TLS", []byte{0x16, 0x09, 0x00, 0x00, 0x10, 0x01}, false, raw, false},
		{"space first", []byte(" GET / HTTP/1.1\r\n"), false, raw, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, v := classify(tc.in, tc.final)
			if (v == needMore) != tc.more {
				t.Fatalf("verdict %v, want needMore=%v", v, tc.more)
			}
			if got.transport != tc.want.transport || got.serverName != tc.want.serverName || !slices.Equal(got.protocols, tc.want.protocols) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzClassify: any first bytes classify without panicking, a final call
// always decides, and a decision on a prefix stays when final.
func FuzzClassify(f *testing.F) {
	f.Add([]byte(curlGET))
	f.Add(h2Preface)
	f.Add(clientHello(f, "payments", []string{"h2"}))
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Add([]byte("PING\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxDetectBytes {
			b = b[:maxDetectBytes]
		}
		d, v := classify(b, false)
		df, vf := classify(b, true)
		if vf != decided {
			t.Fatal("a final classify did not decide")
		}
		if v == decided && (d.transport != df.transport || d.serverName != df.serverName || !slices.Equal(d.protocols, df.protocols)) {
			t.Fatalf("decided %+v, but %+v when final", d, df)
		}
		if d.transport != transportTLS && d.transport != transportRaw {
			t.Fatalf("transport %q", d.transport)
		}
	})
}

// detectListener is a transparent-style listener: an http_inspector with a
// short timeout, an HTTP chain for HTTP/1.1 and h2c, and a TCP chain for
// the rest.
func detectListener(t testing.TB, addr string, timeout time.Duration, disabledPort uint32) *listenerv3.Listener {
	httpChain := &listenerv3.FilterChain{
		Name:             "http",
		FilterChainMatch: &listenerv3.FilterChainMatch{ApplicationProtocols: []string{protoHTTP10, protoHTTP11, protoH2C}},
		Filters: []*listenerv3.Filter{hcmFilter(t, &hcmv3.HttpConnectionManager{
			StatPrefix: "detect",
			RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
				Name:         "detect",
				VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{routeToCluster("inbound|web.default")}}},
			}},
		})},
	}
	tcpChain := &listenerv3.FilterChain{Name: "tcp", Filters: []*listenerv3.Filter{tcpFilter(t, "detect", "inbound|greeter.default")}}
	inspector := &listenerv3.ListenerFilter{
		Name:       "envoy.filters.listener.http_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &httpinspectorv3.HttpInspector{})},
	}
	if disabledPort != 0 {
		// Or'ed with the port below it, as the translator lists tcp ports.
		portRule := func(p uint32) *listenerv3.ListenerFilterChainMatchPredicate {
			return &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
				DestinationPortRange: &typev3.Int32Range{Start: int32(p), End: int32(p) + 1}}}
		}
		inspector.FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_OrMatch{
			OrMatch: &listenerv3.ListenerFilterChainMatchPredicate_MatchSet{Rules: []*listenerv3.ListenerFilterChainMatchPredicate{
				portRule(disabledPort - 1), portRule(disabledPort)}},
		}}
	}
	return &listenerv3.Listener{
		Name:                             "detect",
		Address:                          socketAddr(t, addr),
		TrafficDirection:                 corev3.TrafficDirection_OUTBOUND,
		ListenerFilters:                  []*listenerv3.ListenerFilter{inspector},
		ListenerFiltersTimeout:           durationpb.New(timeout),
		ContinueOnListenerFiltersTimeout: true,
		FilterChains:                     []*listenerv3.FilterChain{httpChain, tcpChain},
	}
}

// startGreeter is a server-first TCP app (as MySQL is): it says hello
// before reading anything, then echoes.
func startGreeter(t testing.TB) string {
	ln := listen(t, backendIP)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.WriteString(c, "hello"); _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func detectResources(t testing.TB, l *listenerv3.Listener, web, greeter string) *Resources {
	r := emptyResources()
	r.Listeners[l.Name] = l
	for _, c := range []struct {
		s   service
		app string
	}{
		{service{name: "web", namespace: "default", protocol: "http"}, web},
		{service{name: "greeter", namespace: "default", protocol: "tcp"}, greeter},
	} {
		cl := inboundCluster(t, c.s, c.app)
		r.Clusters[cl.Name] = cl
	}
	return r
}

func TestDetectChoosesChain(t *testing.T) {
	web, greeter := startWebApp(t), startGreeter(t)
	reg := prometheus.NewRegistry()
	rt := New(Options{Metrics: reg})
	t.Cleanup(func() { rt.Close() })
	if err := rt.Apply(detectResources(t, detectListener(t, clientIP+":0", 100*time.Millisecond, 0), web.addr, greeter)); err != nil {
		t.Fatal(err)
	}
	addr := rt.ListenerAddr("detect").String()
	fallbacks := func(reason string) float64 {
		return counterValue(t, detectFallbacks(reg).WithLabelValues("detect", reason))
	}

	// HTTP/1.1 and h2c reach the HTTP chain.
	if res, body := get(t, h1Client(t), "http://"+addr+"/h1"); res.StatusCode != 200 || body != "GET " || res.Header.Get("X-Seen-Path") != "/h1" {
		t.Fatalf("HTTP/1.1: %d %q", res.StatusCode, body)
	}
	if res, body := get(t, h2cClient(t), "http://"+addr+"/h2"); res.StatusCode != 200 || res.Proto != "HTTP/2.0" || body != "GET " {
		t.Fatalf("h2c: %d %s %q", res.StatusCode, res.Proto, body)
	}

	// A request line in two segments: detection waits for the second
	// (no fallback), and the request is served whole.
	split, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer split.Close()
	_ = split.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(split, "GET /spl")
	time.Sleep(30 * time.Millisecond)
	_, _ = io.WriteString(split, "it HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	reply, _ := io.ReadAll(split)
	if !strings.HasPrefix(string(reply), "HTTP/1.1 200") || !strings.Contains(string(reply), "X-Seen-Path: /split") {
		t.Fatalf("split request line: %q", reply)
	}
	if got := fallbacks("incomplete"); got != 0 {
		t.Fatalf("fallbacks{reason=incomplete} = %v: detection did not see the second segment", got)
	}

	// A server-first client sends nothing: after the detection timeout
	// it is served as TCP, loudly (counted), never stalled for long.
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("server-first greeting: %q %v", buf, err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond || waited > 3*time.Second {
		t.Fatalf("greeting after %v: want the 100ms detection timeout, not more", waited)
	}
	if got := fallbacks("timeout"); got != 1 {
		t.Fatalf("fallbacks{reason=timeout} = %v, want 1", got)
	}

	// A binary client-first protocol goes to the TCP chain at once.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c2.Write([]byte{0, 1, 2, 3})
	got := make([]byte, 9)
	if _, err := io.ReadFull(c2, got); err != nil || string(got) != "hello\x00\x01\x02\x03" {
		t.Fatalf("binary client: %q %v", got, err)
	}
	if got := fallbacks("timeout"); got != 1 {
		t.Fatalf("a binary client counted as a fallback: %v", got)
	}
}

// TestDetectDisabledOnTCPPort: a port the http_inspector is disabled on
// (a Service port declared tcp) is never inspected: a server-first
// protocol's greeting comes at once, even with a long detection timeout.
func TestDetectDisabledOnTCPPort(t *testing.T) {
	web, greeter := startWebApp(t), startGreeter(t)
	ln, err := net.Listen("tcp", clientIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	reg := prometheus.NewRegistry()
	rt := New(Options{Metrics: reg})
	t.Cleanup(func() { rt.Close() })
	addr := net.JoinHostPort(clientIP, strconv.Itoa(int(port)))
	if err := rt.Apply(detectResources(t, detectListener(t, addr, 10*time.Second, port), web.addr, greeter)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("server-first greeting: %q %v (after %v)", buf, err, time.Since(start))
	}
	if got := counterValue(t, detectFallbacks(reg).WithLabelValues("detect", "timeout")); got != 0 {
		t.Fatalf("fallbacks = %v on a port without detection", got)
	}
}

func TestDetectConfig(t *testing.T) {
	base := func(t *testing.T) *Resources {
		return detectResources(t, detectListener(t, clientIP+":0", 100*time.Millisecond, 0), "127.0.0.9:1", "127.0.0.9:2")
	}
	tlsInspector := &listenerv3.ListenerFilter{Name: "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspectorv3.TlsInspector{})}}
	for _, tc := range []struct {
		name string
		edit func(*testing.T, *listenerv3.Listener)
		want string
	}{
		{"http and tcp chains", func(*testing.T, *listenerv3.Listener) {}, ""},
		{"sni chain with a tls_inspector", func(t *testing.T, l *listenerv3.Listener) {
			l.ListenerFilters = append(l.ListenerFilters, tlsInspector)
			l.FilterChains[1].FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "tls", ServerNames: []string{"*.example.com"}}
		}, ""},
		{"ALPN without a tls_inspector", func(t *testing.T, l *listenerv3.Listener) {
			l.FilterChains[1].FilterChainMatch = &listenerv3.FilterChainMatch{ApplicationProtocols: []string{"h2"}}
		}, "filter_chains[1].filter_chain_match.application_protocols[0]: \"h2\" (an ALPN protocol) needs an envoy.filters.listener.tls_inspector"},
		{"http protocols without an http_inspector", func(t *testing.T, l *listenerv3.Listener) {
			l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector}
		}, "filter_chains[0].filter_chain_match.application_protocols[0]: \"http/1.0\" needs an envoy.filters.listener.http_inspector"},
		{"two chains matching alike", func(t *testing.T, l *listenerv3.Listener) {
			l.FilterChains[1].FilterChainMatch = l.FilterChains[0].FilterChainMatch
		}, "filter_chains[1].filter_chain_match: matches the same connections as filter_chains[0]"},
		{"bad port range", func(t *testing.T, l *listenerv3.Listener) {
			l.ListenerFilters[0].FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
				DestinationPortRange: &typev3.Int32Range{Start: 5, End: 5}}}
		}, "listener_filters[0].filter_disabled.destination_port_range: [5, 5) is not a port range"},
		{"unsupported predicate", func(t *testing.T, l *listenerv3.Listener) {
			l.ListenerFilters[0].FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_AnyMatch{AnyMatch: true}}
		}, "any_match"},
		{"tls_inspector disabled on a port", func(t *testing.T, l *listenerv3.Listener) {
			l.ListenerFilters = append([]*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
				ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspectorv3.TlsInspector{})},
				FilterDisabled: &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
					DestinationPortRange: &typev3.Int32Range{Start: 3306, End: 3307}}},
			}}, l.ListenerFilters...)
		}, ""},
		{"destination port 0", func(t *testing.T, l *listenerv3.Listener) {
			l.FilterChains[1].FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(0)}
		}, "destination_port: value must be greater than or equal to 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base(t)
			tc.edit(t, r.Listeners["detect"])
			rt := New(Options{Metrics: prometheus.NewRegistry()})
			defer rt.Close()
			err := rt.Apply(r)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPickFollowsEnvoyOrder(t *testing.T) {
	chains := []*filterChain{{name: "tcp"}, {name: "http"}, {name: "tls-any"}, {name: "tls-exact"}, {name: "tls-wild"}, {name: "port-9000"}}
	cs := &chainSelector{chains: chains, matches: []chainMatch{
		{},
		{protocols: []string{protoHTTP11, protoH2C}},
		{transport: transportTLS},
		{transport: transportTLS, serverNames: []string{"api.example.com"}},
		{transport: transportTLS, serverNames: []string{"*.example.com"}},
		{port: 9000},
	}}
	dst := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port) }
	for _, tc := range []struct {
		port uint16
		d    detection
		want string
	}{
		{80, detection{transport: transportRaw, protocols: []string{protoHTTP11}}, "http"},
		{80, detection{transport: transportRaw}, "tcp"},
		{80, detection{transport: transportRaw, protocols: []string{protoHTTP10}}, "tcp"},
		{443, detection{transport: transportTLS, serverName: "api.example.com"}, "tls-exact"},
		{443, detection{transport: transportTLS, serverName: "www.example.com"}, "tls-wild"},
		{443, detection{transport: transportTLS, serverName: "other.org"}, "tls-any"},
		{9000, detection{transport: transportRaw, protocols: []string{protoHTTP11}}, "port-9000"},
	} {
		if got := cs.pick(dst(tc.port), tc.d); got == nil || got.name != tc.want {
			t.Errorf("port %d %+v: got %v, want %s", tc.port, tc.d, got, tc.want)
		}
	}
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestDetectTLSBySNI: with a tls_inspector beside the http_inspector, a
// ClientHello naming a host goes to the chain of its server name (here a
// TCP proxy to an echo app, which sends the hello back untouched), plain
// HTTP still to the HTTP chain, and the rest to the TCP chain.
func TestDetectTLSBySNI(t *testing.T) {
	web, greeter, echo := startWebApp(t), startGreeter(t), startEchoApp(t)
	l := detectListener(t, clientIP+":0", 2*time.Second, 0)
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{Name: "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspectorv3.TlsInspector{})}})
	l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
		Name:             "tls-example",
		FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls", ServerNames: []string{"*.example.com"}},
		Filters:          []*listenerv3.Filter{tcpFilter(t, "sni", "inbound|echo.default")},
	})
	r := detectResources(t, l, web.addr, greeter)
	cl := inboundCluster(t, service{name: "echo", namespace: "default", protocol: "tcp"}, echo)
	r.Clusters[cl.Name] = cl
	rt := New(Options{Metrics: prometheus.NewRegistry()})
	t.Cleanup(func() { rt.Close() })
	if err := rt.Apply(r); err != nil {
		t.Fatal(err)
	}
	addr := rt.ListenerAddr("detect").String()

	exchange := func(first []byte, want string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(first); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}
	// The SNI chain: the echo app sends the hello back.
	hello := clientHello(t, "api.example.com", []string{"h2"})
	exchange(hello, string(hello))
	// No chain for its name: the TCP chain, whose app greets first.
	other := clientHello(t, "db.internal", nil)
	exchange(other, "hello"+string(other))
	if res, body := get(t, h1Client(t), "http://"+addr+"/"); res.StatusCode != 200 || body != "GET " {
		t.Fatalf("HTTP/1.1 beside TLS detection: %d %q", res.StatusCode, body)
	}
}

// TestPickCaptureChains: the translator's capture listener (REGISTRY_ONLY,
// with ExternalServices) picks its chains as intended, port first as in
// Envoy: a destination outside the mesh on a port some VIP or
// ExternalService uses sees only that port's chains, which repeat the
// passthrough ones; other ports get the port-less passthrough chain; what
// no chain takes goes to the default chain (nil here).
func TestPickCaptureChains(t *testing.T) {
	res := loadGolden(t, filepath.Join(translatorGoldens, "capture-egress.golden"))
	rt := New(Options{})
	snap, err := rt.build(res, rt.cur.Load())
	if err != nil {
		t.Fatal(err)
	}
	cs := snap.listeners[xdsmeta.OutboundCaptureListener].detect
	if cs == nil || cs.defaultChain == nil {
		t.Fatal("the capture listener has no chain selector or default chain")
	}
	h1 := detection{transport: transportRaw, protocols: []string{protoHTTP11}}
	raw := detection{transport: transportRaw}
	tlsTo := func(sni string) detection {
		return detection{transport: transportTLS, serverName: sni, protocols: []string{"h2", "http/1.1"}}
	}
	for _, tc := range []struct {
		dst  string
		d    detection
		want string // "" for the default chain
	}{
		{"240.240.0.1:8080", h1, "outbound|web.shop|240.240.0.1:8080"},
		{"240.240.0.1:8080", raw, "outbound|web.shop|240.240.0.1:8080"},
		{"10.96.0.10:5432", raw, "outbound|db.data|10.96.0.10:5432"},
		// Another address on a VIP's port: that port's passthrough chains.
		{"203.0.113.9:8080", h1, "outbound_passthrough|8080"},
		{"203.0.113.9:8080", raw, ""},
		{"203.0.113.9:5432", raw, ""},
		// A VIP on a port it does not serve is no mesh destination either.
		{"240.240.0.1:443", h1, "outbound_passthrough|443"},
		{"240.240.0.1:5432", raw, ""},
		// A port no chain names.
		{"203.0.113.9:8081", h1, "outbound_passthrough"},
		{"203.0.113.9:8081", detection{transport: transportRaw, protocols: []string{protoH2C}}, "outbound_passthrough"},
		{"203.0.113.9:8081", raw, ""},
		{"203.0.113.9:8081", tlsTo("secure.partner.example"), ""},
		// TLS by SNI on the ExternalService's port, exact and wildcard;
		// ALPN http/1.1 over TLS is not plaintext HTTP.
		{"203.0.113.9:443", tlsTo("secure.partner.example"), "PassthroughCluster|tls|443"},
		{"203.0.113.9:443", tlsTo("www.secure.example"), "PassthroughCluster|tls|443"},
		{"203.0.113.9:443", tlsTo("other.world.example"), ""},
		{"203.0.113.9:443", tlsTo(""), ""},
		{"203.0.113.9:443", h1, "outbound_passthrough|443"},
		// An ExternalService's tcp endpoints; its other addresses are not.
		{"192.0.2.12:3306", raw, "outbound|db.partner.example:3306|192.0.2.12:3306"},
		{"192.0.2.13:3306", raw, "outbound|db.partner.example:3306|192.0.2.13:3306"},
		{"192.0.2.99:3306", raw, ""},
		// Sent through an egress gateway: no way out but the gateway.
		{"192.0.2.14:5000", raw, ""},
		{"203.0.113.9:8443", tlsTo("gated.partner.example"), ""},
	} {
		fc := cs.pick(netip.MustParseAddrPort(tc.dst), tc.d)
		got := ""
		if fc != nil {
			got = fc.name
		}
		if got != tc.want {
			t.Errorf("%s %+v: chain %q, want %q", tc.dst, tc.d, got, tc.want)
		}
	}
	// Which chains pass bytes through to the original destination.
	for _, name := range []string{"PassthroughCluster|tls|443", "PassthroughCluster|tls|9443"} {
		if fc := cs.chainNamed(name); fc == nil || !fc.passthrough {
			t.Errorf("%s is not a passthrough chain", name)
		}
	}
	if cs.defaultChain.passthrough {
		t.Errorf("under REGISTRY_ONLY the default chain passes through")
	}
	// Neither inspector waits on a tcp port.
	for _, port := range []uint16{3306, 5000, 5432} {
		if enabled(cs.in.http, cs.in.httpDisabled, port) || enabled(cs.in.tls, cs.in.tlsDisabled, port) {
			t.Errorf("an inspector runs on tcp port %d", port)
		}
	}
	if !enabled(cs.in.http, cs.in.httpDisabled, 8081) || !enabled(cs.in.tls, cs.in.tlsDisabled, 443) {
		t.Errorf("inspectors off where they should run")
	}
	if cs.timeout != 100*time.Millisecond || !cs.continueOnTimeout {
		t.Errorf("detection timeout %v, continue %v", cs.timeout, cs.continueOnTimeout)
	}
}

// TestTLSInspectorDisabledNeedsChainSelection: the PERMISSIVE tls and
// raw_buffer pair always peeks, so a tls_inspector disabled on ports there
// would be silently ignored: it is refused.
func TestTLSInspectorDisabledNeedsChainSelection(t *testing.T) {
	r := fullConfig(t)
	l := permissive(t, r)
	l.ListenerFilters[0].FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
		DestinationPortRange: &typev3.Int32Range{Start: 3306, End: 3307}}}
	rt := New(Options{})
	_, err := rt.build(r, rt.cur.Load())
	if want := "listener_filters[0].filter_disabled: is supported on a tls_inspector only where chains are chosen per connection"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v, want %q", err, want)
	}
}

// TestRequestDetection: a request whose chain is gone after an update is
// given one again by what it says of its connection.
func TestRequestDetection(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *http.Request
		want detection
	}{
		{"h1.1", &http.Request{ProtoMajor: 1, ProtoMinor: 1}, detection{transport: transportRaw, protocols: []string{protoHTTP11}}},
		{"h1.0", &http.Request{ProtoMajor: 1, ProtoMinor: 0}, detection{transport: transportRaw, protocols: []string{protoHTTP10}}},
		{"h2c", &http.Request{ProtoMajor: 2}, detection{transport: transportRaw, protocols: []string{protoH2C}}},
		{"tls", &http.Request{ProtoMajor: 2, TLS: &tls.ConnectionState{ServerName: "a.example", NegotiatedProtocol: "h2"}},
			detection{transport: transportTLS, serverName: "a.example", protocols: []string{"h2"}}},
		{"tls without alpn", &http.Request{ProtoMajor: 1, ProtoMinor: 1, TLS: &tls.ConnectionState{}}, detection{transport: transportTLS}},
	} {
		if got := requestDetection(tc.r); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
