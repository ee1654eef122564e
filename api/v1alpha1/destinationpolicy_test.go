package v1alpha1

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDestinationPolicySpecDefault(t *testing.T) {
	tests := []struct {
		name string
		spec DestinationPolicySpec
		want DestinationPolicySpec
	}{
		{
			name: "empty",
			want: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: LoadBalancerRoundRobin}},
		},
		{
			name: "leastRequest by its settings",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{LeastRequest: &LeastRequest{}}},
			want: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: LoadBalancerLeastRequest, LeastRequest: &LeastRequest{ChoiceCount: 2}}},
		},
		{
			name: "leastRequest by its type",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: LoadBalancerLeastRequest}},
			want: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: LoadBalancerLeastRequest, LeastRequest: &LeastRequest{ChoiceCount: 2}}},
		},
		{
			name: "ringHash by its settings",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{RingHash: &RingHash{SourceIP: true}}},
			want: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: LoadBalancerRingHash, RingHash: &RingHash{SourceIP: true, MinimumRingSize: 1024}}},
		},
		{
			name: "both settings leave the type to the user",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{LeastRequest: &LeastRequest{ChoiceCount: 3}, RingHash: &RingHash{MinimumRingSize: 8}}},
			want: DestinationPolicySpec{LoadBalancer: LoadBalancer{LeastRequest: &LeastRequest{ChoiceCount: 3}, RingHash: &RingHash{MinimumRingSize: 8}}},
		},
		{
			name: "set values are kept",
			spec: DestinationPolicySpec{
				LoadBalancer:     LoadBalancer{Type: LoadBalancerRandom},
				OutlierDetection: &OutlierDetection{ConsecutiveGatewayErrors: 3, Interval: Duration{time.Second}, BaseEjectionTime: Duration{time.Minute}, MaxEjectionPercent: 50},
				HealthCheck: &HealthCheck{
					HTTP: &HTTPHealthCheck{Path: "/ready", ExpectedStatuses: []int32{204}}, Interval: Duration{5 * time.Second},
					Timeout: Duration{2 * time.Second}, HealthyThreshold: 1, UnhealthyThreshold: 1,
				},
			},
			want: DestinationPolicySpec{
				LoadBalancer:     LoadBalancer{Type: LoadBalancerRandom},
				OutlierDetection: &OutlierDetection{ConsecutiveGatewayErrors: 3, Interval: Duration{time.Second}, BaseEjectionTime: Duration{time.Minute}, MaxEjectionPercent: 50},
				HealthCheck: &HealthCheck{
					HTTP: &HTTPHealthCheck{Path: "/ready", ExpectedStatuses: []int32{204}}, Interval: Duration{5 * time.Second},
					Timeout: Duration{2 * time.Second}, HealthyThreshold: 1, UnhealthyThreshold: 1,
				},
			},
		},
		{
			name: "outlier detection and health check defaults",
			spec: DestinationPolicySpec{OutlierDetection: &OutlierDetection{}, HealthCheck: &HealthCheck{HTTP: &HTTPHealthCheck{Path: "/healthz"}}},
			want: DestinationPolicySpec{
				LoadBalancer: LoadBalancer{Type: LoadBalancerRoundRobin},
				OutlierDetection: &OutlierDetection{
					Consecutive5xx: 5, Interval: Duration{10 * time.Second}, BaseEjectionTime: Duration{30 * time.Second}, MaxEjectionPercent: 10,
				},
				HealthCheck: &HealthCheck{
					HTTP: &HTTPHealthCheck{Path: "/healthz", ExpectedStatuses: []int32{200}}, Interval: Duration{10 * time.Second},
					Timeout: Duration{time.Second}, HealthyThreshold: 2, UnhealthyThreshold: 3,
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Default()
			if !reflect.DeepEqual(tt.spec, tt.want) {
				t.Errorf("after Default:\n got %s\nwant %s", mustJSON(t, tt.spec), mustJSON(t, tt.want))
			}
			tt.spec.Default()
			if !reflect.DeepEqual(tt.spec, tt.want) {
				t.Errorf("Default is not idempotent: after a second call\n got %s\nwant %s", mustJSON(t, tt.spec), mustJSON(t, tt.want))
			}
		})
	}
}

