package cli

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/api/client"
	"github.com/weftmesh/weft/api/meshv1"
	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/store/storetest"
	"github.com/weftmesh/weft/controlplane/telemetry"
	"github.com/weftmesh/weft/controlplane/token"
	"github.com/weftmesh/weft/proxy/admin"
	"github.com/weftmesh/weft/proxy/observe"
	"github.com/weftmesh/weft/proxy/runtime"
	"github.com/weftmesh/weft/proxy/tap"
)

// testProxy is one workload's admin port: its metrics (the contract's
// series), its tap hub and its config, served by the real admin handler.
type testProxy struct {
	w        *meshv1.Workload
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	hub      *tap.Hub
	dump     *runtime.ConfigDump
}

var testReqLabels = []string{"direction", "source_service", "source_namespace", "source_version",
	"destination_service", "destination_namespace", "destination_version", "response_code", "grpc_status", "mtls"}

func (p *testProxy) Ready() (bool, string)   { return true, "" }
func (p *testProxy) ConfigDump() any         { return map[string]any{"resources": p.dump} }
func (p *testProxy) WriteClusters(io.Writer) {}
func (p *testProxy) Certificates() any {
	return map[string]any{
		"svid":        map[string]any{"spiffeID": "spiffe://weft.local/ns/shop/sa/" + p.w.GetService(), "serial": "1f", "notAfter": "2030-01-03T03:04:05Z"},
		"trustBundle": []map[string]any{{"subject": "CN=weft root", "sha256": "0123456789abcdef0123456789abcdef"}},
	}
}
func (p *testProxy) Drain()                   {}
func (p *testProxy) TapHandler() http.Handler { return p.hub.Handler() }

func newTestProxy(t *testing.T, id, svc, version string) *testProxy {
	p := &testProxy{
		reg:      prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_requests_total"}, testReqLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "weft_request_duration_seconds",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}, testReqLabels),
		hub:  tap.NewHub(nil, ""),
		dump: testDump(t, svc),
	}
	p.reg.MustRegister(p.requests, p.duration)
	srv := httptest.NewServer(admin.Handler(p, p.reg, nil))
	t.Cleanup(srv.Close)
	t.Cleanup(p.hub.Close)
	p.w = &meshv1.Workload{Id: id, Service: svc, Namespace: "shop", Version: version, Ready: true,
		Address: strings.TrimPrefix(id, svc+".shop@"), AdminAddress: strings.TrimPrefix(srv.URL, "http://")}
	return p
}

func (p *testProxy) serve(src, code string, n int, latency time.Duration) {
	l := prometheus.Labels{"direction": "inbound", "source_service": src, "source_namespace": "shop", "source_version": "",
		"destination_service": p.w.GetService(), "destination_namespace": "shop", "destination_version": p.w.GetVersion(),
		"response_code": code, "grpc_status": "", "mtls": fmt.Sprint(src != "")}
	if src == "" {
		l["source_namespace"] = ""
	}
	p.requests.With(l).Add(float64(n))
	for range n {
		p.duration.With(l).Observe(latency.Seconds())
	}
}

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func raw(t *testing.T, m proto.Message) json.RawMessage {
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testDump is a proxy's config: an inbound TCP listener, an upstream's
// EDS cluster with mTLS and its endpoints, and the trust bundle.
func testDump(t *testing.T, svc string) *runtime.ConfigDump {
	addr := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	inbound := &listenerv3.Listener{Name: "inbound", Address: addr("127.0.1.2", 15006), FilterChains: []*listenerv3.FilterChain{{
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, &tlsv3.DownstreamTlsContext{})}},
		Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t,
			&tcpproxyv3.TcpProxy{StatPrefix: "inbound", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "inbound|" + svc + ".shop"}})}}},
	}}}
	upstreamTLS := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_URI,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://weft.local/ns/shop/sa/db"}},
			}}},
		}}}}
	outbound := &clusterv3.Cluster{Name: "outbound|db.shop", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, upstreamTLS)}}}
	local := &clusterv3.Cluster{Name: "inbound|" + svc + ".shop", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|db.shop", Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr("127.0.1.9", 15006)}}}},
	}}}
	return &runtime.ConfigDump{
		Listeners:      map[string]json.RawMessage{"inbound": raw(t, inbound)},
		Routes:         map[string]json.RawMessage{},
		Clusters:       map[string]json.RawMessage{outbound.Name: raw(t, outbound), local.Name: raw(t, local)},
		Endpoints:      map[string]json.RawMessage{cla.ClusterName: raw(t, cla)},
		Secrets:        map[string]json.RawMessage{"ROOTCA": json.RawMessage(`{"name":"ROOTCA","validationContext":{"trustedCa":{"inlineBytes":"AAAA"}}}`)},
		BoundListeners: map[string]string{"inbound": "127.0.1.2:15006"},
	}
}

