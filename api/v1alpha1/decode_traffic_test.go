package v1alpha1_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftmesh/weft/api/decode"
	v1 "github.com/weftmesh/weft/api/v1alpha1"
)

func weight(w int32) *int32            { return &w }
func pct(p float64) *float64           { return &p }
func dur(d time.Duration) *v1.Duration { return &v1.Duration{Duration: d} }

func decodeFile(t *testing.T, name string) []*v1.Object {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode.Documents(data, name)
	if err != nil {
		t.Fatalf("Documents(%s):\n%v", name, err)
	}
	return objs
}

func meta(ns, name string) v1.ObjectMeta { return v1.ObjectMeta{Name: name, Namespace: ns} }

// defaultRetries is what Default adds to a RetryPolicy that sets only
// attempts, a per-try timeout and retryOn.
func defaultRetries(attempts int32, perTry time.Duration, on ...v1.RetryOn) *v1.RetryPolicy {
	return &v1.RetryPolicy{
		Attempts: attempts, PerTryTimeout: dur(perTry), RetryOn: on,
		Backoff: v1.RetryBackoff{BaseInterval: v1.Duration{Duration: 25 * time.Millisecond}, MaxInterval: v1.Duration{Duration: 250 * time.Millisecond}},
		Budget:  v1.RetryBudget{Percent: 20, MinRetryConcurrency: 3},
	}
}

