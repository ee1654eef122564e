package v1alpha1

import (
	"testing"
	"time"
)

func routeObj(ns, name string, spec *RouteSpec) *Object {
	o := &Object{APIVersion: APIVersion, Kind: "Route", Metadata: ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	o.Default()
	return o
}

func serviceObj(ns, name string, proto Protocol) *Object {
	o := &Object{
		APIVersion: APIVersion, Kind: "Service", Metadata: ObjectMeta{Name: name, Namespace: ns},
		Spec: &ServiceSpec{Ports: []ServicePort{{Port: 8080, Protocol: proto}}},
	}
	o.Default()
	return o
}

func policyObj(ns, service string, spec *DestinationPolicySpec) *Object {
	o := &Object{APIVersion: APIVersion, Kind: "DestinationPolicy", Metadata: ObjectMeta{Name: service, Namespace: ns}, Spec: spec}
	o.Default()
	return o
}

func subsets(names ...string) *DestinationPolicySpec {
	s := &DestinationPolicySpec{}
	for _, n := range names {
		s.Subsets = append(s.Subsets, Subset{Name: n, Labels: map[string]string{"version": n}})
	}
	return s
}

// split is a Route for service with one catch-all rule over backends.
func split(service string, backends ...Backend) *RouteSpec {
	return &RouteSpec{Service: service, Rules: []RouteRule{{Backends: backends}}}
}

func TestCheckReferences(t *testing.T) {
	stored := []*Object{
		serviceObj("default", "catalog", ProtocolHTTP),
		serviceObj("default", "catalog-next", ProtocolGRPC),
		serviceObj("default", "db", ProtocolTCP),
		serviceObj("default", "db-next", ProtocolTCP),
		serviceObj("default", "bare", ""),
		policyObj("default", "catalog", subsets("v1", "v2")),
		policyObj("default", "db", subsets()),
		// A policy whose service is not known yet.
		policyObj("default", "reviews-next", subsets("v1")),
	}
	// A Service with no ports, as a store might hold from an older version.
	stored[4].Spec.(*ServiceSpec).Ports = nil
	byKey := make(map[objectKey]*Object)
	for _, o := range stored {
		byKey[keyOf(o)] = o
	}
	known := func(kind, namespace, name string) (*Object, bool) {
		o, ok := byKey[objectKey{kind: kind, namespace: namespace, name: name}]
		return o, ok
	}
	workloads := func(namespace, service string) bool {
		return namespace == "default" && (service == "reviews" || service == "db")
	}
	everyL7 := RouteRule{
		Match:           []RouteMatch{{Method: "GET"}},
		Backends:        []Backend{{}},
		Timeout:         dur(time.Second),
		Retries:         &RetryPolicy{Attempts: 2},
		Fault:           &Fault{Abort: &FaultAbort{HTTPStatus: 503}},
		Mirror:          &Mirror{Service: "ghost"},
		RequestHeaders:  &HeaderEdits{Remove: []string{"x-a"}},
		ResponseHeaders: &HeaderEdits{Remove: []string{"x-b"}},
	}
	const unknownRule = `namespace "default" has no Service of that name and no workload of it is registered`
	tests := []struct {
		name      string
		objs      []*Object
		nilLookup bool // pass nil for known and workloads
		want      []string
	}{
		{name: "nothing applied"},
		{
			name: "the issue's example",
			objs: []*Object{routeObj("default", "catalog", catalogRoute())},
		},
		{
			name: "a Route of a service nobody knows",
			objs: []*Object{routeObj("default", "ghost", split("ghost", Backend{Subset: "v1"}, Backend{Service: "catalog", Subset: "v9"}))},
			want: []string{
				`Route default/ghost: spec.service: unknown service "ghost": ` + unknownRule,
				`Route default/ghost: spec.rules[0].backends[1].subset: subset "v9" is not defined by DestinationPolicy default/catalog, whose subsets are v1, v2`,
			},
		},
		{
			name: "a service known by its workloads",
			objs: []*Object{routeObj("default", "reviews", split("reviews", Backend{Weight: ptr[int32](9)}, Backend{Subset: "v2"}))},
			want: []string{`Route default/reviews: spec.rules[0].backends[1].subset: subset "v2" is not defined: service "reviews" has no DestinationPolicy`},
		},
		{
			name: "unknown backend and mirror services",
			objs: []*Object{routeObj("default", "catalog", &RouteSpec{Service: "catalog", Rules: []RouteRule{{
				Backends: []Backend{{}, {Service: "ghost", Subset: "v1"}},
				Mirror:   &Mirror{Service: "phantom"},
			}}})},
			want: []string{
				`Route default/catalog: spec.rules[0].backends[1].service: unknown service "ghost": ` + unknownRule,
				`Route default/catalog: spec.rules[0].mirror.service: unknown service "phantom": ` + unknownRule,
			},
		},
		{
			name: "subsets the policy does not define",
			objs: []*Object{routeObj("default", "catalog", &RouteSpec{Service: "catalog", Rules: []RouteRule{{
				Backends: []Backend{{Subset: "v1"}, {Subset: "v3"}},
				Mirror:   &Mirror{Subset: "shadow"},
			}}})},
			want: []string{
				`Route default/catalog: spec.rules[0].backends[1].subset: subset "v3" is not defined by DestinationPolicy default/catalog, whose subsets are v1, v2`,
				`Route default/catalog: spec.rules[0].mirror.subset: subset "shadow" is not defined by DestinationPolicy default/catalog, whose subsets are v1, v2`,
			},
		},
		{
			name: "a policy without subsets",
			objs: []*Object{routeObj("default", "db", split("db", Backend{Subset: "v1"}))},
			want: []string{`Route default/db: spec.rules[0].backends[0].subset: subset "v1" is not defined by DestinationPolicy default/db, which defines no subsets`},
		},
		{
			name: "objects applied together replace the stored ones",
			objs: []*Object{
				routeObj("default", "catalog", split("catalog", Backend{Subset: "v1"}, Backend{Subset: "v3"}, Backend{Service: "orders"})),
				policyObj("default", "catalog", subsets("v3")),
				serviceObj("default", "orders", ProtocolHTTP),
			},
			want: []string{`Route default/catalog: spec.rules[0].backends[0].subset: subset "v1" is not defined by DestinationPolicy default/catalog, whose subsets are v3`},
		},
		{
			name: "a Service applied as tcp turns HTTP features into errors",
			objs: []*Object{
				serviceObj("default", "catalog", ProtocolTCP),
				routeObj("default", "catalog", catalogRoute()),
			},
			want: []string{
				`Route default/catalog: spec.rules[0].match: service "catalog" speaks tcp: a Route for it may only split connections between backends`,
				`Route default/catalog: spec.rules[1].timeout: service "catalog" speaks tcp: a Route for it may only split connections between backends`,
				`Route default/catalog: spec.rules[1].retries: service "catalog" speaks tcp: a Route for it may only split connections between backends`,
			},
		},
		{
			name: "a tcp Route that only splits",
			objs: []*Object{routeObj("default", "db", split("db", Backend{Weight: ptr[int32](90)}, Backend{Service: "db-next", Weight: ptr[int32](10)}))},
		},
		{
			name: "every HTTP feature on a tcp service",
			objs: []*Object{routeObj("default", "db", &RouteSpec{Service: "db", Rules: []RouteRule{everyL7}})},
			want: []string{
				`Route default/db: spec.rules[0].match: service "db" speaks tcp: a Route for it may only split connections between backends`,
				`Route default/db: spec.rules[0].timeout: service "db" speaks tcp: a Route for it may only split connections between backends`,
				`Route default/db: spec.rules[0].retries: service "db" speaks tcp: a Route for it may only split connections between backends`,
				`Route default/db: spec.rules[0].fault: service "db" speaks tcp: a Route for it may only split connections between backends`,
				`Route default/db: spec.rules[0].mirror: service "db" speaks tcp: a Route for it may only split connections between backends`,
				`Route default/db: spec.rules[0].requestHeaders: service "db" speaks tcp: a Route for it may only split connections between backends`,
				`Route default/db: spec.rules[0].responseHeaders: service "db" speaks tcp: a Route for it may only split connections between backends`,
			},
		},
		{
			name: "tcp and HTTP backends do not mix",
			objs: []*Object{
				routeObj("default", "db", split("db", Backend{}, Backend{Service: "catalog"}, Backend{Service: "reviews"})),
				routeObj("default", "catalog", split("catalog", Backend{}, Backend{Service: "db-next"}, Backend{Service: "catalog-next"}, Backend{Service: "bare"})),
			},
			want: []string{
				`Route default/db: spec.rules[0].backends[1].service: service "catalog" speaks http, but the Route's service "db" speaks tcp: traffic cannot cross between tcp and HTTP`,
				`Route default/db: spec.rules[0].backends[2].service: service "reviews" speaks http, but the Route's service "db" speaks tcp: traffic cannot cross between tcp and HTTP`,
				`Route default/catalog: spec.rules[0].backends[1].service: service "db-next" speaks tcp, but the Route's service "catalog" speaks http: traffic cannot cross between tcp and HTTP`,
			},
		},
		{
			name: "services are looked up in the Route's namespace",
			objs: []*Object{routeObj("shop", "catalog", split("catalog", Backend{Subset: "v1"}))},
			want: []string{`Route shop/catalog: spec.service: unknown service "catalog": namespace "shop" has no Service of that name and no workload of it is registered`},
		},
		{
			name: "the subsets of unknown services are not looked up",
			objs: []*Object{routeObj("", "ghost", split("ghost", Backend{Service: "phantom", Subset: "v1"}))},
			want: []string{
				`Route default/ghost: spec.service: unknown service "ghost": ` + unknownRule,
				`Route default/ghost: spec.rules[0].backends[0].service: unknown service "phantom": ` + unknownRule,
			},
		},
		{
			name: "policies of tcp services",
			objs: []*Object{
				policyObj("default", "db", &DestinationPolicySpec{
					LoadBalancer: LoadBalancer{RingHash: &RingHash{Header: "x-user"}},
					HealthCheck:  &HealthCheck{GRPC: &GRPCHealthCheck{}},
				}),
				policyObj("default", "db-next", &DestinationPolicySpec{LoadBalancer: LoadBalancer{RingHash: &RingHash{Cookie: &HashCookie{Name: "s"}}}}),
				policyObj("default", "catalog", &DestinationPolicySpec{
					LoadBalancer: LoadBalancer{RingHash: &RingHash{Header: "x-user"}},
					HealthCheck:  &HealthCheck{HTTP: &HTTPHealthCheck{Path: "/"}},
				}),
				policyObj("default", "ghost", &DestinationPolicySpec{HealthCheck: &HealthCheck{GRPC: &GRPCHealthCheck{}}}),
			},
			want: []string{
				`DestinationPolicy default/db: spec.healthCheck: service "db" speaks tcp: health checks are HTTP or gRPC requests`,
				`DestinationPolicy default/db: spec.loadBalancer.ringHash.header: service "db" speaks tcp: a connection has no headers; hash on sourceIP`,
				`DestinationPolicy default/db-next: spec.loadBalancer.ringHash.cookie: service "db-next" speaks tcp: a connection has no cookies; hash on sourceIP`,
			},
		},
		{
			name: "a tcp policy hashing on the source IP",
			objs: []*Object{policyObj("default", "db", &DestinationPolicySpec{LoadBalancer: LoadBalancer{RingHash: &RingHash{SourceIP: true}}})},
		},
		{
			name:      "no store and no workloads",
			nilLookup: true,
			objs: []*Object{
				serviceObj("default", "catalog", ProtocolHTTP),
				policyObj("default", "catalog", subsets("v1", "v2")),
				routeObj("default", "catalog", catalogRoute()),
				routeObj("default", "db", split("db")),
			},
			want: []string{`Route default/db: spec.service: unknown service "db": ` + unknownRule},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, w := known, workloads
			if tt.nilLookup {
				k, w = nil, nil
			}
			assertErrors(t, CheckReferences(tt.objs, k, w), tt.want)
		})
	}
}

func TestCheckReferencesIgnoresNilLookups(t *testing.T) {
	known := func(kind, namespace, name string) (*Object, bool) { return nil, true }
	objs := []*Object{routeObj("default", "catalog", catalogRoute())}
	assertErrors(t, CheckReferences(objs, known, nil), []string{
		`Route default/catalog: spec.service: unknown service "catalog": namespace "default" has no Service of that name and no workload of it is registered`,
	})
}