func TestDestinationPolicySpecValidate(t *testing.T) {
	const (
		lb         = "spec.loadBalancer"
		rh         = lb + ".ringHash"
		hc         = "spec.healthCheck"
		od         = "spec.outlierDetection"
		cookieRule = "use an HTTP token of at most 256 characters: letters, digits and !#$%&'*+-.^_`|~"
	)
	ringHash := func(r RingHash) DestinationPolicySpec {
		return DestinationPolicySpec{LoadBalancer: LoadBalancer{RingHash: &r}}
	}
	health := func(h HealthCheck) DestinationPolicySpec {
		return DestinationPolicySpec{HealthCheck: &h}
	}
	httpCheck := &HTTPHealthCheck{Path: "/healthz"}
	tests := []struct {
		name string
		spec DestinationPolicySpec
		want []string
	}{
		{name: "empty"},
		{
			name: "everything",
			spec: DestinationPolicySpec{
				Subsets: []Subset{
					{Name: "v1", Labels: map[string]string{"version": "v1"}},
					{Name: "v2", Labels: map[string]string{"version": "v2", "weft.dev/track": "canary"}},
				},
				LoadBalancer:     LoadBalancer{RingHash: &RingHash{Cookie: &HashCookie{Name: "SESSION_ID", TTL: Duration{8760 * time.Hour}}, MinimumRingSize: 1 << 23}},
				ConnectionLimits: &ConnectionLimits{MaxConnections: ptr[int32](1), MaxPendingRequests: ptr[int32](1), MaxRequests: ptr[int32](1), MaxRetries: ptr[int32](0)},
				OutlierDetection: &OutlierDetection{
					Consecutive5xx: 0, ConsecutiveGatewayErrors: 1, ConsecutiveLocalOriginFailures: 1000,
					Interval: Duration{100 * time.Millisecond}, BaseEjectionTime: Duration{time.Hour}, MaxEjectionPercent: 100,
				},
				HealthCheck: &HealthCheck{
					GRPC: &GRPCHealthCheck{ServiceName: "shop.catalog.v1.Catalog"}, Interval: Duration{time.Second},
					Timeout: Duration{time.Second}, HealthyThreshold: 100, UnhealthyThreshold: 1,
				},
			},
		},
		{name: "leastRequest", spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{LeastRequest: &LeastRequest{ChoiceCount: 100}}}},
		{name: "random", spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: LoadBalancerRandom}}},
		{name: "ringHash on a header", spec: ringHash(RingHash{Header: "x-user-id", MinimumRingSize: 1})},
		{name: "grpc health of the whole server", spec: health(HealthCheck{GRPC: &GRPCHealthCheck{}})},
		{
			name: "subsets",
			spec: DestinationPolicySpec{Subsets: []Subset{
				{Labels: map[string]string{"version": "v1"}},
				{Name: "V2", Labels: map[string]string{"version": "v2"}},
				{Name: "v3", Labels: map[string]string{"version": "v3"}},
				{Name: "v3"},
				{Name: "v4", Labels: map[string]string{"-bad": "x", "version": "v 4"}},
			}},
			want: []string{
				`spec.subsets[0].name: is required`,
				`spec.subsets[1].name: "V2" is not a valid subset name: use ` + dnsLabelRule,
				`spec.subsets[3].name: duplicate subset name "v3": spec.subsets[2] has it too`,
				`spec.subsets[3].labels: at least one label is required: a subset without labels would be every endpoint`,
				`spec.subsets[4].labels["-bad"]: invalid label key: use ` + labelKeyRule,
				`spec.subsets[4].labels["version"]: invalid label value "v 4": use ` + labelNameRule,
			},
		},
		{
			name: "unknown type",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: "round_robin"}},
			want: []string{lb + `.type: unsupported value "round_robin": must be one of roundRobin, leastRequest, ringHash, random`},
		},
		{
			name: "both settings",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{LeastRequest: &LeastRequest{}, RingHash: &RingHash{SourceIP: true}}},
			want: []string{lb + `.type: is required: leastRequest and ringHash are both set`},
		},
		{
			name: "settings of another type",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: LoadBalancerRoundRobin, LeastRequest: &LeastRequest{}, RingHash: &RingHash{SourceIP: true}}},
			want: []string{
				lb + `.leastRequest: must not be set when type is roundRobin`,
				lb + `.ringHash: must not be set when type is roundRobin`,
			},
		},
		{
			name: "leastRequest with ringHash settings",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: LoadBalancerLeastRequest, RingHash: &RingHash{SourceIP: true}}},
			want: []string{lb + `.ringHash: must not be set when type is leastRequest`},
		},
		{
			name: "choice count",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{LeastRequest: &LeastRequest{ChoiceCount: 1}}},
			want: []string{lb + `.leastRequest.choiceCount: must be between 2 and 100, got 1`},
		},
		{
			name: "ringHash without settings",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: LoadBalancerRingHash}},
			want: []string{rh + `: is required when type is ringHash: hash on a header, a cookie or sourceIP`},
		},
		{
			name: "ringHash without a key",
			spec: ringHash(RingHash{}),
			want: []string{rh + `: set exactly one of header, cookie or sourceIP`},
		},
		{
			name: "ringHash with two keys and a bad header",
			spec: ringHash(RingHash{Header: "X-User", SourceIP: true, MinimumRingSize: 1<<23 + 1}),
			want: []string{
				rh + `: header and sourceIP are both set: set exactly one of header, cookie or sourceIP`,
				rh + `.header: "X-User" is not a valid header name: use ` + headerNameRule,
				rh + `.minimumRingSize: must be between 1 and 8388608, got 8388609`,
			},
		},
		{
			name: "cookies",
			spec: DestinationPolicySpec{LoadBalancer: LoadBalancer{Type: "ringHash", RingHash: &RingHash{Cookie: &HashCookie{TTL: Duration{-time.Second}}, MinimumRingSize: -1}}},
			want: []string{
				rh + `.cookie.name: is required`,
				rh + `.cookie.ttl: must be between 0s and 8760h, got -1s`,
				rh + `.minimumRingSize: must be between 1 and 8388608, got -1`,
			},
		},
		{
			name: "cookie name and lifetime",
			spec: ringHash(RingHash{Cookie: &HashCookie{Name: "a=b", TTL: Duration{8761 * time.Hour}}}),
			want: []string{
				rh + `.cookie.name: "a=b" is not a valid cookie name: ` + cookieRule,
				rh + `.cookie.ttl: must be between 0s and 8760h, got 8761h`,
			},
		},
		{
			name: "connection limits",
			spec: DestinationPolicySpec{ConnectionLimits: &ConnectionLimits{MaxConnections: ptr[int32](0), MaxPendingRequests: ptr[int32](-1), MaxRequests: ptr[int32](0), MaxRetries: ptr[int32](-1)}},
			want: []string{
				`spec.connectionLimits.maxConnections: must be at least 1, got 0`,
				`spec.connectionLimits.maxPendingRequests: must be at least 1, got -1`,
				`spec.connectionLimits.maxRequests: must be at least 1, got 0`,
				`spec.connectionLimits.maxRetries: must be at least 0, got -1`,
			},
		},
		{name: "no connection limits set", spec: DestinationPolicySpec{ConnectionLimits: &ConnectionLimits{}}},
		{
			name: "outlier detection",
			spec: DestinationPolicySpec{OutlierDetection: &OutlierDetection{
				Consecutive5xx: -1, ConsecutiveGatewayErrors: -2, ConsecutiveLocalOriginFailures: -3,
				Interval: Duration{99 * time.Millisecond}, BaseEjectionTime: Duration{2 * time.Hour}, MaxEjectionPercent: 101,
			}},
			want: []string{
				od + `.consecutive5xx: must be ≥ 0, got -1`,
				od + `.consecutiveGatewayErrors: must be ≥ 0, got -2`,
				od + `.consecutiveLocalOriginFailures: must be ≥ 0, got -3`,
				od + `.interval: must be between 100ms and 1h, got 99ms`,
				od + `.baseEjectionTime: must be between 1s and 1h, got 2h`,
				od + `.maxEjectionPercent: must be between 1 and 100, got 101`,
			},
		},
		{
			name: "a health check of neither kind",
			spec: health(HealthCheck{}),
			want: []string{hc + `: set exactly one of http or grpc`},
		},
		{
			name: "a health check of both kinds",
			spec: health(HealthCheck{HTTP: httpCheck, GRPC: &GRPCHealthCheck{}}),
			want: []string{hc + `: http and grpc are both set: set exactly one of http or grpc`},
		},
		{
			name: "http health check",
			spec: health(HealthCheck{HTTP: &HTTPHealthCheck{ExpectedStatuses: []int32{99, 200, 600, 200}}}),
			want: []string{
				hc + `.http.path: is required`,
				hc + `.http.expectedStatuses[0]: must be between 100 and 599, got 99`,
				hc + `.http.expectedStatuses[2]: must be between 100 and 599, got 600`,
				hc + `.http.expectedStatuses[3]: duplicate status 200: spec.healthCheck.http.expectedStatuses[1] has it too`,
			},
		},
		{name: "a probe path may hold a query", spec: health(HealthCheck{HTTP: &HTTPHealthCheck{Path: "/health?full=1"}})},
		{
			name: "probe paths",
			spec: DestinationPolicySpec{HealthCheck: &HealthCheck{HTTP: &HTTPHealthCheck{Path: "healthz"}}},
			want: []string{hc + `.http.path: "healthz" must start with '/'`},
		},
		{
			name: "probe path with a fragment",
			spec: health(HealthCheck{HTTP: &HTTPHealthCheck{Path: "/a#b"}}),
			want: []string{hc + `.http.path: "/a#b" must not hold spaces, control characters or '#'`},
		},
		{
			name: "grpc service name",
			spec: health(HealthCheck{GRPC: &GRPCHealthCheck{ServiceName: "shop..Catalog"}}),
			want: []string{hc + `.grpc.serviceName: "shop..Catalog" is not a valid gRPC service name: use a fully qualified name such as grpc.health.v1.Health (letters, digits, '_' and '.')`},
		},
		{
			name: "health check timing",
			spec: health(HealthCheck{HTTP: httpCheck, Interval: Duration{500 * time.Millisecond}, Timeout: Duration{2 * time.Minute}, HealthyThreshold: -1, UnhealthyThreshold: 101}),
			want: []string{
				hc + `.interval: must be between 1s and 1h, got 500ms`,
				hc + `.timeout: must be between 1ms and 1m, got 2m`,
				hc + `.healthyThreshold: must be between 1 and 100, got -1`,
				hc + `.unhealthyThreshold: must be between 1 and 100, got 101`,
			},
		},
		{
			name: "a probe timeout longer than the interval",
			spec: health(HealthCheck{HTTP: httpCheck, Interval: Duration{5 * time.Second}, Timeout: Duration{6 * time.Second}}),
			want: []string{hc + `.timeout: 6s is longer than interval (5s)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Default()
			assertErrors(t, tt.spec.Validate(NewPath("spec")), tt.want)
		})
	}
}

func TestIsGRPCServiceName(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{s: "grpc.health.v1.Health", want: true},
		{s: "Catalog", want: true},
		{s: "_a.b_1", want: true},
		{s: ""},
		{s: ".a"},
		{s: "a."},
		{s: "a..b"},
		{s: "a.1b"},
		{s: "1a"},
		{s: "a-b"},
		{s: "a/b"},
		{s: strings.Repeat("a", 257)},
	}
	for _, tt := range tests {
		if got := isGRPCServiceName(tt.s); got != tt.want {
			t.Errorf("isGRPCServiceName(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}