// startTelemetryControlPlane serves the real API with a real telemetry
// aggregator over the given proxies, and returns a client config path.
func startTelemetryControlPlane(t *testing.T, src telemetry.Source, proxies ...*testProxy) string {
	t.Helper()
	ctx := context.Background()
	st := storetest.New(t)
	for _, p := range proxies {
		if _, err := st.PutWorkload(ctx, p.w, clientv3.NoLease); err != nil {
			t.Fatal(err)
		}
	}
	issuer, err := token.NewIssuer(ctx, st.Client(), token.WithClock(func() time.Time { return issuedAt }))
	if err != nil {
		t.Fatal(err)
	}
	adminCred, err := issuer.CreateAdmin(ctx, "cli-test")
	if err != nil {
		t.Fatal(err)
	}
	if src == nil {
		src = telemetry.New(telemetry.Options{Workloads: st})
	}
	srv := httptest.NewTLSServer(apiserver.New(apiserver.Options{
		Store: st, Workloads: st, Tokens: issuer, Auth: issuer, Telemetry: src,
		TrustDomain: "weft.local", Log: slog.New(slog.DiscardHandler),
	}))
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "config")
	if err := client.WriteConfig(path, client.Config{
		Server: srv.URL, Token: adminCred,
		CACert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
	}); err != nil {
		t.Fatal(err)
	}
	return path
}

type proxyList []*testProxy

func (l proxyList) ListWorkloads(_ context.Context, ns, svc string) ([]*meshv1.Workload, error) {
	var out []*meshv1.Workload
	for _, p := range l {
		if (ns == "" || p.w.GetNamespace() == ns) && (svc == "" || p.w.GetService() == svc) {
			out = append(out, p.w)
		}
	}
	return out, nil
}

func TestStatCommand(t *testing.T) {
	catalog1 := newTestProxy(t, "catalog.shop@127.0.1.2:15006", "catalog", "v1")
	catalog2 := newTestProxy(t, "catalog.shop@127.0.1.3:15006", "catalog", "v2")
	web := newTestProxy(t, "web.shop@127.0.1.4:15006", "web", "v1")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	agg := telemetry.New(telemetry.Options{Workloads: proxyList{catalog1, catalog2, web}, Now: func() time.Time { return now }})
	agg.ScrapeOnce(context.Background())
	now = now.Add(20 * time.Second)
	catalog1.serve("web", "200", 180, 3*time.Millisecond)
	catalog1.serve("web", "503", 10, 80*time.Millisecond)
	catalog2.serve("", "200", 10, time.Millisecond)
	web.serve("", "200", 40, 12*time.Millisecond)
	agg.ScrapeOnce(context.Background())
	cfg := startTelemetryControlPlane(t, agg, catalog1, catalog2, web)

	for _, c := range []cliCase{
		{golden: "stat", args: []string{"stat", "-n", "shop", "--config", cfg}},
		{golden: "stat-service", args: []string{"stat", "catalog", "-n", "shop", "--window", "30s", "--config", cfg}},
		{golden: "stat-all-edges", args: []string{"stat", "-A", "--edges", "--config", cfg}},
		{golden: "stat-unknown-service", args: []string{"stat", "nosuch", "-n", "shop", "--config", cfg}},
		{golden: "stat-bad-window", args: []string{"stat", "--window", "2h", "--config", cfg}},
	} {
		t.Run(c.golden, func(t *testing.T) { checkGolden(t, c.golden, run(t, c)) })
	}
}

