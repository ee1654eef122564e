package v1alpha1

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func dur(d time.Duration) *Duration { return &Duration{d} }

func TestRouteSpecDefault(t *testing.T) {
	tests := []struct {
		name string
		spec RouteSpec
		want RouteSpec
	}{
		{
			name: "backends get the Route's service and weight 1",
			spec: RouteSpec{Service: "catalog", Rules: []RouteRule{{Backends: []Backend{
				{}, {Subset: "v2", Weight: ptr[int32](0)}, {Service: "other", Weight: ptr[int32](7)},
			}}}},
			want: RouteSpec{Service: "catalog", Rules: []RouteRule{{Backends: []Backend{
				{Service: "catalog", Weight: ptr[int32](1)},
				{Service: "catalog", Subset: "v2", Weight: ptr[int32](0)},
				{Service: "other", Weight: ptr[int32](7)},
			}}}},
		},
		{
			name: "retries, faults and mirrors",
			spec: RouteSpec{Service: "catalog", Rules: []RouteRule{{
				Retries: &RetryPolicy{Attempts: 3},
				Fault:   &Fault{Delay: &FaultDelay{Fixed: Duration{time.Second}}, Abort: &FaultAbort{HTTPStatus: 503, Percentage: ptr(0.5)}},
				Mirror:  &Mirror{Subset: "v3"},
			}}},
			want: RouteSpec{Service: "catalog", Rules: []RouteRule{{
				Retries: &RetryPolicy{
					Attempts: 3,
					RetryOn:  []RetryOn{RetryOnConnectFailure, RetryOnReset, RetryOnGatewayError},
					Backoff:  RetryBackoff{BaseInterval: Duration{25 * time.Millisecond}, MaxInterval: Duration{250 * time.Millisecond}},
					Budget:   RetryBudget{Percent: 20, MinRetryConcurrency: 3},
				},
				Fault: &Fault{
					Delay: &FaultDelay{Fixed: Duration{time.Second}, Percentage: ptr(100.0)},
					Abort: &FaultAbort{HTTPStatus: 503, Percentage: ptr(0.5)},
				},
				Mirror: &Mirror{Service: "catalog", Subset: "v3", Percentage: ptr(100.0)},
			}}},
		},
		{
			name: "set retry fields are kept",
			spec: RouteSpec{Rules: []RouteRule{{Retries: &RetryPolicy{
				RetryOn: []RetryOn{RetryOn5xx},
				Backoff: RetryBackoff{BaseInterval: Duration{time.Second}, MaxInterval: Duration{2 * time.Second}},
				Budget:  RetryBudget{Percent: 0.5, MinRetryConcurrency: 1},
			}}}},
			want: RouteSpec{Rules: []RouteRule{{Retries: &RetryPolicy{
				RetryOn: []RetryOn{RetryOn5xx},
				Backoff: RetryBackoff{BaseInterval: Duration{time.Second}, MaxInterval: Duration{2 * time.Second}},
				Budget:  RetryBudget{Percent: 0.5, MinRetryConcurrency: 1},
			}}}},
		},
		{
			name: "the backoff maximum defaults to ten times the base, capped at 5m",
			spec: RouteSpec{Rules: []RouteRule{
				{Retries: &RetryPolicy{Backoff: RetryBackoff{BaseInterval: Duration{time.Minute}}}},
				{Retries: &RetryPolicy{Backoff: RetryBackoff{BaseInterval: Duration{-time.Second}}}},
			}},
			want: RouteSpec{Rules: []RouteRule{
				{Retries: &RetryPolicy{
					RetryOn: defaultRetryOn,
					Backoff: RetryBackoff{BaseInterval: Duration{time.Minute}, MaxInterval: Duration{5 * time.Minute}},
					Budget:  RetryBudget{Percent: 20, MinRetryConcurrency: 3},
				}},
				{Retries: &RetryPolicy{
					RetryOn: defaultRetryOn,
					Backoff: RetryBackoff{BaseInterval: Duration{-time.Second}, MaxInterval: Duration{5 * time.Minute}},
					Budget:  RetryBudget{Percent: 20, MinRetryConcurrency: 3},
				}},
			}},
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

func TestDefaultRetryOnIsNotShared(t *testing.T) {
	var a, b RetryPolicy
	a.defaults()
	b.defaults()
	a.RetryOn[0] = RetryOn5xx
	if b.RetryOn[0] != RetryOnConnectFailure || defaultRetryOn[0] != RetryOnConnectFailure {
		t.Error("changing one policy's defaulted retryOn changed another's")
	}
}

// catalogRoute is the Route of the example, which later cases vary.
func catalogRoute() *RouteSpec {
	return &RouteSpec{
		Service: "catalog",
		Rules: []RouteRule{
			{
				Name:     "beta-users",
				Match:    []RouteMatch{{Headers: []HeaderMatch{{Name: "x-user-group", Exact: "beta"}}}},
				Backends: []Backend{{Subset: "v2", Weight: ptr[int32](100)}},
			},
			{
				Backends: []Backend{{Subset: "v1", Weight: ptr[int32](90)}, {Subset: "v2", Weight: ptr[int32](10)}},
				Timeout:  dur(2 * time.Second),
				Retries: &RetryPolicy{
					Attempts: 3, PerTryTimeout: dur(500 * time.Millisecond),
					RetryOn: []RetryOn{RetryOn5xx, RetryOnReset, RetryOnConnectFailure},
				},
			},
		},
	}
}

func TestRouteSpecValidate(t *testing.T) {
	const (
		r0, r1    = "spec.rules[0]", "spec.rules[1]"
		m0        = r0 + ".match[0]"
		retries   = r1 + ".retries"
		pathRule  = "set exactly one of exact, prefix or regex"
		hdrChoice = "set exactly one of exact, prefix, regex, present or absent"
	)
	// one returns a Route whose first rule is r, followed by a catch-all.
	one := func(r RouteRule) *RouteSpec {
		s := catalogRoute()
		s.Rules[0] = r
		return s
	}
	matching := func(m ...RouteMatch) *RouteSpec {
		return one(RouteRule{Match: m, Backends: []Backend{{}}})
	}
	withRetries := func(p RetryPolicy) *RouteSpec {
		s := catalogRoute()
		s.Rules[1].Retries = &p
		return s
	}
	withFault := func(f Fault) *RouteSpec {
		s := catalogRoute()
		s.Rules[1].Fault = &f
		return s
	}
	withHeaders := func(req, resp *HeaderEdits) *RouteSpec {
		s := catalogRoute()
		s.Rules[1].RequestHeaders, s.Rules[1].ResponseHeaders = req, resp
		return s
	}
	tests := []struct {
		name string
		spec *RouteSpec
		want []string
	}{
		{name: "the issue's example", spec: catalogRoute()},
		{
			name: "a backend only: the shape of a tcp Route",
			spec: &RouteSpec{Service: "db", Rules: []RouteRule{{Backends: []Backend{{Weight: ptr[int32](3)}, {Service: "db-next", Weight: ptr[int32](0)}}}}},
		},
		{name: "no catch-all rule", spec: &RouteSpec{Service: "a", Rules: []RouteRule{{Match: []RouteMatch{{Method: "GET"}}, Backends: []Backend{{}}}}}},
		{
			name: "every feature",
			spec: one(RouteRule{
				Name: "all",
				Match: []RouteMatch{
					{Path: &PathMatch{Exact: "/healthz"}},
					{Path: &PathMatch{Prefix: "/"}},
					{
						Path:   &PathMatch{Regex: `/items/[0-9]+(/reviews)?`},
						Method: "PURGE",
						Headers: []HeaderMatch{
							{Name: "x-a", Prefix: "Bearer "}, {Name: "x-b", Regex: `v[12]\..*`},
							{Name: "x-c", Present: true}, {Name: "x-d", Absent: true}, {Name: "x-e", Exact: "a\tb"},
						},
						QueryParams: []QueryParamMatch{{Name: "debug", Present: true}, {Name: "v", Exact: "2"}, {Name: "id[]", Regex: `\d+`}},
					},
				},
				Backends: []Backend{{Subset: "v1", Weight: ptr[int32](1_000_000)}, {Service: "catalog-next", Subset: "v1", Weight: ptr[int32](0)}},
				Timeout:  dur(24 * time.Hour),
				Retries: &RetryPolicy{
					Attempts: 10, PerTryTimeout: dur(24 * time.Hour),
					RetryOn:              []RetryOn{RetryOnRetriableStatusCodes, RetryOnCancelled, RetryOnDeadlineExceeded, RetryOnInternal, RetryOnResourceExhausted, RetryOnUnavailable},
					RetriableStatusCodes: []int32{400, 409, 599},
					Backoff:              RetryBackoff{BaseInterval: Duration{time.Millisecond}, MaxInterval: Duration{time.Millisecond}},
					Budget:               RetryBudget{Percent: 100, MinRetryConcurrency: 1},
					RetryNonIdempotent:   true,
				},
				Fault: &Fault{
					Delay: &FaultDelay{Fixed: Duration{time.Hour}, Percentage: ptr(0.1)},
					Abort: &FaultAbort{GRPCStatus: GRPCUnauthenticated, Percentage: ptr(0.0)},
				},
				Mirror:          &Mirror{Service: "catalog", Subset: "shadow", Percentage: ptr(100.0)},
				RequestHeaders:  &HeaderEdits{Set: []HeaderValue{{Name: "x-env", Value: "prod"}}, Add: []HeaderValue{{Name: "via", Value: "a"}, {Name: "via", Value: "b"}}, Remove: []string{"x-debug"}},
				ResponseHeaders: &HeaderEdits{Remove: []string{"server"}},
			}),
		},
		{
			name: "no service is reported once",
			spec: &RouteSpec{Rules: []RouteRule{{Backends: []Backend{{}, {Service: "a"}}, Mirror: &Mirror{}}}},
			want: []string{`spec.service: is required`},
		},
		{
			name: "bad service names",
			spec: &RouteSpec{Service: "Catalog", Rules: []RouteRule{{Backends: []Backend{{Service: "catalog.default"}}}}},
			want: []string{
				`spec.service: "Catalog" is not a valid service name: use ` + dnsLabelRule,
				`spec.rules[0].backends[0].service: "catalog.default" is not a valid service name: use ` + dnsLabelRule,
			},
		},
		{name: "no rules", spec: &RouteSpec{Service: "a"}, want: []string{`spec.rules: at least one rule is required`}},
		{
			name: "rules after a catch-all are shadowed",
			spec: func() *RouteSpec {
				s := catalogRoute()
				s.Rules = []RouteRule{s.Rules[1], s.Rules[0], s.Rules[1]}
				return s
			}(),
			want: []string{
				`spec.rules[1]: is shadowed by spec.rules[0], which has no match and so takes every request: put the rule without match last`,
				`spec.rules[2]: is shadowed by spec.rules[0], which has no match and so takes every request: put the rule without match last`,
			},
		},
		{
			name: "rule names",
			spec: func() *RouteSpec {
				s := catalogRoute()
				s.Rules[1].Name = "beta-users"
				s.Rules = append([]RouteRule{{Name: "Beta_Users", Match: s.Rules[0].Match, Backends: []Backend{{}}}}, s.Rules...)
				return s
			}(),
			want: []string{
				`spec.rules[0].name: "Beta_Users" is not a valid rule name: use ` + dnsLabelRule,
				`spec.rules[2].name: duplicate rule name "beta-users": spec.rules[1] has it too`,
			},
		},
		{
			name: "an empty match",
			spec: matching(RouteMatch{}),
			want: []string{m0 + `: is empty: set path, method, headers or queryParams, or leave match out to take every request`},
		},
		{
			name: "path matchers: none, two, three",
			spec: matching(
				RouteMatch{Path: &PathMatch{}},
				RouteMatch{Path: &PathMatch{Exact: "/a", Prefix: "/a"}},
				RouteMatch{Path: &PathMatch{Exact: "/a", Prefix: "/a", Regex: "/a"}},
			),
			want: []string{
				r0 + `.match[0].path: ` + pathRule,
				r0 + `.match[1].path: exact and prefix are both set: ` + pathRule,
				r0 + `.match[2].path: exact, prefix and regex are all set: ` + pathRule,
			},
		},
		{
			name: "path values",
			spec: matching(
				RouteMatch{Path: &PathMatch{Exact: "api"}},
				RouteMatch{Path: &PathMatch{Exact: "/a?b=c"}},
				RouteMatch{Path: &PathMatch{Prefix: "/a b"}},
				RouteMatch{Path: &PathMatch{Prefix: "/api/"}},
				RouteMatch{Path: &PathMatch{Prefix: "/#"}},
			),
			want: []string{
				r0 + `.match[0].path.exact: "api" must start with '/'`,
				r0 + `.match[1].path.exact: "/a?b=c" must not hold '?' or '#': match the query with queryParams`,
				r0 + `.match[2].path.prefix: "/a b" must not hold spaces or control characters: percent-encode them as the request does`,
				r0 + `.match[3].path.prefix: "/api/" must not end with '/': "/api" already matches every path below it`,
				r0 + `.match[4].path.prefix: "/#" must not hold '?' or '#': match the query with queryParams`,
			},
		},
		{
			name: "regexes are RE2",
			spec: matching(
				RouteMatch{Path: &PathMatch{Regex: "/a(b"}},
				RouteMatch{Path: &PathMatch{Regex: `/(a)\1`}},
				RouteMatch{Headers: []HeaderMatch{{Name: "x", Regex: "(?=x)"}}},
				RouteMatch{QueryParams: []QueryParamMatch{{Name: "q", Regex: "a{2000}"}}},
				RouteMatch{Path: &PathMatch{Regex: "/" + strings.Repeat("a", 1024)}},
			),
			want: []string{
				r0 + ".match[0].path.regex: \"/a(b\" is not a valid RE2 regular expression: missing closing ): `/a(b`",
				r0 + ".match[1].path.regex: \"/(a)\\\\1\" is not a valid RE2 regular expression: invalid escape sequence: `\\1`",
				r0 + ".match[2].headers[0].regex: \"(?=x)\" is not a valid RE2 regular expression: invalid or unsupported Perl syntax: `(?=`",
				r0 + ".match[3].queryParams[0].regex: \"a{2000}\" is not a valid RE2 regular expression: invalid repeat count: `{2000}`",
				r0 + ".match[4].path.regex: is 1025 characters long: at most 1024 are allowed",
			},
		},
		{
			name: "methods",
			spec: matching(RouteMatch{Method: "get"}, RouteMatch{Method: "GET /"}, RouteMatch{Method: "M-SEARCH"}),
			want: []string{
				r0 + `.match[0].method: "get" is not a valid method: use an upper-case HTTP method such as GET or POST`,
				r0 + `.match[1].method: "GET /" is not a valid method: use an upper-case HTTP method such as GET or POST`,
			},
		},
		{
			name: "header matchers",
			spec: matching(RouteMatch{Headers: []HeaderMatch{
				{Name: "X-User", Exact: "a"},
				{Exact: "a"},
				{Name: ":authority", Present: true},
				{Name: "x-a"},
				{Name: "x-a", Exact: "a", Absent: true},
				{Name: "x-a", Present: true, Absent: true, Regex: "a"},
				{Name: "x-a", Exact: "a\r\nx-injected: 1"},
				{Name: "x-a", Present: false, Prefix: "\x7f"},
			}}),
			want: []string{
				m0 + `.headers[0].name: "X-User" is not a valid header name: use ` + headerNameRule,
				m0 + `.headers[1].name: is required`,
				m0 + `.headers[2].name: ":authority" is not a valid header name: use ` + headerNameRule,
				m0 + `.headers[3]: ` + hdrChoice,
				m0 + `.headers[4]: exact and absent are both set: ` + hdrChoice,
				m0 + `.headers[5]: regex, present and absent are all set: ` + hdrChoice,
				m0 + `.headers[6].exact: control character U+000D is not allowed in a header value`,
				m0 + `.headers[7].prefix: control character U+007F is not allowed in a header value`,
			},
		},
		{
			name: "query parameter matchers",
			spec: matching(RouteMatch{QueryParams: []QueryParamMatch{
				{Exact: "1"},
				{Name: "a&b", Present: true},
				{Name: "a b", Present: true},
				{Name: strings.Repeat("q", 257), Present: true},
				{Name: "q"},
				{Name: "q", Exact: "1", Present: true},
			}}),
			want: []string{
				m0 + `.queryParams[0].name: is required`,
				m0 + `.queryParams[1].name: "a&b" is not a valid query parameter name: use at most 256 characters other than spaces, control characters, '&', '=' and '#'`,
				m0 + `.queryParams[2].name: "a b" is not a valid query parameter name: use at most 256 characters other than spaces, control characters, '&', '=' and '#'`,
				m0 + `.queryParams[3].name: "` + strings.Repeat("q", 64) + `"... is not a valid query parameter name: use at most 256 characters other than spaces, control characters, '&', '=' and '#'`,
				m0 + `.queryParams[4]: set exactly one of exact, regex or present`,
				m0 + `.queryParams[5]: exact and present are both set: set exactly one of exact, regex or present`,
			},
		},
		{
			name: "no backends",
			spec: one(RouteRule{Match: catalogRoute().Rules[0].Match}),
			want: []string{r0 + `.backends: at least one backend is required`},
		},
		{
			name: "weights",
			spec: func() *RouteSpec {
				s := catalogRoute()
				s.Rules[0].Backends = []Backend{{Subset: "v1", Weight: ptr[int32](0)}, {Subset: "v2", Weight: ptr[int32](0)}}
				s.Rules[1].Backends = []Backend{{Subset: "v1", Weight: ptr[int32](-1)}, {Subset: "v2", Weight: ptr[int32](1_000_001)}}
				return s
			}(),
			want: []string{
				r0 + `.backends: every weight is 0: at least one backend needs a positive weight`,
				r1 + `.backends[0].weight: must be ≥ 0`,
				r1 + `.backends[1].weight: must be at most 1000000`,
			},
		},
		{
			name: "backend targets",
			spec: func() *RouteSpec {
				s := catalogRoute()
				s.Rules[1].Backends = []Backend{
					{Service: "catalog", Subset: "v1"}, {Subset: "v1"}, {Service: "catalog"}, {Service: "_x", Subset: "V2"},
				}
				s.Default()
				return s
			}(),
			want: []string{
				r1 + `.backends[1]: duplicate backend: spec.rules[1].backends[0] has the same service and subset`,
				r1 + `.backends[3].service: "_x" is not a valid service name: use ` + dnsLabelRule,
				r1 + `.backends[3].subset: "V2" is not a valid subset name: use ` + dnsLabelRule,
			},
		},
		{
			name: "timeouts",
			spec: func() *RouteSpec {
				s := catalogRoute()
				s.Rules[0].Timeout = dur(0)
				s.Rules[1].Timeout = dur(25 * time.Hour)
				s.Rules[1].Retries.PerTryTimeout = dur(-time.Millisecond)
				return s
			}(),
			want: []string{
				r0 + `.timeout: must be between 1ms and 24h, got 0s`,
				r1 + `.timeout: must be between 1ms and 24h, got 25h`,
				retries + `.perTryTimeout: must be between 1ms and 24h, got -1ms`,
			},
		},
		{
			name: "a try longer than the whole request",
			spec: func() *RouteSpec {
				s := catalogRoute()
				s.Rules[1].Retries.PerTryTimeout = dur(2*time.Second + time.Millisecond)
				return s
			}(),
			want: []string{retries + `.perTryTimeout: 2.001s is longer than spec.rules[1].timeout (2s), which bounds every try`},
		},
		{
			name: "attempts",
			spec: func() *RouteSpec {
				s := withRetries(RetryPolicy{})
				s.Rules[0].Retries = &RetryPolicy{Attempts: 11}
				return s
			}(),
			want: []string{
				r0 + `.retries.attempts: must be between 1 and 10, got 11`,
				retries + `.attempts: is required: the number of retries after the first try, from 1 to 10`,
			},
		},
		{
			name: "retryOn",
			spec: withRetries(RetryPolicy{Attempts: 1, RetryOn: []RetryOn{RetryOnReset, "5XX", RetryOnReset, "ok"}}),
			want: []string{
				retries + `.retryOn[1]: unsupported value "5XX": must be one of 5xx, gateway-error, reset, connect-failure, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable`,
				retries + `.retryOn[2]: duplicate value "reset": spec.rules[1].retries.retryOn[0] has it too`,
				retries + `.retryOn[3]: unsupported value "ok": must be one of 5xx, gateway-error, reset, connect-failure, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable`,
			},
		},
		{
			name: "retriable-status-codes without codes",
			spec: withRetries(RetryPolicy{Attempts: 1, RetryOn: []RetryOn{RetryOnRetriableStatusCodes}}),
			want: []string{retries + `.retriableStatusCodes: is required: retryOn holds retriable-status-codes`},
		},
		{
			name: "codes without retriable-status-codes",
			spec: withRetries(RetryPolicy{Attempts: 1, RetriableStatusCodes: []int32{503}}),
			want: []string{retries + `.retriableStatusCodes: must be empty unless retryOn holds retriable-status-codes`},
		},
		{
			name: "retriable status codes",
			spec: withRetries(RetryPolicy{Attempts: 1, RetryOn: []RetryOn{RetryOnRetriableStatusCodes}, RetriableStatusCodes: []int32{503, 200, 600, 503}}),
			want: []string{
				retries + `.retriableStatusCodes[1]: must be between 400 and 599, got 200`,
				retries + `.retriableStatusCodes[2]: must be between 400 and 599, got 600`,
				retries + `.retriableStatusCodes[3]: duplicate status 503: spec.rules[1].retries.retriableStatusCodes[0] has it too`,
			},
		},
		{
			name: "backoff out of range",
			spec: func() *RouteSpec {
				s := withRetries(RetryPolicy{Attempts: 1, Backoff: RetryBackoff{BaseInterval: Duration{2 * time.Minute}}})
				s.Rules[0].Retries = &RetryPolicy{Attempts: 1, Backoff: RetryBackoff{MaxInterval: Duration{6 * time.Minute}}}
				return s
			}(),
			want: []string{
				r0 + `.retries.backoff.maxInterval: must be between 1ms and 5m, got 6m`,
				retries + `.backoff.baseInterval: must be between 1ms and 1m, got 2m`,
			},
		},
		{
			name: "backoff maximum below the base",
			spec: withRetries(RetryPolicy{Attempts: 1, Backoff: RetryBackoff{BaseInterval: Duration{100 * time.Millisecond}, MaxInterval: Duration{50 * time.Millisecond}}}),
			want: []string{retries + `.backoff.maxInterval: 50ms is shorter than baseInterval (100ms)`},
		},
		{
			name: "budget",
			spec: func() *RouteSpec {
				s := withRetries(RetryPolicy{Attempts: 1, Budget: RetryBudget{Percent: 100.5, MinRetryConcurrency: -1}})
				s.Rules[0].Retries = &RetryPolicy{Attempts: 1, Budget: RetryBudget{Percent: -5}}
				return s
			}(),
			want: []string{
				r0 + `.retries.budget.percent: must be more than 0 and at most 100, got -5`,
				retries + `.budget.percent: must be more than 0 and at most 100, got 100.5`,
				retries + `.budget.minRetryConcurrency: must be at least 1, got -1`,
			},
		},
		{
			name: "an empty fault",
			spec: withFault(Fault{}),
			want: []string{r1 + `.fault: is empty: set delay, abort or both`},
		},
		{
			name: "fault delay",
			spec: func() *RouteSpec {
				s := withFault(Fault{Delay: &FaultDelay{Percentage: ptr(100.01)}})
				s.Rules[0].Fault = &Fault{Delay: &FaultDelay{Fixed: Duration{time.Hour + time.Second}, Percentage: ptr(-0.1)}}
				return s
			}(),
			want: []string{
				r0 + `.fault.delay.fixed: must be between 1ms and 1h, got 1h0m1s`,
				r0 + `.fault.delay.percentage: must be between 0 and 100, got -0.1`,
				r1 + `.fault.delay.fixed: is required`,
				r1 + `.fault.delay.percentage: must be between 0 and 100, got 100.01`,
			},
		},
		{
			name: "fault abort",
			spec: func() *RouteSpec {
				s := catalogRoute()
				s.Rules = []RouteRule{
					{Match: s.Rules[0].Match, Backends: []Backend{{}}, Fault: &Fault{Abort: &FaultAbort{}}},
					{Match: s.Rules[0].Match, Backends: []Backend{{}}, Fault: &Fault{Abort: &FaultAbort{HTTPStatus: 503, GRPCStatus: GRPCUnavailable}}},
					{Match: s.Rules[0].Match, Backends: []Backend{{}}, Fault: &Fault{Abort: &FaultAbort{HTTPStatus: 200}}},
					{Backends: []Backend{{}}, Fault: &Fault{Abort: &FaultAbort{GRPCStatus: "ok", Percentage: ptr(1e3)}}},
				}
				return s
			}(),
			want: []string{
				`spec.rules[0].fault.abort: set exactly one of httpStatus or grpcStatus`,
				`spec.rules[1].fault.abort: httpStatus and grpcStatus are both set: set exactly one`,
				`spec.rules[2].fault.abort.httpStatus: must be between 400 and 599, got 200`,
				`spec.rules[3].fault.abort.grpcStatus: unsupported value "ok": must be one of cancelled, unknown, invalid-argument, deadline-exceeded, not-found, already-exists, permission-denied, resource-exhausted, failed-precondition, aborted, out-of-range, unimplemented, internal, unavailable, data-loss, unauthenticated`,
				`spec.rules[3].fault.abort.percentage: must be between 0 and 100, got 1000`,
			},
		},
		{
			name: "mirrors",
			spec: func() *RouteSpec {
				s := catalogRoute()
				s.Rules[0].Mirror = &Mirror{Service: "catalog", Percentage: ptr(50.0)}
				s.Rules[1].Mirror = &Mirror{Service: "Shadow", Subset: "-", Percentage: ptr(-1.0)}
				return s
			}(),
			want: []string{
				r0 + `.mirror.subset: is required when mirroring to the Route's own service "catalog": a copy of each request would go to the endpoints that serve it`,
				r1 + `.mirror.service: "Shadow" is not a valid service name: use ` + dnsLabelRule,
				r1 + `.mirror.subset: "-" is not a valid subset name: use ` + dnsLabelRule,
				r1 + `.mirror.percentage: must be between 0 and 100, got -1`,
			},
		},
		{
			name: "header edits",
			spec: withHeaders(
				&HeaderEdits{
					Set:    []HeaderValue{{Name: "X-Env", Value: "prod"}, {Name: "x-a", Value: "1\n2"}, {Name: "host", Value: "a"}, {Value: "v"}},
					Add:    []HeaderValue{{Name: "x-a", Value: "2"}, {Name: "x-b", Value: "1"}, {Name: "x-b", Value: "2"}},
					Remove: []string{"x-b", "transfer-encoding", "x-c", "x-c"},
				},
				&HeaderEdits{Set: []HeaderValue{{Name: "x-a", Value: "1"}, {Name: "x-a", Value: "2"}}, Remove: []string{"x-a"}},
			),
			want: []string{
				r1 + `.requestHeaders.set[0].name: "X-Env" is not a valid header name: use ` + headerNameRule,
				r1 + `.requestHeaders.set[1].value: control character U+000A is not allowed in a header value`,
				r1 + `.requestHeaders.set[2].name: "host" is managed by the proxy and cannot be edited`,
				r1 + `.requestHeaders.set[3].name: is required`,
				r1 + `.requestHeaders.add[0].name: header "x-a" is already edited at spec.rules[1].requestHeaders.set[1].name: edit a header in one place (only add may repeat)`,
				r1 + `.requestHeaders.remove[0]: header "x-b" is already edited at spec.rules[1].requestHeaders.add[1].name: edit a header in one place (only add may repeat)`,
				r1 + `.requestHeaders.remove[1]: "transfer-encoding" is managed by the proxy and cannot be edited`,
				r1 + `.requestHeaders.remove[3]: header "x-c" is already edited at spec.rules[1].requestHeaders.remove[2]: edit a header in one place (only add may repeat)`,
				r1 + `.responseHeaders.set[1].name: header "x-a" is already edited at spec.rules[1].responseHeaders.set[0].name: edit a header in one place (only add may repeat)`,
				r1 + `.responseHeaders.remove[0]: header "x-a" is already edited at spec.rules[1].responseHeaders.set[0].name: edit a header in one place (only add may repeat)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Default()
			assertErrors(t, tt.spec.Validate(NewPath("spec")), tt.want)
		})
	}
}

func TestRouteSpecValidateWithoutDefault(t *testing.T) {
	// Validate must cope with what Default would have filled in.
	s := RouteSpec{Service: "a", Rules: []RouteRule{{
		Backends: []Backend{{}, {Subset: "v1"}},
		Fault:    &Fault{Delay: &FaultDelay{Fixed: Duration{time.Second}}, Abort: &FaultAbort{HTTPStatus: 500}},
		Mirror:   &Mirror{Service: "b"},
	}}}
	assertErrors(t, s.Validate(NewPath("spec")), nil)
	s.Rules[0].Mirror = &Mirror{}
	assertErrors(t, s.Validate(NewPath("spec")), []string{
		`spec.rules[0].mirror.subset: is required when mirroring to the Route's own service "a": a copy of each request would go to the endpoints that serve it`,
	})
	s.Rules[0].Mirror.Subset = "v2"
	assertErrors(t, s.Validate(NewPath("spec")), nil)
}

func TestGRPCStatusCode(t *testing.T) {
	tests := []struct {
		status GRPCStatus
		want   int
	}{
		{status: GRPCCancelled, want: 1},
		{status: GRPCDeadlineExceeded, want: 4},
		{status: GRPCResourceExhausted, want: 8},
		{status: GRPCInternal, want: 13},
		{status: GRPCUnavailable, want: 14},
		{status: GRPCUnauthenticated, want: 16},
		{status: "ok", want: 0},
		{status: "Unavailable", want: 0},
	}
	for _, tt := range tests {
		if got := tt.status.Code(); got != tt.want {
			t.Errorf("GRPCStatus(%q).Code() = %d, want %d", tt.status, got, tt.want)
		}
	}
}

func TestHTTPNames(t *testing.T) {
	tests := []struct {
		s                     string
		header, method, qname bool
	}{
		{s: "x-user-group", header: true, qname: true},
		{s: "GET", method: true, qname: true},
		{s: "M-SEARCH", method: true, qname: true},
		{s: "x_a.b~!#$%&'*+^`|", header: true},
		{s: "X-User", qname: true},
		{s: "a:b", qname: true},
		{s: ":path", qname: true},
		{s: "a b"},
		{s: ""},
		{s: "é", qname: true},
		{s: strings.Repeat("a", 256), header: true, qname: true},
		{s: strings.Repeat("a", 257)},
		{s: strings.Repeat("A", 33), qname: true},
		{s: "a=b"},
	}
	for _, tt := range tests {
		if got := isHeaderName(tt.s); got != tt.header {
			t.Errorf("isHeaderName(%q) = %v, want %v", tt.s, got, tt.header)
		}
		if got := isMethod(tt.s); got != tt.method {
			t.Errorf("isMethod(%q) = %v, want %v", tt.s, got, tt.method)
		}
		if got := isQueryParamName(tt.s); got != tt.qname {
			t.Errorf("isQueryParamName(%q) = %v, want %v", tt.s, got, tt.qname)
		}
	}
}
