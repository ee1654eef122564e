package ratelimit

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/api/spiffe"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/controlplane/translate"
	"github.com/weftmesh/weft/internal/testpki"
	"github.com/weftmesh/weft/proxy/filter"
	globalfilter "github.com/weftmesh/weft/proxy/filter/ratelimit"
)

// The proxy's global rate limit filter against this service, over gRPC
// with mutual TLS, as a proxy reaches the control plane.

// service is a rate limit service on 127.0.0.1 behind mutual TLS.
type service struct {
	ca   *testpki.CA
	addr string
	stop func()
}

func startService(t testing.TB, in *translate.Input) *service {
	t.Helper()
	ca := testpki.NewCA(t, "root")
	cert := ca.Issue(t, spiffe.ID{TrustDomain: trustDomain, Namespace: spiffe.ControlPlaneNamespace, Service: spiffe.ControlPlaneService},
		testpki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert}, ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS13,
	})))
	s := New(Options{TrustDomain: trustDomain})
	s.Update(in)
	s.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Serve(lis) })
	var once sync.Once
	svc := &service{ca: ca, addr: lis.Addr().String(), stop: func() { once.Do(func() { g.Stop(); wg.Wait() }) }}
	t.Cleanup(svc.stop)
	return svc
}

// dial connects as a proxy of service name, or without a certificate.
func (svc *service) dial(t testing.TB, name string) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: svc.ca.Pool(), MinVersion: tls.VersionTLS13}
	if name != "" {
		cfg.Certificates = []tls.Certificate{svc.ca.Issue(t, spiffe.ID{TrustDomain: trustDomain, Namespace: "shop", Service: name}, testpki.Options{})}
	}
	conn, err := grpc.NewClient(svc.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// globalFilter is the filter as translated for catalog, failing closed or
// open, with the per-route config of limit.
func globalFilter(t testing.TB, conn *grpc.ClientConn, closed bool, limit string, perSource bool) (*globalfilter.Filter, any) {
	t.Helper()
	f, err := globalfilter.New(&ratelimitv3.RateLimit{
		Domain: xdsmeta.RateLimitDomain, Timeout: durationpb.New(time.Second), FailureModeDeny: closed,
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: xdsmeta.ControlPlaneCluster}}},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
		EnableXRatelimitHeaders: ratelimitv3.RateLimit_DRAFT_VERSION_03, EnableRetryAfterHeader: true,
		RateLimitedAsResourceExhausted: true, StatusOnError: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}, filter.Env{ControlPlane: conn})
	if err != nil {
		t.Fatal(err)
	}
	key := func(k, v string) *routev3.RateLimit_Action {
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
			GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: k, DescriptorValue: v}}}
	}
	actions := []*routev3.RateLimit_Action{key("destination", "catalog.shop"), key("limit", limit)}
	if perSource {
		actions = append(actions, key("source", "spiffe://weft.local/ns/shop/sa/web"))
	}
	pr, err := globalfilter.CompilePerRoute(&ratelimitv3.RateLimitPerRoute{RateLimits: []*routev3.RateLimit{{Actions: actions}}})
	if err != nil {
		t.Fatal(err)
	}
	return f, pr
}

func peerStream(id string) *filter.Stream {
	u, _ := url.Parse(id)
	return &filter.Stream{TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{u}}}}}
}