func TestDecodeTrafficExamples(t *testing.T) {
	tests := []struct {
		file string
		want []*v1.Object
	}{
		{
			file: "route-catalog.yaml",
			want: []*v1.Object{{
				APIVersion: v1.APIVersion, Kind: "Route", Metadata: meta("default", "catalog"),
				Spec: &v1.RouteSpec{Service: "catalog", Rules: []v1.RouteRule{
					{
						Name:     "beta-users",
						Match:    []v1.RouteMatch{{Headers: []v1.HeaderMatch{{Name: "x-user-group", Exact: "beta"}}}},
						Backends: []v1.Backend{{Service: "catalog", Subset: "v2", Weight: weight(100)}},
					},
					{
						Backends: []v1.Backend{{Service: "catalog", Subset: "v1", Weight: weight(90)}, {Service: "catalog", Subset: "v2", Weight: weight(10)}},
						Timeout:  dur(2 * time.Second),
						Retries:  defaultRetries(3, 500*time.Millisecond, v1.RetryOn5xx, v1.RetryOnReset, v1.RetryOnConnectFailure),
					},
				}},
			}},
		},
		{
			file: "route-full.yaml",
			want: []*v1.Object{{
				APIVersion: v1.APIVersion, Kind: "Route", Metadata: meta("shop", "catalog"),
				Spec: &v1.RouteSpec{Service: "catalog", Rules: []v1.RouteRule{
					{
						Name: "internal",
						Match: []v1.RouteMatch{
							{
								Path:   &v1.PathMatch{Prefix: "/api"},
								Method: "GET",
								Headers: []v1.HeaderMatch{
									{Name: "x-user-group", Prefix: "staff-"}, {Name: "x-canary", Present: true}, {Name: "x-legacy-client", Absent: true},
								},
								QueryParams: []v1.QueryParamMatch{{Name: "debug", Exact: "1"}},
							},
							{
								Path:        &v1.PathMatch{Regex: "/items/[0-9]+/reviews"},
								QueryParams: []v1.QueryParamMatch{{Name: "v", Regex: "2|3"}, {Name: "trace", Present: true}},
							},
						},
						Backends: []v1.Backend{{Service: "catalog-next", Weight: weight(1)}},
						RequestHeaders: &v1.HeaderEdits{
							Set:    []v1.HeaderValue{{Name: "x-route", Value: "internal"}},
							Add:    []v1.HeaderValue{{Name: "x-seen-by", Value: "weft"}},
							Remove: []string{"x-debug-token"},
						},
					},
					{
						Name:     "health",
						Match:    []v1.RouteMatch{{Path: &v1.PathMatch{Exact: "/healthz"}}},
						Backends: []v1.Backend{{Service: "catalog", Subset: "v1", Weight: weight(1)}},
					},
					{
						Name:     "default",
						Backends: []v1.Backend{{Service: "catalog", Subset: "v1", Weight: weight(95)}, {Service: "catalog", Subset: "v2", Weight: weight(5)}},
						Timeout:  dur(3 * time.Second),
						Retries: &v1.RetryPolicy{
							Attempts: 2, PerTryTimeout: dur(time.Second),
							RetryOn:              []v1.RetryOn{v1.RetryOnGatewayError, v1.RetryOnRetriableStatusCodes, v1.RetryOnUnavailable},
							RetriableStatusCodes: []int32{409},
							Backoff:              v1.RetryBackoff{BaseInterval: v1.Duration{Duration: 50 * time.Millisecond}, MaxInterval: v1.Duration{Duration: time.Second}},
							Budget:               v1.RetryBudget{Percent: 25, MinRetryConcurrency: 5},
						},
						Fault: &v1.Fault{
							Delay: &v1.FaultDelay{Fixed: v1.Duration{Duration: 200 * time.Millisecond}, Percentage: pct(0.1)},
							Abort: &v1.FaultAbort{HTTPStatus: 503, Percentage: pct(0.01)},
						},
						Mirror: &v1.Mirror{Service: "catalog-next", Percentage: pct(10)},
						ResponseHeaders: &v1.HeaderEdits{
							Set:    []v1.HeaderValue{{Name: "cache-control", Value: "no-store"}},
							Remove: []string{"server"},
						},
					},
				}},
			}},
		},
		{
			file: "route-tcp.yaml",
			want: []*v1.Object{
				{
					APIVersion: v1.APIVersion, Kind: "Service", Metadata: meta("default", "db"),
					Spec: &v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 5432, Protocol: v1.ProtocolTCP}}},
				},
				{
					APIVersion: v1.APIVersion, Kind: "Service", Metadata: meta("default", "db-next"),
					Spec: &v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 5432, Protocol: v1.ProtocolTCP}}},
				},
				{
					APIVersion: v1.APIVersion, Kind: "Route", Metadata: meta("default", "db"),
					Spec: &v1.RouteSpec{Service: "db", Rules: []v1.RouteRule{{
						Backends: []v1.Backend{{Service: "db", Weight: weight(9)}, {Service: "db-next", Weight: weight(1)}},
					}}},
				},
			},
		},
		{
			file: "destinationpolicy.yaml",
			want: []*v1.Object{{
				APIVersion: v1.APIVersion, Kind: "DestinationPolicy", Metadata: meta("shop", "catalog"),
				Spec: &v1.DestinationPolicySpec{
					Subsets: []v1.Subset{
						{Name: "v1", Labels: map[string]string{"version": "v1"}},
						{Name: "v2", Labels: map[string]string{"version": "v2"}},
					},
					LoadBalancer: v1.LoadBalancer{Type: v1.LoadBalancerRingHash, RingHash: &v1.RingHash{
						Cookie:          &v1.HashCookie{Name: "catalog-session", TTL: v1.Duration{Duration: time.Hour}},
						MinimumRingSize: 4096,
					}},
					ConnectionLimits: &v1.ConnectionLimits{MaxConnections: weight(100), MaxPendingRequests: weight(50), MaxRequests: weight(200), MaxRetries: weight(3)},
					OutlierDetection: &v1.OutlierDetection{
						Consecutive5xx: 5, ConsecutiveGatewayErrors: 3, ConsecutiveLocalOriginFailures: 5,
						Interval: v1.Duration{Duration: 5 * time.Second}, BaseEjectionTime: v1.Duration{Duration: 30 * time.Second}, MaxEjectionPercent: 50,
					},
					HealthCheck: &v1.HealthCheck{
						HTTP:     &v1.HTTPHealthCheck{Path: "/healthz", ExpectedStatuses: []int32{200, 204}},
						Interval: v1.Duration{Duration: 5 * time.Second}, Timeout: v1.Duration{Duration: time.Second},
						HealthyThreshold: 2, UnhealthyThreshold: 3,
					},
				},
			}},
		},
		{
			file: "destinationpolicy-defaults.json",
			want: []*v1.Object{{
				APIVersion: v1.APIVersion, Kind: "DestinationPolicy", Metadata: meta("default", "orders"),
				Spec: &v1.DestinationPolicySpec{
					LoadBalancer: v1.LoadBalancer{Type: v1.LoadBalancerLeastRequest, LeastRequest: &v1.LeastRequest{ChoiceCount: 2}},
					OutlierDetection: &v1.OutlierDetection{
						Consecutive5xx: 5, Interval: v1.Duration{Duration: 10 * time.Second},
						BaseEjectionTime: v1.Duration{Duration: 30 * time.Second}, MaxEjectionPercent: 10,
					},
					HealthCheck: &v1.HealthCheck{
						GRPC:     &v1.GRPCHealthCheck{ServiceName: "shop.orders.v1.Orders"},
						Interval: v1.Duration{Duration: 10 * time.Second}, Timeout: v1.Duration{Duration: time.Second},
						HealthyThreshold: 2, UnhealthyThreshold: 3,
					},
				},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := decodeFile(t, tt.file)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Documents(%s) mismatch (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

// TestTrafficExamplesReferenceEachOther applies the examples together with
// the services they name, as the API server would check them.
func TestTrafficExamplesReferenceEachOther(t *testing.T) {
	services, err := decode.Documents([]byte(`apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog, namespace: shop}
spec: {ports: [{port: 8080}]}
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: catalog-next, namespace: shop}
spec: {ports: [{port: 8080}]}
`), "services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs := append(services, decodeFile(t, "route-full.yaml")...)
	objs = append(objs, decodeFile(t, "destinationpolicy.yaml")...)
	objs = append(objs, decodeFile(t, "route-tcp.yaml")...)
	if errs := v1.CheckReferences(objs, nil, nil); len(errs) > 0 {
		t.Errorf("CheckReferences:\n%v", errs)
	}
	// Without its policy, route-full.yaml names subsets nobody defines.
	errs := v1.CheckReferences(objs[:3], nil, nil)
	want := `Route shop/catalog: spec.rules[1].backends[0].subset: subset "v1" is not defined: service "catalog" has no DestinationPolicy
Route shop/catalog: spec.rules[2].backends[0].subset: subset "v1" is not defined: service "catalog" has no DestinationPolicy
Route shop/catalog: spec.rules[2].backends[1].subset: subset "v2" is not defined: service "catalog" has no DestinationPolicy`
	if got := errs.Error(); got != want {
		t.Errorf("CheckReferences without the policy:\n%s\nwant\n%s", got, want)
	}
}

func TestDecodeTrafficErrors(t *testing.T) {
	const route = `apiVersion: weft.dev/v1alpha1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
`
	const policy = `apiVersion: weft.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: catalog}
spec:
`
	const (
		r = "app.yaml: document 1 (Route default/catalog): "
		p = "app.yaml: document 1 (DestinationPolicy default/catalog): "
	)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "a negative weight",
			in: route + `  - match: [{method: GET}]
    backends: [{subset: v1}]
  - backends:
    - subset: v1
      weight: -5
`,
			want: r + "spec.rules[1].backends[0].weight: must be ≥ 0 (line 11)",
		},
		{
			name: "a misspelt field",
			in: route + `  - backends: [{}]
    retries: {attempts: 2, retryon: [5xx]}
`,
			want: r + `spec.rules[0].retries.retryon: unknown field; did you mean "retryOn"? (line 8)`,
		},
		{
			name: "values of the wrong type",
			in: route + `  - backends: [{weight: 10%}]
    fault: {delay: {fixed: 1s, percentage: ten}}
    timeout: 2 seconds
`,
			// The weight that could not be read counts as 0 in the rule's sum.
			want: r + `spec.rules[0].backends[0].weight: expected an integer, got string "10%" (line 7)
` + r + `spec.rules[0].backends: every weight is 0: at least one backend needs a positive weight (line 7)
` + r + `spec.rules[0].fault.delay.percentage: expected a number, got string "ten" (line 8)
` + r + `spec.rules[0].timeout: invalid duration "2 seconds" (want for example "30s", "5m", "24h") (line 9)`,
		},
		{
			name: "a shadowed rule and a bad regex",
			in: route + `  - backends: [{}]
  - match:
    - path: {regex: "/a[b"}
    backends: [{}]
`,
			want: r + `spec.rules[1]: is shadowed by spec.rules[0], which has no match and so takes every request: put the rule without match last (line 8)
` + r + "spec.rules[1].match[0].path.regex: \"/a[b\" is not a valid RE2 regular expression: missing closing ]: `[b` (line 9)",
		},
		{
			name: "a missing rules list",
			in:   route[:len(route)-len("  rules:\n")],
			want: r + `spec.rules: at least one rule is required (line 4)`,
		},
		{
			name: "a load balancer type in another spelling",
			in: policy + `  loadBalancer:
    type: ROUND_ROBIN
  subsets:
  - {name: v1, labels: {}}
`,
			want: p + `spec.loadBalancer.type: unsupported value "ROUND_ROBIN": must be one of roundRobin, leastRequest, ringHash, random (line 6)
` + p + `spec.subsets[0].labels: at least one label is required: a subset without labels would be every endpoint (line 8)`,
		},
		{
			name: "a health check without a kind",
			in: policy + `  healthCheck:
    interval: 30s
    timeout: 1m
`,
			want: p + `spec.healthCheck: set exactly one of http or grpc (line 5)
` + p + `spec.healthCheck.timeout: 1m is longer than interval (30s) (line 7)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := decode.Documents([]byte(tt.in), "app.yaml")
			if err == nil {
				t.Fatalf("Documents accepted the input: %s", mustJSON(t, objs))
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Documents error:\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// awkwardSeeds are valid objects whose numbers and strings are written
// otherwise in JSON than in YAML, for the JSON round trip to get wrong.
var awkwardSeeds = []string{
	`{apiVersion: weft.dev/v1alpha1, kind: Route, metadata: {name: a}, spec: {service: a, rules: [{
  backends: [{weight: 0x10}, {subset: b, weight: +0}],
  fault: {delay: {fixed: 1h, percentage: 1e-7}, abort: {grpcStatus: data-loss, percentage: -0.0}},
  mirror: {subset: c, percentage: 99.99999999999999},
  retries: {attempts: 1, budget: {percent: 5e-324}, backoff: {baseInterval: 1.5ms}},
  requestHeaders: {set: [{name: x, value: "\ta\u00e9\t"}]}}]}}`,
	`{apiVersion: weft.dev/v1alpha1, kind: DestinationPolicy, metadata: {name: a}, spec: {
  loadBalancer: {ringHash: {cookie: {name: "~", ttl: 0s}}},
  subsets: [{name: a, labels: {"weft.dev/v": ""}}], connectionLimits: {maxRetries: 0}}}`,
}

func TestAwkwardSeedsAreValid(t *testing.T) {
	for i, seed := range awkwardSeeds {
		if _, err := decode.Document([]byte(seed), "seed.yaml"); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
