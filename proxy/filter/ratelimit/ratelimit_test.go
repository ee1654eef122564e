package ratelimit

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	exprv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rate_limit_descriptors/expr/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/api/xdsmeta"
	"github.com/weftmesh/weft/proxy/filter"
)

// The filter against the control plane's real service is tested in
// controlplane/ratelimit; these tests need no service, or one that is not
// there.

func config(closed bool) *ratelimitv3.RateLimit {
	return &ratelimitv3.RateLimit{
		Domain: xdsmeta.RateLimitDomain, Timeout: durationpb.New(100e6), FailureModeDeny: closed,
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: xdsmeta.ControlPlaneCluster}}},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
		StatusOnError: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}
}

// unreachable is a connection to a loopback port nobody listens on.
func unreachable(t testing.TB) *grpc.ClientConn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func perRoute(t testing.TB, peer bool) *PerRoute {
	t.Helper()
	actions := []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
		GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: "destination", DescriptorValue: "catalog.shop"}}}}
	if peer {
		expr, _ := anypb.New(&exprv3.Descriptor{DescriptorKey: "source", ExprSpecifier: &exprv3.Descriptor_Text{Text: xdsmeta.PeerIdentityExpr}})
		actions = append(actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Extension{
			Extension: &corev3.TypedExtensionConfig{Name: "envoy.rate_limit_descriptors.expr", TypedConfig: expr}}})
	}
	pr, err := CompilePerRoute(&ratelimitv3.RateLimitPerRoute{RateLimits: []*routev3.RateLimit{{Actions: actions}}})
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUnreachable: without the service, a filter that fails open lets
// requests through and one that fails closed refuses them with its error
// status; either logs the outage once, not once per request.
func TestUnreachable(t *testing.T) {
	logs := &syncBuffer{}
	env := filter.Env{ControlPlane: unreachable(t), Log: slog.New(slog.NewTextHandler(logs, nil))}
	open, err := New(config(false), env)
	if err != nil {
		t.Fatal(err)
	}
	closed, err := New(config(true), env)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	pr := perRoute(t, false)
	for range 20 {
		if d := open.DecodeHeaders(r, &filter.Stream{}, pr); d.Reply != nil {
			t.Fatalf("failing open refused: %+v", d.Reply)
		}
		d := closed.DecodeHeaders(r, &filter.Stream{}, pr)
		if d.Reply == nil || d.Reply.Status != 503 || d.Reply.Reason != "rate_limit_service_unavailable" {
			t.Fatalf("failing closed: %+v, want 503 rate_limit_service_unavailable", d.Reply)
		}
	}
	if n := strings.Count(logs.String(), "rate limit service unreachable"); n != 2 {
		t.Errorf("%d log lines for 40 failures of two filters, want one each:\n%s", n, logs)
	}
	// A route whose actions produce no descriptor (a caller without an
	// identity) does not call the service: even failing closed, it goes on.
	if d := closed.DecodeHeaders(r, &filter.Stream{}, perRoute(t, true)); d.Reply != nil {
		t.Errorf("a request without descriptors was refused: %+v", d.Reply)
	}
	// Without a connection to the control plane, the service is unreachable.
	alone, err := New(config(true), filter.Env{Log: env.Log})
	if err != nil {
		t.Fatal(err)
	}
	if d := alone.DecodeHeaders(r, &filter.Stream{}, pr); d.Reply == nil || d.Reply.Status != 503 {
		t.Errorf("failing closed without a connection: %+v, want 503", d.Reply)
	}
	// A route without actions, or none at all, is not limited.
	if d := closed.DecodeHeaders(r, &filter.Stream{}, nil); d.Reply != nil {
		t.Errorf("a route without rate limits was refused: %+v", d.Reply)
	}
}

func TestNewErrors(t *testing.T) {
	conn := unreachable(t)
	for _, tc := range []struct {
		name string
		edit func(*ratelimitv3.RateLimit)
		env  filter.Env
		want string
	}{
		{"no domain", func(c *ratelimitv3.RateLimit) { c.Domain = "" }, filter.Env{ControlPlane: conn}, "domain: is required"},
		{"another cluster", func(c *ratelimitv3.RateLimit) {
			c.RateLimitService.GrpcService.GetEnvoyGrpc().ClusterName = "ratelimit"
		}, filter.Env{ControlPlane: conn}, `rate_limit_service.grpc_service.envoy_grpc.cluster_name: "ratelimit" is not reachable`},
		{"v2", func(c *ratelimitv3.RateLimit) { c.RateLimitService.TransportApiVersion = corev3.ApiVersion_AUTO }, filter.Env{ControlPlane: conn},
			"rate_limit_service.transport_api_version: AUTO is not supported (want V3)"},
		{"ok status on error", func(c *ratelimitv3.RateLimit) { c.StatusOnError.Code = typev3.StatusCode_OK }, filter.Env{ControlPlane: conn},
			"status_on_error.code: 200 is not an error status"},
		{"bad action", func(c *ratelimitv3.RateLimit) {
			c.RateLimits = []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
				GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: "k"}}}}}}
		}, filter.Env{ControlPlane: conn}, "rate_limits[0].actions[0].generic_key.descriptor_value: is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config(false)
			tc.edit(c)
			if _, err := New(c, tc.env); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// BenchmarkNoDescriptor is the cost of the filter on a route whose actions
// produce no descriptor: what every request of a limit that counts callers
// apart pays when it carries no identity, without a call.
func BenchmarkNoDescriptor(b *testing.B) {
	f, err := New(config(true), filter.Env{ControlPlane: unreachable(b)})
	if err != nil {
		b.Fatal(err)
	}
	pr := perRoute(b, true)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		if d := f.DecodeHeaders(r, &filter.Stream{}, pr); d.Reply != nil {
			b.Fatal("refused")
		}
	}
}