func TestFilterAgainstService(t *testing.T) {
	in := &translate.Input{RateLimits: map[translate.ServiceKey]*v1alpha1.RateLimitSpec{
		{Namespace: "shop", Name: "catalog"}: {Limits: []v1alpha1.Limit{
			{Name: "hourly", Global: &v1alpha1.GlobalLimit{Requests: 5, Unit: v1alpha1.UnitMinute}},
		}},
	}}
	svc := startService(t, in)
	f, pr := globalFilter(t, svc.dial(t, "catalog"), false, "hourly", false)
	s := peerStream("spiffe://weft.local/ns/shop/sa/web")
	r := httptest.NewRequest(http.MethodGet, "/", nil)

	ok := 0
	var refused *filter.Reply
	for range 7 {
		d := f.DecodeHeaders(r, s, pr)
		if d.Reply == nil {
			ok++
		} else {
			refused = d.Reply
		}
	}
	// A minute window that started before the test may end during it,
	// allowing at most one more window's worth.
	if ok < 5 || ok > 6 || refused == nil {
		t.Fatalf("%d of 7 let through within a limit of 5 a minute, refusal %+v", ok, refused)
	}
	if refused.Status != 429 || refused.Reason != "rate_limited" || refused.Header.Get("X-Envoy-Ratelimited") != "true" ||
		refused.Header.Get("X-Ratelimit-Limit") != "5, 5;w=60" || refused.Header.Get("X-Ratelimit-Remaining") != "0" ||
		refused.Header.Get("Retry-After") == "" {
		t.Errorf("refusal %+v", refused)
	}
	g := httptest.NewRequest(http.MethodPost, "/pkg.Svc/Call", nil)
	g.Header.Set("Content-Type", "application/grpc")
	if d := f.DecodeHeaders(g, s, pr); d.Reply == nil || d.Reply.GRPCStatus == nil || *d.Reply.GRPCStatus != 8 {
		t.Errorf("gRPC refusal %+v, want RESOURCE_EXHAUSTED", d.Reply)
	}

	// A proxy of another service may not spend catalog's limit: the
	// service refuses the call, and the filter fails as configured.
	other, otherRoute := globalFilter(t, svc.dial(t, "web"), true, "hourly", false)
	if d := other.DecodeHeaders(r, s, otherRoute); d.Reply == nil || d.Reply.Status != 503 || d.Reply.Reason != "rate_limit_service_unavailable" {
		t.Errorf("a call about another service's limit: %+v, want 503 (failing closed)", d.Reply)
	}
	// Without a certificate the call is refused too.
	anon, anonRoute := globalFilter(t, svc.dial(t, ""), false, "hourly", false)
	if d := anon.DecodeHeaders(r, s, anonRoute); d.Reply != nil {
		t.Errorf("failing open without a certificate: %+v", d.Reply)
	}

	// With the service gone, the filter fails open or closed.
	open, openRoute := globalFilter(t, svc.dial(t, "catalog"), false, "other", false)
	closed, closedRoute := globalFilter(t, svc.dial(t, "catalog"), true, "other", false)
	svc.stop()
	if d := open.DecodeHeaders(r, s, openRoute); d.Reply != nil {
		t.Errorf("failing open: %+v", d.Reply)
	}
	if d := closed.DecodeHeaders(r, s, closedRoute); d.Reply == nil || d.Reply.Status != 503 {
		t.Errorf("failing closed: %+v, want 503", d.Reply)
	}
}

// BenchmarkGlobalFilter is one request through the global filter: a
// ShouldRateLimit call to the service over mutual TLS on loopback.
func BenchmarkGlobalFilter(b *testing.B) {
	in := &translate.Input{RateLimits: map[translate.ServiceKey]*v1alpha1.RateLimitSpec{
		{Namespace: "shop", Name: "catalog"}: {Limits: []v1alpha1.Limit{
			{Name: "big", PerSource: true, Global: &v1alpha1.GlobalLimit{Requests: 1 << 30, Unit: v1alpha1.UnitSecond}},
		}},
	}}
	svc := startService(b, in)
	f, pr := globalFilter(b, svc.dial(b, "catalog"), true, "big", true)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		s := peerStream("spiffe://weft.local/ns/shop/sa/web")
		for pb.Next() {
			if d := f.DecodeHeaders(r, s, pr); d.Reply != nil {
				b.Fatalf("refused: %+v", d.Reply)
			}
		}
	})
}
