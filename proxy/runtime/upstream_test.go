package runtime

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/cluster"
	"github.com/weftmesh/weft/proxy/lb"
	"github.com/weftmesh/weft/proxy/xdswire"
)

func TestCircuitBreakers(t *testing.T) {
	u32 := wrapperspb.UInt32
	tests := []struct {
		name string
		cb   *clusterv3.CircuitBreakers
		want *cluster.Thresholds
		err  string
	}{
		{name: "absent"},
		{name: "empty", cb: &clusterv3.CircuitBreakers{}, want: &cluster.Thresholds{MaxRequests: 1024, MaxRetries: 3}},
		{name: "limits", cb: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRequests: u32(50), MaxRetries: u32(0),
		}}}, want: &cluster.Thresholds{MaxRequests: 50, MaxRetries: 0}},
		{name: "budget defaults", cb: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{},
		}}}, want: &cluster.Thresholds{MaxRequests: 1024, MaxRetries: 3, Budget: &cluster.RetryBudget{Percent: 20, MinConcurrency: 3}}},
		{name: "budget", cb: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 50}, MinRetryConcurrency: u32(1)},
		}}}, want: &cluster.Thresholds{MaxRequests: 1024, MaxRetries: 3, Budget: &cluster.RetryBudget{Percent: 50, MinConcurrency: 1}}},
		{name: "high priority", cb: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority: corev3.RoutingPriority_HIGH,
		}}}, err: "circuit_breakers.thresholds[0].priority: HIGH is not supported"},
		{name: "pending and connections", cb: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections: u32(100), MaxPendingRequests: u32(0),
		}}}, want: &cluster.Thresholds{MaxRequests: 1024, MaxRetries: 3, LimitPending: true}},
		{name: "no connections", cb: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections: u32(0),
		}}}, err: "max_connections: 0 would refuse"},
		{name: "two defaults", cb: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{}, {}}},
			err: "circuit_breakers.thresholds[1]: a second DEFAULT threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := circuitBreakers(tt.cb)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tt.want == nil) || got != nil && (got.MaxRequests != tt.want.MaxRequests ||
				got.MaxRetries != tt.want.MaxRetries || got.LimitPending != tt.want.LimitPending ||
				got.MaxPendingRequests != tt.want.MaxPendingRequests || (got.Budget == nil) != (tt.want.Budget == nil) ||
				got.Budget != nil && *got.Budget != *tt.want.Budget) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Fields of the circuit breaker the proxy does not implement stay NACKed.
func TestCircuitBreakerUnsupportedFields(t *testing.T) {
	for _, th := range []*clusterv3.CircuitBreakers_Thresholds{
		{TrackRemaining: true},
		{MaxConnectionPools: wrapperspb.UInt32(1)},
	} {
		c := &clusterv3.Cluster{Name: "c", CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}}
		err := xdswire.Check(c)
		if err == nil || !strings.Contains(err.Error(), "circuit_breakers.thresholds[0].") || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%v: err %v", th, err)
		}
	}
	ok := &clusterv3.Cluster{Name: "c", CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxRequests: wrapperspb.UInt32(1), MaxRetries: wrapperspb.UInt32(1),
		RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 1}, MinRetryConcurrency: wrapperspb.UInt32(1)},
	}}}}
	if err := xdswire.Check(ok); err != nil {
		t.Fatal(err)
	}
}

func TestConfigureBalancer(t *testing.T) {
	u32, u64 := wrapperspb.UInt32, wrapperspb.UInt64
	tests := []struct {
		name string
		c    *clusterv3.Cluster
		err  string
	}{
		{name: "round robin", c: &clusterv3.Cluster{}},
		{name: "least request", c: &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_LEAST_REQUEST,
			LbConfig: &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{ChoiceCount: u32(3)}}}},
		{name: "choice count 1", c: &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_LEAST_REQUEST,
			LbConfig: &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{ChoiceCount: u32(1)}}},
			err: "least_request_lb_config: choice_count 1"},
		{name: "ring hash", c: &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_RING_HASH,
			LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: u64(4096)}}}},
		{name: "ring sizes inverted", c: &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_RING_HASH,
			LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: u64(10), MaximumRingSize: u64(5)}}},
			err: "ring_hash_lb_config: minimum_ring_size 10 is above"},
		{name: "murmur", c: &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_RING_HASH,
			LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{HashFunction: clusterv3.Cluster_RingHashLbConfig_MURMUR_HASH_2}}},
			err: "ring_hash_lb_config.hash_function: MURMUR_HASH_2 is not supported"},
		{name: "config of another policy", c: &clusterv3.Cluster{LbPolicy: clusterv3.Cluster_ROUND_ROBIN,
			LbConfig: &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{}}},
			err: "ring_hash_lb_config: set for lb_policy ROUND_ROBIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := configureBalancer(tt.c, lb.Get(lbPolicies[tt.c.GetLbPolicy()]))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || b == nil {
				t.Fatalf("%v %v", b, err)
			}
		})
	}
}