func tapRecord(method, path string, status int, ms int) *observe.Request {
	req := httptest.NewRequest(method, "http://catalog.shop:8080"+path, nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	req.Header.Set("User-Agent", "web/1.0")
	return &observe.Request{
		Direction: observe.Inbound, Start: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(ms) * time.Second),
		Request: req, Source: observe.Peer{ID: "spiffe://weft.local/ns/shop/sa/web", Service: "web", Namespace: "shop"},
		Destination: observe.Peer{Service: "catalog", Namespace: "shop"}, MTLS: true, Status: status,
		ResponseHeader: http.Header{"Content-Type": {"application/json"}}, Duration: time.Duration(ms) * time.Millisecond,
		Route: "default", Upstream: "127.0.1.2:8080",
	}
}

// runWhenTapped runs the command line and, once every proxy is tapped,
// publishes records to them in turn.
func runWhenTapped(t *testing.T, c cliCase, proxies []*testProxy, records []*observe.Request) string {
	t.Helper()
	out := make(chan string)
	go func() { out <- run(t, c) }()
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range proxies {
		for !p.hub.Active() {
			if time.Now().After(deadline) {
				t.Fatal("the proxies were never tapped")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i, r := range records {
		proxies[i%len(proxies)].hub.Publish(r)
		time.Sleep(20 * time.Millisecond) // keep the merged order that of publication
	}
	return <-out
}

func TestTapCommand(t *testing.T) {
	p := newTestProxy(t, "catalog.shop@127.0.1.2:15006", "catalog", "v1")
	cfg := startTelemetryControlPlane(t, nil, p)
	records := []*observe.Request{tapRecord("GET", "/items?page=2", 200, 3), tapRecord("POST", "/items", 503, 40)}
	checkGolden(t, "tap", runWhenTapped(t, cliCase{args: []string{"tap", "catalog", "-n", "shop", "--headers", "--max", "2", "--config", cfg}},
		[]*testProxy{p}, records))
	checkGolden(t, "tap-json", runWhenTapped(t, cliCase{args: []string{"tap", "catalog", "-n", "shop", "-o", "json", "--max", "1", "--config", cfg}},
		[]*testProxy{p}, records[:1]))
	checkGolden(t, "tap-no-proxy", run(t, cliCase{args: []string{"tap", "nosuch", "-n", "shop", "--config", cfg}}))
}

func TestTopCommand(t *testing.T) {
	a := newTestProxy(t, "catalog.shop@127.0.1.2:15006", "catalog", "v1")
	b := newTestProxy(t, "catalog.shop@127.0.1.3:15006", "catalog", "v2")
	cfg := startTelemetryControlPlane(t, nil, a, b)
	records := []*observe.Request{
		tapRecord("GET", "/items", 200, 3), tapRecord("GET", "/items?page=2", 200, 5), tapRecord("GET", "/items", 503, 90),
		tapRecord("POST", "/cart", 200, 12), tapRecord("GET", "/health", 200, 1),
	}
	checkGolden(t, "top-once", runWhenTapped(t, cliCase{args: []string{"top", "catalog", "-n", "shop", "--once", "--duration", "2s", "--config", cfg}},
		[]*testProxy{a, b}, records))
}

func TestProxyConfigCommand(t *testing.T) {
	p := newTestProxy(t, "catalog.shop@127.0.1.2:15006", "catalog", "v1")
	cfg := startTelemetryControlPlane(t, nil, p)
	for _, c := range []cliCase{
		{golden: "proxy-config-listeners", args: []string{"proxy-config", "catalog.shop@127.0.1.2:15006", "listeners", "--config", cfg}},
		{golden: "proxy-config-clusters", args: []string{"proxy-config", "catalog.shop@127.0.1.2:15006", "clusters", "--config", cfg}},
		{golden: "proxy-config-endpoints", args: []string{"proxy-config", "catalog.shop@127.0.1.2:15006", "endpoints", "--config", cfg}},
		{golden: "proxy-config-secrets", args: []string{"proxy-config", "catalog.shop@127.0.1.2:15006", "secrets", "--config", cfg}},
		{golden: "proxy-config-unknown-workload", args: []string{"proxy-config", "catalog.shop@127.0.9.9:1", "clusters", "--config", cfg}},
		{golden: "proxy-config-bad-section", args: []string{"proxy-config", "catalog.shop@127.0.1.2:15006", "bananas", "--config", cfg}},
	} {
		t.Run(c.golden, func(t *testing.T) { checkGolden(t, c.golden, run(t, c)) })
	}
}