// Options of the balancers the proxy does not implement stay NACKed.
func TestBalancerUnsupportedFields(t *testing.T) {
	for _, c := range []*clusterv3.Cluster{
		{Name: "c", LbConfig: &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{SlowStartConfig: &clusterv3.Cluster_SlowStartConfig{}}}},
		{Name: "c", LbConfig: &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{}}},
		{Name: "c", OutlierDetection: &clusterv3.OutlierDetection{SuccessRateMinimumHosts: wrapperspb.UInt32(3)}},
		{Name: "c", OutlierDetection: &clusterv3.OutlierDetection{EnforcingFailurePercentage: wrapperspb.UInt32(3)}},
		{Name: "c", HealthChecks: []*corev3.HealthCheck{{HealthChecker: &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}}}}},
		{Name: "c", HealthChecks: []*corev3.HealthCheck{{HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{RequestHeadersToAdd: []*corev3.HeaderValueOption{{}}}}}}},
		{Name: "c", HealthChecks: []*corev3.HealthCheck{{UnhealthyInterval: durationpb.New(time.Second)}}},
	} {
		if err := xdswire.Check(c); err == nil || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%v: err %v", c, err)
		}
	}
}

func TestOutlierDetection(t *testing.T) {
	u32 := wrapperspb.UInt32
	od := &clusterv3.OutlierDetection{
		Consecutive_5Xx: u32(5), ConsecutiveGatewayFailure: u32(3), ConsecutiveLocalOriginFailure: u32(4),
		Interval: durationpb.New(5 * time.Second), BaseEjectionTime: durationpb.New(30 * time.Second),
		MaxEjectionPercent: u32(50), SplitExternalLocalOriginErrors: true,
		EnforcingConsecutiveGatewayFailure: u32(100),
	}
	got, err := outlierDetection(od)
	if err != nil {
		t.Fatal(err)
	}
	want := cluster.DefaultOutlierDetection()
	want.ConsecutiveGatewayFailure, want.ConsecutiveLocalOriginFailure = 3, 4
	want.Interval, want.MaxEjectionPercent, want.SplitExternalLocalOriginErrors = 5*time.Second, 50, true
	want.EnforcingGatewayFailure = 100
	if got.OnEject != nil || fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("got %+v\nwant %+v", *got, want)
	}
	if d, _ := outlierDetection(&clusterv3.OutlierDetection{}); d.EnforcingGatewayFailure != 0 || d.MaxEjectionTime != 300*time.Second {
		t.Fatalf("defaults: %+v", *d)
	}
	if _, err := outlierDetection(&clusterv3.OutlierDetection{BaseEjectionTime: durationpb.New(time.Hour)}); err == nil {
		t.Fatal("base_ejection_time above max_ejection_time accepted")
	}
}

func TestHealthCheck(t *testing.T) {
	u32 := wrapperspb.UInt32
	base := func() *corev3.HealthCheck {
		return &corev3.HealthCheck{Interval: durationpb.New(5 * time.Second), Timeout: durationpb.New(time.Second),
			HealthyThreshold: u32(2), UnhealthyThreshold: u32(3)}
	}
	h := base()
	h.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
		Path: "/healthz", ExpectedStatuses: []*typev3.Int64Range{{Start: 200, End: 201}, {Start: 204, End: 205}},
	}}
	hc, err := healthCheck("outbound|catalog.shop", []*corev3.HealthCheck{h})
	if err != nil {
		t.Fatal(err)
	}
	if hc.Authority != "" || hc.HTTP.Path != "/healthz" || hc.HTTP.Protocol != cluster.HTTP1 ||
		len(hc.HTTP.Expected) != 2 || hc.HTTP.Expected[1] != [2]int{204, 205} || hc.Interval != 5*time.Second ||
		hc.HealthyThreshold != 2 || hc.UnhealthyThreshold != 3 || hc.NoTrafficInterval != time.Minute {
		t.Fatalf("%+v %+v", hc, hc.HTTP)
	}
	g := base()
	g.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{ServiceName: "grpc.health.v1.Health"}}
	if hc, err := healthCheck("c", []*corev3.HealthCheck{g}); err != nil || hc.GRPC.Service != "grpc.health.v1.Health" || hc.Authority != "c" {
		t.Fatalf("%+v %v", hc, err)
	}
	h3 := base()
	h3.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{Path: "/", CodecClientType: typev3.CodecClientType_HTTP3}}
	for _, tc := range []struct {
		hcs []*corev3.HealthCheck
		err string
	}{
		{[]*corev3.HealthCheck{h, g}, "health_checks[1]: only one"},
		{[]*corev3.HealthCheck{h3}, "codec_client_type: HTTP3 is not supported"},
	} {
		if _, err := healthCheck("c", tc.hcs); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("err %v, want %q", err, tc.err)
		}
	}
}
